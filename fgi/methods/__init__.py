"""The method registry: every inpainting method the pipeline can compare.

    method = fgi.methods.get("ours")   # its `Method`
    fgi.methods.names()                # built-in and installed methods, sorted

A `Method` declares everything the project needs about one method: its name,
display name and citation, its params dataclass (the `models.<name>` section),
how to build its generator and discriminator, its training objective (none for
a classical method: it has nothing to train) and the values its paper published.
Every other module derives from it; none names a method.

A built-in method is a package `fgi/methods/<name>/` whose `__init__.py`
defines `METHOD`; adding one is adding its folder. A method from another
installed package registers itself under the entry point group `fgi.methods`
(docs/adding-a-method.md):

    [project.entry-points."fgi.methods"]
    toy = "toy_method:METHOD"

Names are known without importing any method; a method's module is imported
only when it is asked for, so a stage imports only the methods it runs (and
DVC's deps can name exactly that code). An unknown name is a `UserError`
listing the known ones, as LaMa's `make_generator` refuses one.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from fgi.errors import UserError

GROUP = "fgi.methods"
_HERE = Path(__file__).parent
ROLES = ("proposed", "baseline", "reference")


def _no_problems(cfg: Any) -> list[str]:
    return []


@dataclass(frozen=True)
class Imported:
    """A released checkpoint, read: the generator with its weights, and what the import saw."""

    generator: Any                 # the method's generator (an nn.Module in eval mode), the release's weights loaded
    format: str                    # what the file was, e.g. "PyTorch Lightning checkpoint (advimman/lama)"
    notes: tuple[str, ...] = ()    # one line each for the log: what the import left out, and why
    training_split: str | None = None               # the release's training split by name; None = unpublished
    training_images: frozenset[int] | None = None   # its CelebA-HQ indices (0-29999); None = unpublished


@dataclass(frozen=True)
class Importer:
    """How a method reads its authors' released weights (`models.<name>.released`)."""

    load: Callable[[Path, Any, int], Imported]   # (the release's file or folder, models.<name>, data.size)
    size: int                      # the data.size the weights were trained at
    width: float                   # the models.<name>.width they need
    source: str                    # which release, e.g. "advimman/lama: lama-celeba-hq/lama-fourier"


@dataclass(frozen=True)
class Method:
    """One inpainting method. `generator(cfg, size)` builds what maps a masked image and its hole,
    (N, 3, S, S) in [-1, 1] and (N, 1, S, S) with 1 = hole, to a prediction of the same shape: a
    network for a learned method, a solver for a classical one (it may expose `workers`, the
    processes it uses; predict sets it to every core)."""

    name: str                    # its key in `methods` and `models`, and in stage names (train@<name>)
    display: str                 # how tables and figures name it
    citation: str                # the tables' Author column
    params: type                 # dataclass of `models.<name>`, fields declared with fgi.config.spec
    generator: Callable[[Any, int], Any]
    discriminator: Callable[[Any, int], Any] | None = None
    objective: type | None = None        # an fgi.methods.base.Objective subclass; None: nothing to train
    role: Literal["proposed", "baseline", "reference"] = "baseline"  # Table 5 compares `proposed` with the rest
    published: dict[str, tuple[float, ...]] = field(default_factory=dict)  # region -> MSE, MAE, FID, PSNR, SSIM
    check: Callable[[Any], list[str]] = _no_problems  # rules tying the section's keys: one line per problem
    # Its objective reads the foreground mask (fg_mask): on data without one (a folder source without
    # data.folder.foreground) it is refused, where every other method gets a mask of NaN ("unknown").
    needs_foreground: bool = False
    # How it reads its authors' released weights instead of training (None: it cannot); its params
    # section then has a `released` key (fgi.config.ReleasedWeights).
    importer: Importer | None = None

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"method {self.name!r}: role {self.role!r} is not one of {', '.join(ROLES)}")

    @property
    def learned(self) -> bool:
        return self.objective is not None

    def card(self) -> dict:
        """What the evaluation shows of the method, written beside its predictions."""
        return {"name": self.name, "display": self.display, "citation": self.citation, "role": self.role,
                "learned": self.learned, "published": {k: list(v) for k, v in self.published.items()}}


def _built_in() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules([str(_HERE)]) if info.ispkg)


def _installed() -> dict[str, importlib.metadata.EntryPoint]:
    points = {point.name: point for point in importlib.metadata.entry_points(group=GROUP)}
    for name in set(points) & set(_built_in()):
        raise UserError(f"entry point {GROUP}:{name} ({points[name].value}) has the name of a built-in method; "
                        "register it under another name")
    return points


def names() -> list[str]:
    """Every method that can be listed under `methods` in params.yaml."""
    return sorted([*_built_in(), *_installed()])


def _known(name: str) -> None:
    if name not in names():
        raise UserError(f"unknown method {name!r}; known methods: {', '.join(names())}")


def module_name(name: str) -> str:
    """The dotted name of the module that defines method `name` (not imported here)."""
    _known(name)
    installed = _installed()
    return installed[name].module if name in installed else f"{__name__}.{name}"


def module_file(name: str) -> Path:
    """The file of that module: for a package, its `__init__.py`."""
    found = importlib.util.find_spec(module_name(name))
    if found is None or not found.origin:
        raise UserError(f"method {name!r}: its module {module_name(name)} cannot be found; reinstall its package")
    return Path(found.origin).resolve()


def default_code(name: str) -> str:
    """What `methods.<name>` names by default: a built-in's folder, or a plugin module's file or package."""
    if name in _built_in():
        return f"fgi/methods/{name}"
    path = module_file(name)
    return str(path.parent if path.name == "__init__.py" else path)


def check_code(name: str, declared: str, root: Path = Path(".")) -> None:
    """The module of method `name` must lie in `declared` (`methods.<name>`, relative to `root`),
    so that DVC reruns the method's stages when its code changes."""
    where = (root / declared).resolve()
    module = module_file(name)
    if not where.exists():
        raise UserError(f"methods.{name}: {declared} does not exist; give the folder or file of the method's code "
                        f"(its module is {module})")
    if module != where and where not in module.parents:
        raise UserError(f"methods.{name}: {declared} does not hold the method's module ({module}); point it at "
                        f"the folder or file of that code, e.g. {default_code(name)}")


@functools.cache
def get(name: str) -> Any:
    """The `Method` called `name`, its module imported on first use."""
    _known(name)
    installed = _installed()
    method = installed[name].load() if name in installed else getattr(
        importlib.import_module(module_name(name)), "METHOD", None)
    if not isinstance(method, Method):
        raise UserError(f"method {name!r}: {module_name(name)} does not define a fgi.methods.Method "
                        "(METHOD = Method(...)); see docs/adding-a-method.md")
    if method.name != name:
        raise UserError(f"method {name!r}: its Method is named {method.name!r}; register it under that name")
    return method
