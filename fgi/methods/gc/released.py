"""GC from its authors' released weights: DeepFill v2's TensorFlow checkpoint, read by variable name.

Yu, Lin, Yang, Shen, Lu, Huang, "Free-Form Image Inpainting with Gated Convolution", ICCV 2019.
The release (JiahuiYu/generative_inpainting, v2) publishes its CelebA-HQ 256 model as a TF1 `Saver`
checkpoint folder on Google Drive (`checkpoint`, `snap-0.index`, `snap-0.data-00000-of-00001`,
`snap-0.meta`; the README says to rename a downloaded `checkpoint.txt` to `checkpoint`). Its
`test.py` builds `inpaint_net` and loads each graph variable from the variable of the same name,
so the checkpoint's other variables (discriminator, optimiser state, step) are never read; here too.

`inpaint_net` has 42 convolutions, each `inpaint_net/<layer>/kernel` and `.../bias` (84
variables); the two upsampling layers of each decoder nest theirs one scope deeper
(`inpaint_net/conv13_upsample/conv13_upsample_conv/kernel`). `variable_names()` maps each to our
`GatedGenerator` state_dict key, layer by layer, so a checkpoint of another network fails by name
rather than loading shifted weights.

Training split: the repository and its README publish none (`inpaint.yml` names
`data/celeba_hq/train_shuffled.flist`, which it does not ship); the author pointed users to file
lists in a Google Drive folder in issues (#211, #443), which this import does not read, so
`training_split` and `training_images` are None (unpublished).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fgi.errors import UserError
from fgi.methods import Imported
from fgi.methods.gc.networks import PAPER_DILATIONS, GatedGenerator

SCOPE = "inpaint_net"
FORMAT = "TensorFlow checkpoint (JiahuiYu/generative_inpainting)"
NOT_IT = "a checkpoint of another network, or not DeepFill v2's inpaint_net"
DOWNLOAD = "point models.gc.released.path at the release's CelebA-HQ model folder as downloaded"
# The release's layer names, in the order of our Sequentials: encoder (coarse conv*, refinement
# xconv*, attention pmconv1-6) and decoder (conv11-17, allconv11-17).
ENCODER = ("1", "2_downsample", "3", "4_downsample", "5", "6", "7_atrous", "8_atrous", "9_atrous", "10_atrous")
DECODER = ("11", "12", "13_upsample", "14", "15_upsample", "16", "17")
# What the release's weights are: DeepFill v2 as released (models.gc keys).
RELEASED = {"width": 1.0, "attention": True, "attention_variant": "released"}


def _decoder(prefix: str, module: str) -> list[tuple[str, str]]:
    """(TF scope, torch module) of a decoder: `gen_deconv` nests its conv in `<name>/<name>_conv`."""
    layers = []
    for i, name in enumerate(DECODER):
        scope = f"{prefix}{name}"
        if name.endswith("_upsample"):
            layers.append((f"{scope}/{scope}_conv", f"{module}.{i}.conv.conv"))
        elif i == len(DECODER) - 1:
            layers.append((scope, f"{module}.{i}.0"))  # the plain output conv before tanh
        else:
            layers.append((scope, f"{module}.{i}.conv"))
    return layers


def variable_names() -> dict[str, str]:
    """Every `inpaint_net` variable of the release → the GatedGenerator state_dict key it fills."""
    layers = [(f"conv{name}", f"coarse.{i}.conv") for i, name in enumerate(ENCODER)]
    layers += _decoder("conv", f"coarse.{len(ENCODER)}")
    layers += [(f"xconv{name}", f"refine_conv.{i}.conv") for i, name in enumerate(ENCODER)]
    layers += [(f"pmconv{name}", f"refine_attention_in.{i}.conv") for i, name in enumerate(ENCODER[:6])]
    layers += [(f"pmconv{name}", f"refine_attention_out.{i}.conv") for i, name in enumerate(("9", "10"))]
    layers += _decoder("allconv", "refine_decoder")
    names = {}
    for scope, module in layers:
        names[f"{SCOPE}/{scope}/kernel"] = f"{module}.weight"
        names[f"{SCOPE}/{scope}/bias"] = f"{module}.bias"
    return names


def _check_params(cfg: Any) -> None:
    for key, value in RELEASED.items():
        if getattr(cfg, key) != value:
            raise UserError(f"models.gc.{key}: the released weights are DeepFill v2 as released, with "
                            f"{key} {json.dumps(value)}; got {json.dumps(getattr(cfg, key))}: set "
                            f"models.gc.{key}: {json.dumps(value)}, or train instead of importing")


def import_tensorflow() -> Any:
    """The `tensorflow` module, or a UserError saying how to install it.

    torch._dynamo is imported first: torch.optim imports it lazily, and with it triton, whose
    native library crashes the process (a segmentation fault) when TensorFlow's is already loaded.
    Loaded in this order, both work in one process.
    """
    import torch._dynamo  # noqa: F401, PLC0415

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter, not ours to show
    try:
        import tensorflow as tf  # noqa: PLC0415 - an optional extra, needed only to import GC's weights
    except ImportError:
        raise UserError("models.gc.released: reading DeepFill v2's TensorFlow checkpoint needs TensorFlow; "
                        "install it with pip install '.[tf]'") from None
    return tf


def _prefix(path: Path, tf: Any) -> Path:
    """The checkpoint prefix (`.../snap-0`) of a folder, a prefix or one of its files."""
    if path.is_dir():
        latest = tf.train.latest_checkpoint(str(path))  # the folder's `checkpoint` file, when it names one here
        indexes = sorted(path.glob("*.index"))
        if latest:
            return Path(latest)
        if len(indexes) == 1:  # `checkpoint` missing, renamed checkpoint.txt by Drive, or naming the author's path
            return indexes[0].with_suffix("")
        raise UserError(f"{path}: holds no TensorFlow checkpoint (a `checkpoint` file, or one <prefix>.index "
                        f"beside its .data file), found {len(indexes)} .index files; {DOWNLOAD}")
    prefix = Path(re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", str(path)))
    if not Path(f"{prefix}.index").is_file():
        raise UserError(f"{prefix}.index: not found; {DOWNLOAD} (or its checkpoint prefix, e.g. .../snap-0)")
    return prefix


def _data_files(prefix: Path) -> str:
    return ", ".join(str(p) for p in sorted(prefix.parent.glob(f"{prefix.name}.data-*"))) or f"{prefix}.data-*"


def _reader(prefix: Path, tf: Any) -> Any:
    try:
        return tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError, IndexError, RuntimeError) as error:
        raise UserError(f"{prefix}.index, {_data_files(prefix)}: not a readable TensorFlow checkpoint "
                        f"({_reason(error)}); download the release again") from None


def _check_names(shapes: dict[str, list[int]], names: dict[str, str]) -> list[str]:
    """Notes on the variables left out; raises on an unknown or missing `inpaint_net` variable."""
    ours = [name for name in shapes if name.startswith(f"{SCOPE}/")]
    # Optimiser slots (Adam, Adam_1, moving averages) sit below the variable they belong to.
    slots = [name for name in ours if name not in names and name.rsplit("/", 1)[0] in names]
    unknown = sorted(set(ours) - set(names) - set(slots))
    missing = sorted(set(names) - set(ours))
    if unknown or missing:
        listed = [f"unknown variable {name}" for name in unknown[:3]] + [f"missing {name}" for name in missing[:3]]
        more = len(unknown) + len(missing) - len(listed)
        raise UserError(f"{'; '.join(listed)}{f' and {more} more' if more else ''}: {NOT_IT}; {DOWNLOAD}")
    notes = []
    outside = Counter(name.split("/")[0] for name in shapes if not name.startswith(f"{SCOPE}/"))
    if outside:
        scopes = ", ".join(f"{scope} ({count})" for scope, count in sorted(outside.items()))
        notes.append(f"ignored {sum(outside.values())} variables outside {SCOPE}, which the generator "
                     f"does not use (as the release's test.py): {scopes}")
    if slots:
        kinds = ", ".join(sorted({name.rsplit("/", 1)[1] for name in slots}))
        notes.append(f"ignored {len(slots)} optimiser slots of {SCOPE}'s variables ({kinds})")
    return notes


def _torch_layout(value: np.ndarray) -> torch.Tensor:
    """TF conv kernels are (kh, kw, in, out), torch's (out, in, kh, kw); biases agree. Both put a gated
    conv's feature channels first and its gate's last, so no channel is reordered."""
    if value.ndim == 4:
        value = value.transpose(3, 2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))


def _tf_shape(shape: torch.Size) -> list[int]:
    return [*shape[2:], shape[1], shape[0]] if len(shape) == 4 else list(shape)


def _release_network(size: int) -> tuple[GatedGenerator, list[str]]:
    """GatedGenerator as the release's network: below 256² ours caps the dilation rates, the release's
    weights were trained with 2, 4, 8, 16, so those are restored (they are not weights: a generator
    rebuilt from the state_dict at this size caps them again)."""
    generator = GatedGenerator(size, RELEASED["width"], attention=True, attention_variant="released")
    if generator.dilations == PAPER_DILATIONS:
        return generator, []
    for stage in (generator.coarse, generator.refine_conv):
        for layer, rate in zip(list(stage)[6:10], PAPER_DILATIONS):
            layer.conv.dilation, layer.conv.padding = (rate, rate), (rate, rate)  # 3x3, stride 1: 'SAME' = rate
    note = (f"at {size}² the release's dilation rates {PAPER_DILATIONS} are kept for the import, where "
            f"GatedGenerator({size}) caps them at {generator.dilations}")
    generator.dilations = PAPER_DILATIONS
    return generator, [note]


def _reason(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _read(reader: Any, name: str, prefix: Path, tf: Any) -> np.ndarray:
    # TensorFlow's reader raises what its status code maps to: DataLossError on a bad checksum,
    # IndexError ("Read less bytes than requested") on a truncated file.
    try:
        return reader.get_tensor(name)
    except (tf.errors.OpError, ValueError, IndexError, RuntimeError) as error:
        raise UserError(f"{_data_files(prefix)}: cannot read {name} ({_reason(error)}); the file "
                        "is truncated or corrupt: download it again") from None


def load(path: Path, cfg: Any, size: int) -> Imported:
    """The release's `inpaint_net` from its checkpoint folder (or prefix) as a GatedGenerator at `size`."""
    _check_params(cfg)
    tf = import_tensorflow()
    prefix = _prefix(Path(path), tf)
    reader = _reader(prefix, tf)
    shapes = reader.get_variable_to_shape_map()
    names = variable_names()
    notes = _check_names(shapes, names)
    generator, rate_notes = _release_network(size)
    expected = generator.state_dict()
    if set(names.values()) != set(expected) or len(names) != len(expected):
        raise RuntimeError("variable_names() does not cover GatedGenerator's state_dict one to one")
    state = {}
    for name, key in names.items():
        if list(shapes[name]) != _tf_shape(expected[key].shape):
            raise UserError(f"{name}: shape {list(shapes[name])} in {prefix}, DeepFill v2's inpaint_net has "
                            f"{_tf_shape(expected[key].shape)}: {NOT_IT}; {DOWNLOAD}")
        state[key] = _torch_layout(_read(reader, name, prefix, tf))
    generator.load_state_dict(state, strict=True)
    return Imported(generator=generator.eval(), format=FORMAT, notes=(*notes, *rate_notes),
                    training_split=None, training_images=None)
