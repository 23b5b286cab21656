"""Typed params: load a params file into dataclasses and validate it.

Every section of `params.yaml` is a dataclass below; each field's metadata
gives its allowed range or choices. `load_params` reports *every* problem at
once, one line each, naming the key path and what is allowed, e.g.

    params.yaml: data.size: expected an integer, got 'big' (str)
    params.yaml: methods.unet: unknown method; known methods: biharmonic, ce, gc, ours, pconv (...)

`methods` lists the methods to compare (name: the folder or file of its code,
which its stages depend on). A method's own section, `models.<name>`, is the
params dataclass its module declares (`fgi.methods`); `method_config` validates
it where a stage reads it, and `check_all` validates every section at once
(`fgi check-params`), so no stage imports a method it does not run.

All keys are required, so a profile can never silently fall back on a default
that another profile does not show: `params.yaml` and `configs/paper.yaml`
carry the same keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from fgi import methods as registry
from fgi.schema import ParamsError, build_section, spec

FOREGROUND_PARTS = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)


# ---------------------------------------------------------------- data ----

# What a folder key (data.folder.images / .foreground, holes.folder.train / .test) says for no folder.
# dvc.yaml lists the four keys as deps of the manifest stage, so that `dvc status` sees a file added
# to a folder, and DVC cannot depend on an empty path: there `none` names the stand-in folder none/.
# Read here as "", the empty value that every reader of these keys tests for.
NO_FOLDER = "none"
FOLDER_KEYS = {"data": ("images", "foreground"), "holes": ("train", "test")}


def _folder(value: str) -> str:
    return "" if value.strip() == NO_FOLDER else value


@dataclass(frozen=True)
class SyntheticData:
    count: int = spec(ge=2)


@dataclass(frozen=True)
class ArchiveSource:
    """A real data set: an http(s) URL to download, or a local path."""

    url: str = spec()
    path: str = spec()
    sha256: str = spec()
    size_bytes: int = spec(ge=0)


@dataclass(frozen=True)
class ReleasedWeights:
    """`models.<name>.released`: the method's authors' released weights, used instead of training
    (README: "Baselines from released weights"); url and path empty = train as usual."""

    url: str = spec()       # http(s) URL of the checkpoint file or of an archive holding it
    path: str = spec()      # or a local file or folder (the release's own layout)
    sha256: str = spec()    # of the downloaded or local file; empty = recorded, not checked

    @property
    def given(self) -> bool:
        return bool(self.url.strip() or self.path.strip())


@dataclass(frozen=True)
class FolderData:
    """A user's own faces (`data.source: folder`) and, optionally, a face parser's masks of them."""

    images: str = spec()
    foreground: str = spec()            # "" (none in params) = no foreground masks: methods that need them are refused
    label_ids: list[int] = spec(ge=0)   # [] = binary masks (white = foreground); else the foreground ids of label maps
    label_count: int = spec(ge=0, le=65536)  # the parser's number of classes: a larger id in a map is an error
    square: Literal["crop", "pad"] = spec()

    def __post_init__(self):
        object.__setattr__(self, "images", _folder(self.images))
        object.__setattr__(self, "foreground", _folder(self.foreground))


@dataclass(frozen=True)
class Data:
    source: Literal["synthetic", "celebamask_hq", "folder"] = spec()
    size: int = spec(ge=16, le=1024)
    on_corrupt: Literal["error", "skip"] = spec()
    workers: int = spec(ge=0)
    synthetic: SyntheticData = spec()
    celebamask_hq: ArchiveSource = spec()
    folder: FolderData = spec()


@dataclass(frozen=True)
class Split:
    """Counts of images (ints), or shares of the usable images (fractions below 1)."""

    train: int | float = spec(gt=0)
    test: int | float = spec(gt=0)


@dataclass(frozen=True)
class Foreground:
    parts: list[str] = spec(choices=FOREGROUND_PARTS)
    fill_holes: bool = spec()


@dataclass(frozen=True)
class SyntheticHoles:
    train: int = spec(ge=1)
    test: int = spec(ge=1)


@dataclass(frozen=True)
class SemanticHoles:
    margin: float = spec(ge=0.0, lt=0.5)
    components: dict[str, list[str]] = spec(choices=FOREGROUND_PARTS)


@dataclass(frozen=True)
class FolderHoles:
    """A user's own hole masks (`holes.source: folder`): a test folder, or one folder split by `seed`."""

    train: str = spec()
    test: str = spec()                  # "" (none in params) = hold out `test_share` of `train`'s masks
    test_share: float = spec(gt=0.0, lt=1.0)

    def __post_init__(self):
        object.__setattr__(self, "train", _folder(self.train))
        object.__setattr__(self, "test", _folder(self.test))


@dataclass(frozen=True)
class Holes:
    source: Literal["synthetic", "qd_imd", "folder"] = spec()
    ratio_min: float = spec(ge=0.0, le=1.0)
    ratio_max: float = spec(gt=0.0, le=1.0)
    invert: bool = spec()
    synthetic: SyntheticHoles = spec()
    qd_imd: ArchiveSource = spec()
    folder: FolderHoles = spec()
    semantic: SemanticHoles = spec()
    train_mix: float = spec(ge=0.0, le=1.0)


@dataclass(frozen=True)
class Weights:
    download: bool = spec()
    timeout_s: float = spec(gt=0.0)


# --------------------------------------------------------------- train ----

@dataclass(frozen=True)
class Train:
    seed: int = spec(ge=0)
    batch_size: int = spec(ge=1)
    epochs: int = spec(ge=1)
    max_steps: int = spec(ge=0)
    num_workers: int = spec(ge=0)
    amp: Literal["auto", "float32", "bfloat16"] = spec()
    channels_last: bool = spec()
    compile: bool = spec()
    nproc: int = spec(ge=1)
    nnodes: int = spec(ge=1)
    rdzv_endpoint: str = spec()
    checkpoint_every: int = spec(ge=1)
    log_every: int = spec(ge=1)
    val_images: int = spec(ge=1)
    mask_augment: bool = spec()


# ------------------------------------------------- predict, eval, report ----

@dataclass(frozen=True)
class Predict:
    batch_size: int = spec(ge=1)


@dataclass(frozen=True)
class Bootstrap:
    resamples: int = spec(ge=100)
    level: float = spec(gt=0.5, lt=1.0)
    seed: int = spec(ge=0)


@dataclass(frozen=True)
class Eval:
    fid: bool = spec()
    fid_batch_size: int = spec(ge=1)
    workers: int = spec(ge=0)
    external: dict[str, str] = spec()
    lpips: bool = spec()
    bootstrap: Bootstrap = spec()


@dataclass(frozen=True)
class Report:
    samples_per_bin: int = spec(ge=1)
    dpi: int = spec(ge=30, le=600)


@dataclass(frozen=True)
class Tracking:
    enabled: bool = spec()
    experiment: str = spec()
    log_models: bool = spec()


@dataclass(frozen=True)
class Serve:
    max_pixels: int = spec(ge=4096)
    face_crop: bool = spec()


@dataclass(frozen=True)
class Params:
    profile: str = spec()
    seed: int = spec(ge=0)
    data: Data = spec()
    split: Split = spec()
    foreground: Foreground = spec()
    holes: Holes = spec()
    weights: Weights = spec()
    train: Train = spec()
    methods: dict[str, str] = spec()
    models: dict[str, dict] = spec()
    predict: Predict = spec()
    eval: Eval = spec()
    report: Report = spec()
    tracking: Tracking = spec()
    serve: Serve = spec()




def _cross_checks(params: Params, problems: list[str]) -> None:
    """Rules that tie keys together."""
    if params.holes.ratio_min >= params.holes.ratio_max:
        problems.append(f"holes.ratio_min: {params.holes.ratio_min} must be below holes.ratio_max "
                        f"({params.holes.ratio_max})")
    _split_checks(params, problems)
    _folder_checks(params, problems)
    for source, name in ((params.data.celebamask_hq, "data.celebamask_hq"),
                         (params.holes.qd_imd, "holes.qd_imd")):
        used = (name == "data.celebamask_hq" and params.data.source == "celebamask_hq") or (
            name == "holes.qd_imd" and params.holes.source == "qd_imd")
        if used and not (source.url or source.path):
            problems.append(f"{name}: give `url` or `path` (both are empty)")
        if source.url and not source.url.startswith(("http://", "https://")):
            problems.append(f"{name}.url: {source.url!r} is not an http(s) URL")
        if source.sha256 and (len(source.sha256) != 64 or
                              any(c not in "0123456789abcdef" for c in source.sha256.lower())):
            problems.append(f"{name}.sha256: expected 64 hex digits, got {source.sha256!r}")
    if params.train.nnodes > 1:
        host, _, port = params.train.rdzv_endpoint.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            problems.append(f"train.rdzv_endpoint: {params.train.rdzv_endpoint!r} is not host:port; with "
                            f"train.nnodes {params.train.nnodes} every node needs the address of the first "
                            "node, e.g. node0.cluster:29500")
    if not params.foreground.parts:
        problems.append("foreground.parts: empty; name at least one part (paper: [skin, hair])")
    if not params.tracking.experiment.strip():
        problems.append("tracking.experiment: empty; name the MLflow experiment")
    for name in params.eval.external:
        if name in params.methods:
            problems.append(f"eval.external.{name}: clashes with a method of `methods`; rename it")


def _split_checks(params: Params, problems: list[str]) -> None:
    """Both counts or both fractions; a fraction below 1, two of them at most 1 together."""
    split = params.split
    counts = [isinstance(value, int) for value in (split.train, split.test)]
    if counts[0] != counts[1]:
        problems.append(f"split: train {split.train!r} and test {split.test!r} mix a count and a fraction; give "
                        "both as numbers of images (e.g. 252 and 48) or both as shares (e.g. 0.84 and 0.16)")
        return
    if all(counts):
        total = split.train + split.test
        if params.data.source == "synthetic" and total > params.data.synthetic.count:
            problems.append(f"split: train + test = {total} exceeds data.synthetic.count "
                            f"({params.data.synthetic.count}); lower the split or render more faces")
        return
    for key, value in (("train", split.train), ("test", split.test)):
        if value >= 1:
            problems.append(f"split.{key}: {value!r} is a fraction but not below 1; give a share of the images "
                            f"(e.g. 0.9) or a whole number of images (e.g. {round(value)})")
    if split.train < 1 and split.test < 1 and split.train + split.test > 1:
        problems.append(f"split: train + test = {split.train + split.test:g} of the images; the two shares may "
                        "add up to 1 at most")


def _folder_checks(params: Params, problems: list[str]) -> None:
    """The keys of the folder sources (README: "Your own data")."""
    data, holes = params.data.folder, params.holes.folder
    if params.data.source == "folder" and not data.images.strip():
        problems.append("data.folder.images: none; with data.source: folder give the folder of your face "
                        "images (an absolute path)")
    if data.label_ids and data.label_count <= max(data.label_ids):
        problems.append(f"data.folder.label_count: {data.label_count} must exceed every id of "
                        f"data.folder.label_ids (the largest is {max(data.label_ids)}); give the number of classes "
                        "of your face parser (19 for BiSeNet face parsing)")
    if params.holes.source == "folder":
        if not holes.train.strip():
            problems.append("holes.folder.train: none; with holes.source: folder give the folder of your hole "
                            "masks (an absolute path)")
        elif holes.test.strip() and Path(holes.test) == Path(holes.train):
            problems.append("holes.folder.test: the same folder as holes.folder.train, so the test masks would "
                            "be training masks; give a separate folder, or none to hold out holes.folder.test_share")
    if params.data.source == "folder" and params.holes.train_mix > 0:
        problems.append(f"holes.train_mix: {params.holes.train_mix} draws training holes from CelebAMask-HQ's "
                        "part annotations, which data.source: folder does not have; set it to 0")


def has_foreground(params: Params) -> bool:
    """Whether the run has a foreground mask per face: every source but a folder without masks."""
    return params.data.source != "folder" or bool(params.data.folder.foreground.strip())


def foreground_refusal(params: Params, name: str) -> str | None:
    """Why method `name` cannot run on this data (it learns from foreground masks the data lacks), or None."""
    if has_foreground(params) or not registry.get(name).needs_foreground:
        return None
    return (f"methods.{name}: it learns from a foreground mask per training image, and data.folder.foreground "
            "is empty; give the folder of your face parser's masks (data.folder.foreground), or remove "
            f"{name} from `methods`")


def _check_methods(listed: Any, models: Any, problems: list[str]) -> None:
    """`methods` names registered methods, each with a section under `models` (checked on the raw
    mappings, so these lines come with every other problem of the file)."""
    if not isinstance(listed, dict) or not isinstance(models, dict):
        return  # reported as a section that is not a mapping
    known = registry.names()
    if not listed:
        problems.append("methods: empty; list the methods to compare, e.g. ours: fgi/methods/ours")
    for name, code in listed.items():
        if name not in known:
            problems.append(f"methods.{name}: unknown method; known methods: {', '.join(known)} "
                            "(a method from another package registers itself under the `fgi.methods` entry point)")
        elif not isinstance(code, str):
            continue  # reported with its type
        elif not code.strip():
            problems.append(f"methods.{name}: empty; give the folder or file of the method's code "
                            f"(e.g. {registry.default_code(name)})")
        elif name not in models:
            problems.append(f"models.{name}: missing section; `methods` lists {name}, so add its params "
                            "(configs/paper.yaml shows every key)")
    for name, section in models.items():
        if name not in known:
            problems.append(f"models.{name}: unknown method; known methods: {', '.join(known)}")
        elif not isinstance(section, dict):
            problems.append(f"models.{name}: expected a mapping of keys, got {section!r} ({type(section).__name__})")


def _blank_folder_keys(raw: dict, problems: list[str]) -> None:
    """An empty folder key stops DVC before any stage runs (dvc.yaml lists it as a dep, and DVC
    fails on an empty path with "unexpected error"); `fgi check-params` names the key and the fix."""
    for section, keys in FOLDER_KEYS.items():
        folder = raw[section].get("folder") if isinstance(raw.get(section), dict) else None
        for key in keys if isinstance(folder, dict) else ():
            if isinstance(folder.get(key), str) and not folder[key].strip():
                problems.append(f"{section}.folder.{key}: empty, and dvc.yaml lists it as a dependency of the "
                                f"manifest stage, which DVC cannot give an empty path; write {NO_FOLDER} for no "
                                "folder, or the folder's absolute path")


def parse_params(raw: Any) -> Params:
    """Validate an already-parsed mapping; raise ParamsError listing every problem."""
    problems: list[str] = []
    if isinstance(raw, dict):
        _blank_folder_keys(raw, problems)
    params = build_section(raw, Params, "", problems)
    if isinstance(raw, dict):
        _check_methods(raw.get("methods"), raw.get("models"), problems)
    if params is not None and not problems:
        _cross_checks(params, problems)
    if problems:
        raise ParamsError(problems)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; every problem line starts with the file name."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParamsError([f"{path}: no such params file; pass an existing file "
                           "(e.g. params.yaml or configs/paper.yaml)"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError([f"{path}: not valid YAML{where}: {getattr(err, 'problem', err)}"]) from None
    try:
        return parse_params(raw)
    except ParamsError as err:
        raise ParamsError([f"{path}: {line}" for line in err.problems]) from None


def method_section(name: str, raw: Any) -> Any:
    """The `models.<name>` section as its method's params dataclass (raw: a plain dict, from
    params.yaml or a checkpoint); every problem at once, naming the key."""
    method = registry.get(name)
    problems: list[str] = []
    section = build_section(raw, method.params, f"models.{name}", problems)
    if section is not None and not problems:
        problems += [f"models.{name}.{line}" for line in method.check(section)]
    if problems:
        raise ParamsError(problems)
    return section


def released_problems(params: Params, name: str, section: Any) -> list[str]:
    """Why method `name` cannot use the released weights its section names (`models.<name>.released`),
    one line each; [] when it names none. The releases work at one size and width only."""
    released = getattr(section, "released", None)
    if released is None or not released.given:
        return []
    key, importer = f"models.{name}.released", registry.get(name).importer
    if importer is None:
        return [f"{key}: {name} cannot read released weights; clear url and path"]
    problems = []
    if released.url.strip() and released.path.strip():
        problems.append(f"{key}: both url and path are set; give one (path: a file or folder on this machine)")
    if params.data.size != importer.size:
        problems.append(f"{key}: the release ({importer.source}) works at {importer.size}x{importer.size}, and "
                        f"data.size is {params.data.size}; set data.size: {importer.size}, or clear {key}")
    width = getattr(section, "width", importer.width)
    if width != importer.width:
        problems.append(f"{key}: the release's width is {importer.width:g}, and models.{name}.width is {width:g}; "
                        f"set models.{name}.width: {importer.width:g}, or clear {key}")
    return problems


def method_config(params: Params, name: str) -> Any:
    """The validated section of method `name`, which `methods` must list."""
    if name not in params.methods:
        example = f" (e.g. {name}: {registry.default_code(name)})" if name in registry.names() else ""
        raise ParamsError([f"methods: {name!r} is not listed; add it{example} or choose one of "
                           f"{', '.join(params.methods)}"])
    section = method_section(name, params.models[name])
    refusals = [line for line in (foreground_refusal(params, name),) if line]
    refusals += released_problems(params, name, section)
    if refusals:
        raise ParamsError(refusals)
    return section


def check_sections(params: Params) -> None:
    """Every method section under `models` (listed under `methods` or not), and whether each listed method
    can run on the data (foreground masks), all problems at once."""
    problems = []
    for name, raw in params.models.items():
        try:
            section = method_section(name, raw)
        except ParamsError as err:
            problems += err.problems
            continue
        if name in params.methods:
            problems += released_problems(params, name, section)
    problems += [line for line in (foreground_refusal(params, name) for name in params.methods
                                   if name in params.models) if line]
    if problems:
        raise ParamsError(problems)


def check_all(path: str | Path = "params.yaml") -> Params:
    """`load_params` plus `check_sections`: what `fgi check-params` reports, every line naming the file."""
    params = load_params(path)
    try:
        check_sections(params)
    except ParamsError as err:
        raise ParamsError([f"{path}: {line}" for line in err.problems]) from None
    return params


def to_dict(params: Any) -> dict:
    """The params as plain nested dicts (for logging and for writing a profile)."""
    return dataclasses.asdict(params)


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists are kept as values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat
