"""LaMa's released CelebA-HQ weights, read into our `LamaGenerator`.

Suvorov et al., "Resolution-robust Large Mask Inpainting with Fourier Convolutions", WACV 2022.
The release, advimman/lama, publishes `lama-celeba-hq/lama-fourier/`: `config.yaml`, the training
config as Hydra composed it (`bin/train.py` saves it unresolved, so `${generator....}` references
remain), and `models/best.ckpt`, a PyTorch Lightning 1.2 checkpoint of the whole training module
(`saicinpainting/training/trainers/base.py`): `state_dict` with the generator under `generator.`,
the discriminator, ResNetPL's encoder and the evaluators' networks; `hyper_parameters`, the config
as an OmegaConf DictConfig (`save_hyperparameters`), and its type; callback states keyed by their
classes; optimiser states.

torch.load(weights_only=True) refuses those classes, and unpickling them for real would run code
that the file names. So the file is read with a restricted unpickler: tensors, their storages and
dtypes, and plain containers are built; any other class the file names becomes an inert stand-in
that keeps its arguments and runs nothing. Only `state_dict` is used.

The split (`fetch_data/`): `celebahq_dataset_prepare.sh` renames CelebA-HQ's 00001-30000.jpg to
0-29999.jpg, trains on `train_shuffled.flist` (28,000 faces: a random 2,000 of them validate and
select best.ckpt, the rest train) and keeps `val_shuffled.flist` (2,000) apart as the visual test.
Those 2,000 are `celeba_hq_held_out.txt`; every other index counts as seen in training.
"""

from __future__ import annotations

import pickle
import re
import types
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import yaml

from fgi.errors import UserError
from fgi.methods import Imported
from fgi.methods.lama.ffc import DOWNSAMPLINGS, MAX_FEATURES, PAPER_NGF, LamaGenerator, scaled

FORMAT = "PyTorch Lightning checkpoint (advimman/lama)"
HELD_OUT = Path(__file__).with_name("celeba_hq_held_out.txt")
CELEBA_HQ = 30_000
SPLIT = "advimman/lama's CelebA-HQ training split (fetch_data/train_shuffled.flist, 28,000 faces)"
PREFIX = "generator."
ABSENT = object()   # a key config.yaml leaves out: the release's default applies
SHOWN = 3           # keys named in an architecture error


# -- finding the files ------------------------------------------------------------------------------

def find_checkpoint(folder: Path) -> Path:
    """The release's checkpoint in a folder: lama-fourier/models/best.ckpt, however deep the archive put it."""
    found = sorted(folder.rglob("*.ckpt"))
    for wanted in (lambda c: c.name == "best.ckpt", lambda c: "lama-fourier" in c.parts):  # beside lama-regular/
        found = [c for c in found if wanted(c)] or found
    if len(found) != 1:
        listed = ", ".join(str(c.relative_to(folder)) for c in found[:3]) or "no .ckpt file"
        raise UserError(f"{folder}: {listed} there; give models.lama.released the release's folder lama-fourier/ "
                        "(config.yaml and models/best.ckpt) or its .ckpt file")
    return found[0]


def locate(path: Path) -> tuple[Path, Path]:
    """(checkpoint, config.yaml) from the release's folder or its .ckpt file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder; give models.lama.released the release's folder "
                        "lama-fourier/ or its models/best.ckpt")
    checkpoint = find_checkpoint(path) if path.is_dir() else path
    configs = [checkpoint.parent / "config.yaml", checkpoint.parent.parent / "config.yaml"]
    config = next((candidate for candidate in configs if candidate.is_file()), None)
    if config is None:
        raise UserError(f"{configs[1]}: the release's config.yaml is missing (looked beside {checkpoint.name} "
                        "and one folder up); keep the release's layout, lama-fourier/config.yaml and "
                        "lama-fourier/models/best.ckpt")
    return checkpoint, config


# -- reading the checkpoint without running its code -------------------------------------------------

class StandIn:
    """What a class the checkpoint names becomes: it keeps what it is given and runs nothing."""

    origin = ""

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self.args, self.kwargs, self.state, self.items = args, kwargs, None, []
        return self

    def __call__(self, *args, **kwargs):   # e.g. the method a pickled getattr(cls, name) returns
        return type(self)(*args, **kwargs)

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.items.append((key, value))

    def append(self, value):
        self.items.append(value)

    def extend(self, values):
        self.items.extend(values)


# What a state_dict is made of (torch.save's own protocol: storages come through torch's wrapper).
ALLOWED = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"),
           ("torch._utils", "_rebuild_parameter"), ("torch", "Size"), ("builtins", "set"), ("builtins", "frozenset")}


def restricted_pickle(stood_in: set[str]) -> types.ModuleType:
    """A pickle module for torch.load that builds tensors and containers, and stand-ins for the rest."""

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            module = "builtins" if module == "__builtin__" else module   # protocol 2 names it so
            if (module, name) in ALLOWED or (module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)):
                return super().find_class(module, name)
            stood_in.add(f"{module}.{name}")
            return type(name, (StandIn,), {"origin": f"{module}.{name}"})

    module = types.ModuleType("fgi_restricted_pickle")
    module.Unpickler = Unpickler
    module.load = lambda file, **kwargs: Unpickler(file, **kwargs).load()   # the legacy format's headers
    return module


def read_checkpoint(checkpoint: Path) -> tuple[dict, set[str]]:
    """The checkpoint's dict, and the classes it named that were stood in for."""
    stood_in: set[str] = set()
    try:
        loaded = torch.load(checkpoint, map_location="cpu", pickle_module=restricted_pickle(stood_in),
                            weights_only=False)  # safe: the restricted unpickler runs no code the file names
    except (RuntimeError, OSError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            pickle.UnpicklingError, UnicodeDecodeError) as err:   # what truncated or foreign bytes raise
        raise UserError(f"{checkpoint}: not a readable checkpoint ({type(err).__name__}: {str(err)[:120]}); "
                        "download it again") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("state_dict"), dict):
        raise UserError(f"{checkpoint}: holds no state_dict, so it is not a PyTorch Lightning checkpoint of "
                        "LaMa; download lama-celeba-hq/lama-fourier again")
    return loaded, stood_in


# -- config.yaml against models.lama -----------------------------------------------------------------

def resolve(value: Any, document: dict, depth: int = 0) -> Any:
    """An OmegaConf reference `${a.b.c}` (absolute) looked up in the document; anything else as is."""
    match = re.fullmatch(r"\$\{([\w.]+)\}", value) if isinstance(value, str) else None
    if match is None or depth > 10:
        return value
    target: Any = document
    for part in match.group(1).split("."):
        if not isinstance(target, dict) or part not in target:
            return value
        target = target[part]
    return resolve(target, document, depth + 1)


def expected(cfg, ours: str) -> dict[str, tuple[Any, Any, str]]:
    """config.yaml generator.<key> -> (what our LamaGenerator builds, the release's default, whose value)."""
    mine = "models.lama"
    settings = {"kind": ("ffc_resnet", ABSENT, ours), "input_nc": (4, ABSENT, ours), "output_nc": (3, ABSENT, ours),
                "ngf": (scaled(PAPER_NGF, cfg.width, "LamaGenerator"), 64, f"{mine}.width {cfg.width} gives"),
                "n_downsampling": (DOWNSAMPLINGS, 3, ours), "n_blocks": (cfg.n_blocks, 9, f"{mine}.n_blocks is"),
                "add_out_act": ("sigmoid", True, ours), "max_features": (MAX_FEATURES, 1024, ours),
                "padding_type": ("reflect", "reflect", ours), "out_ffc": (False, False, ours),
                "spatial_transform_layers": (None, None, ours)}
    ratios = {"init_conv_kwargs": (0, 0), "downsample_conv_kwargs": (0, 0),
              "resnet_conv_kwargs": (cfg.ratio_g, cfg.ratio_g)}
    for group, (gin, gout) in ratios.items():
        whose = f"{mine}.ratio_g is" if group == "resnet_conv_kwargs" else ours
        settings |= {f"{group}.ratio_gin": (gin, ABSENT, whose), f"{group}.ratio_gout": (gout, ABSENT, whose),
                     f"{group}.enable_lfu": (False, True, ours), f"{group}.gated": (False, False, ours),
                     f"{group}.bias": (False, False, ours), f"{group}.groups": (1, 1, ours)}
    return settings


def leaves(section: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in section.items():
        if isinstance(value, dict) and key.endswith("conv_kwargs"):
            out |= leaves(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_config(config: Path, cfg) -> None:
    """config.yaml's generator section must describe the network that cfg builds."""
    try:
        document = yaml.safe_load(config.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"{config}: not readable YAML ({err}); download the release again") from None
    section = document.get("generator") if isinstance(document, dict) else None
    if not isinstance(section, dict):
        raise UserError(f"{config}: no generator section; it is not the config.yaml of a LaMa release")
    settings = expected(cfg, "our LamaGenerator builds")
    given = leaves(section)
    ignored = {"spatial_transform_kwargs", "out_ffc_kwargs"}   # only read when the layers they set up exist
    unknown = sorted(set(given) - set(settings) - ignored)
    if unknown:
        raise UserError(f"{config}: generator.{unknown[0]} is a setting our LamaGenerator does not have; "
                        "the release is of another architecture")
    for key, (want, default, whose) in settings.items():
        got = resolve(given.get(key, default), document)
        if got is ABSENT or got != want:
            shown = "absent" if got is ABSENT else repr(got)
            fix = ("set models.lama to the release's generator (width 1.0 is ngf 64)" if whose.startswith("models")
                   else "this release is not of LaMa's ffc_resnet generator as models.lama builds it")
            raise UserError(f"{config}: config.yaml generator.{key} is {shown}, {whose} {want!r}; {fix}")


# -- the generator's weights --------------------------------------------------------------------------

def describe(key: str, cfg) -> str:
    """What a release key names, by its index in FFCResNetGenerator's Sequential."""
    match = re.match(r"model\.(\d+)\.", key)
    index = int(match.group(1)) if match else -1
    blocks = 2 + DOWNSAMPLINGS
    spans = [(1, "the first 7x7 FFC"), (blocks - 1, "a downsampling FFC"), (blocks + cfg.n_blocks - 1,
             "an FFC residual block"), (blocks + cfg.n_blocks, "the concatenation"),
             (blocks + cfg.n_blocks + 3 * DOWNSAMPLINGS, "an upsampling layer"),
             (blocks + cfg.n_blocks + 3 * DOWNSAMPLINGS + 2, "the output conv")]
    role = next((name for last, name in spans if 0 <= index <= last), "no layer of ours")
    return f"{PREFIX}{key} ({role})"


def shape_of(weights: dict) -> str:
    """ngf and the residual blocks, read off a generator's keys: what a width or n_blocks changes."""
    blocks = {key.split(".")[1] for key in weights if re.match(r"model\.\d+\.conv1\.", key)}
    first = weights.get("model.1.ffc.convl2l.weight")
    return f"ngf {first.shape[0] if isinstance(first, torch.Tensor) else '?'}, {len(blocks)} FFC residual blocks"


def load_generator(state: dict, checkpoint: Path, cfg, size: int) -> LamaGenerator:
    weights = {key[len(PREFIX):]: value for key, value in state.items() if key.startswith(PREFIX)}
    generator = LamaGenerator(size, cfg.width, cfg.n_blocks, cfg.ratio_g)
    ours = generator.net.state_dict()
    problems = [f"{describe(key, cfg)} is not in ours" for key in weights if key not in ours]
    problems += [f"{describe(key, cfg)} is missing" for key in ours if key not in weights]
    problems += [f"{describe(key, cfg)} is {tuple(getattr(value, 'shape', ()))}, ours {tuple(ours[key].shape)}"
                 for key, value in weights.items()
                 if key in ours and (not isinstance(value, torch.Tensor) or value.shape != ours[key].shape)]
    if problems:
        raise UserError(f"{checkpoint}: a checkpoint of another architecture (its generator has {shape_of(weights)}"
                        f", models.lama builds {shape_of(ours)}): {'; '.join(problems[:SHOWN])}"
                        f"{' ...' if len(problems) > SHOWN else ''} ({len(problems)} differences); "
                        "check models.lama.width, n_blocks and ratio_g")
    generator.net.load_state_dict(weights, strict=True)
    return generator.eval()


def left_out(state: dict) -> str:
    counts = Counter(key.split(".", 1)[0] for key in state if not key.startswith(PREFIX))
    listed = ", ".join(f"{prefix} ({count})" for prefix, count in sorted(counts.items()))
    return f"left out {sum(counts.values())} tensors the generator does not use: {listed or 'none'}"


def held_out() -> frozenset[int]:
    """The 2,000 faces LaMa kept out of training (val_shuffled.flist)."""
    return frozenset(int(line) for line in HELD_OUT.read_text().splitlines() if line.strip() and line[0] != "#")


def load(path: Path, cfg, size: int) -> Imported:
    """The release at `path` (its folder, or its .ckpt with config.yaml beside it or one folder up)."""
    checkpoint, config = locate(path)
    check_config(config, cfg)
    loaded, stood_in = read_checkpoint(checkpoint)
    generator = load_generator(loaded["state_dict"], checkpoint, cfg, size)
    notes = [left_out(loaded["state_dict"])]
    if stood_in:
        notes.append(f"read as inert stand-ins, never run: {', '.join(sorted(stood_in))}")
    if "epoch" in loaded:
        notes.append(f"saved at epoch {loaded['epoch']}, step {loaded.get('global_step')} by PyTorch Lightning "
                     f"{loaded.get('pytorch-lightning_version', '(version not recorded)')}")
    training = frozenset(range(CELEBA_HQ)) - held_out()
    return Imported(generator=generator, format=FORMAT, notes=tuple(notes), training_split=SPLIT,
                    training_images=training)
