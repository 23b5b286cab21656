"""The `weights` stage: pretrained networks the losses and FID need, with provenance.

* VGG16 (ImageNet, torchvision's `vgg16-397923af.pth`) for the perceptual and
  style losses (Eq. 3; Liu et al.).
* The FID Inception (pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`).

Each is taken from the torch hub cache (`$TORCH_HOME/hub/checkpoints`), else
downloaded when `weights.download` is true, and checked against the sha256
prefix in its file name (torchvision's and pytorch-fid's convention). When
neither works (no internet) the network is recorded as
`random-init (offline)`: the losses then use a seeded random VGG16, and FID is
reported as "n/a", never as a number computed with random weights.

`<out>/provenance.json` maps each network to
`{"status": "pretrained", "file": ..., "sha256": ..., "source": ...}` or
`{"status": "random-init (offline)", "reason": ...}`.
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
}


def expected_prefix(url: str) -> str:
    """The sha256 prefix a torch hub file name ends with (`...-397923af.pth`)."""
    return url.rsplit("/", 1)[-1].rsplit(".", 1)[0].rsplit("-", 1)[-1]


def hub_cache_file(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _fetch_one(name: str, url: str, out: Path, download: bool, timeout_s: float) -> dict:
    target = out / f"{name}.pth"
    cached = hub_cache_file(url)
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
    digest = files.sha256_file(target)
    if not digest.startswith(expected_prefix(url)):
        target.unlink()
        raise UserError(f"{source}: sha256 {digest[:8]}… does not match the {expected_prefix(url)} in its "
                        "name; the file is corrupt, delete it and rerun the weights stage")
    return {"status": "pretrained", "file": target.name, "sha256": digest, "source": source}


def fetch_weights(params: Params, out: Path) -> dict:
    """Fill `out` with the pretrained files that can be had; write provenance.json."""
    out.mkdir(parents=True, exist_ok=True)
    provenance = {name: _fetch_one(name, url, out, params.weights.download, params.weights.timeout_s)
                  for name, url in NETWORKS.items()}
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
