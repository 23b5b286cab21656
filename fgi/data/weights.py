"""The `weights` stage: pretrained networks the losses and FID need, with provenance.

* VGG16 (ImageNet, torchvision's `vgg16-397923af.pth`) for the perceptual and
  style losses (Eq. 3; Liu et al.).
* The FID Inception (pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`).
* The ADE20k ResNet50-dilated encoder of CSAIL's semantic-segmentation-pytorch
  (`encoder_epoch_20.pth`) for LaMa's high-receptive-field perceptual loss
  (`resnet_pl`), fetched from the URL in LaMa's README.

Each is taken from the torch hub cache (`$TORCH_HOME/hub/checkpoints`, or for
the ADE20k encoder the `$TORCH_HOME/ade20k/...` path LaMa's README uses), else
downloaded when `weights.download` is true, and checked against the sha256
prefix in its file name (torchvision's and pytorch-fid's convention). The
ADE20k encoder's authors publish no checksum: its sha256 is recorded, not
checked, and provenance.json says so (`"checksum": "none published"`). When
neither works (no internet) the network is recorded as
`random-init (offline)`: the losses then use a seeded random VGG16, and FID is
reported as "n/a", never as a number computed with random weights.

`<out>/provenance.json` maps each network to
`{"status": "pretrained", "file": ..., "sha256": ..., "source": ...}` or
`{"status": "random-init (offline)", "reason": ...}`, and each method's released weights
(`models.<name>.released`, `fgi.data.released`) `released/<name>` to `{"status": "released", ...}`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from fgi import files
from fgi.config import Params
from fgi.errors import UserError

RANDOM_INIT = "random-init (offline)"
NETWORKS = {
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "inception": "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                 "pt_inception-2015-12-05-6726825d.pth",
    "ade20k_resnet50dilated": "http://sceneparsing.csail.mit.edu/model/pytorch/"
                              "ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth",
}
# Files not named by the torch hub convention: where LaMa's README puts them, under $TORCH_HOME.
TORCH_HOME_FILES = {"ade20k_resnet50dilated": "ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth"}


def expected_prefix(url: str) -> str | None:
    """The sha256 prefix a torch hub file name ends with (`...-397923af.pth`); None for a name without one."""
    stem = url.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    prefix = stem.rsplit("-", 1)[-1]
    hexadecimal = len(prefix) >= 6 and all(c in "0123456789abcdef" for c in prefix)
    return prefix if "-" in stem and hexadecimal else None


def hub_cache_file(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _cache_file(name: str, url: str) -> Path:
    if name in TORCH_HOME_FILES:
        return Path(torch.hub.get_dir()).parent / TORCH_HOME_FILES[name]  # get_dir() is $TORCH_HOME/hub
    return hub_cache_file(url)


def _fetch_one(name: str, url: str, out: Path, download: bool, timeout_s: float) -> dict:
    target = out / f"{name}.pth"
    cached = _cache_file(name, url)
    reason = ""
    if cached.is_file():
        shutil.copyfile(cached, target)
        source = str(cached)
    elif download:
        try:
            files.download(url, target, progress=True, timeout=timeout_s, retries=1)
            source = url
        except UserError as err:
            # A partial download must not end up in the stage's output.
            target.with_name(target.name + ".part").unlink(missing_ok=True)
            reason = f"download failed: {err}"
    else:
        reason = "not in the torch hub cache and weights.download is false"
    if reason:
        return {"status": RANDOM_INIT, "reason": reason, "source": url}
    digest, prefix = files.sha256_file(target), expected_prefix(url)
    if prefix is None:
        return {"status": "pretrained", "file": target.name, "sha256": digest, "source": source,
                "checksum": "none published"}
    if not digest.startswith(prefix):
        target.unlink()
        raise UserError(f"{source}: sha256 {digest[:8]}… does not match the {prefix} in its "
                        "name; the file is corrupt, delete it and rerun the weights stage")
    return {"status": "pretrained", "file": target.name, "sha256": digest, "source": source}


def fetch_weights(params: Params, out: Path, released: dict | None = None) -> dict:
    """Fill `out` with the pretrained files that can be had; write provenance.json, with the
    entries of the released weights already brought (`fgi.data.released.fetch_released`)."""
    out.mkdir(parents=True, exist_ok=True)
    provenance = {name: _fetch_one(name, url, out, params.weights.download, params.weights.timeout_s)
                  for name, url in NETWORKS.items()}
    provenance.update(released or {})
    files.write_json_atomic(out / "provenance.json", provenance)
    return provenance


def load_provenance(folder: Path) -> dict:
    path = folder / "provenance.json"
    if not path.is_file():
        raise UserError(f"{path}: not found; run `dvc repro weights`")
    return json.loads(path.read_text())


def weights_file(folder: Path, name: str) -> Path | None:
    """The pretrained file of network `name`, or None when it is random-init."""
    entry = load_provenance(folder).get(name, {})
    return folder / entry["file"] if entry.get("status") == "pretrained" else None


def provenance_tag(folder: Path) -> str:
    """One line for the MLflow tag `weights_provenance`: `vgg16=pretrained, inception=random-init …`."""
    return ", ".join(f"{name}={entry['status']}" for name, entry in load_provenance(folder).items())
