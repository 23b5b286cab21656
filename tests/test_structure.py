"""Structure: DVC caches that cannot go stale, and fgi's layers without import cycles.

1. Every stage of dvc.yaml, as DVC resolves it (`foreach` included), lists in `deps`
   exactly the project code its command runs: every module it imports, transitively
   (else an edit leaves a stale cache), and no other `.py` file (else an edit that
   cannot change its outputs reruns it). Only EXEMPT modules may be left out.
2. fgi's modules import only from their own layer or lower ones (LAYERS), form no
   import cycle, and import no module that does not exist.

Imports are read with `ast` by fgi.codebase. The one import `ast` cannot see, the
method module the registry loads with importlib, is asked of the registry itself.
"""

from __future__ import annotations

import ast
import os
import posixpath
from pathlib import Path

import pytest

from fgi import codebase

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("fgi", "stages")  # the top-level packages a stage's code may come from

# Modules a stage may import without listing them in its deps: none can change an output
# DVC tracks. A file whose body is at most a docstring (an empty `__init__.py`) needs no
# listing either: importing it runs nothing, and `inert` re-checks that on every run.
EXEMPT = {
    "fgi/__init__.py": "a docstring and __version__ only; no stage writes the version into an output",
    "fgi/errors.py": "error types and exit codes: a failing stage writes no output",
    "fgi/progress.py": "tqdm progress bars on stderr: they show progress and compute nothing",
}
# Not fgi/tracking.py: besides MLflow logging it computes git_commit(), which the report
# stage writes into report.md, a DVC output.

# fgi's layers, lowest first; docs/design.md documents this order. A module may import from
# its own layer or lower ones. "x" matches module x only, "x.*" every module below x; an
# exact entry beats a ".*" one, a longer ".*" one a shorter.
LAYERS = (
    ("fgi", "fgi.errors", "fgi.files", "fgi.progress", "fgi.codebase"),
    ("fgi.config", "fgi.schema", "fgi.methods", "fgi.tracking", "fgi.stage", "fgi.records"),  # fgi.methods: the registry
    ("fgi.data", "fgi.data.*"),
    ("fgi.methods.*", "fgi.inference"),
    ("fgi.evaluation", "fgi.evaluation.*"),
    ("fgi.training", "fgi.training.*"),
    ("fgi.apps", "fgi.apps.*"),
    ("fgi.cli",),
)


# ----------------------------------------------------------------------- the import scanner
# fgi.codebase reads imports with `ast`; fgi.records stamps committed records with the same closure.

def module_file(name: str) -> Path | None:
    return codebase.module_file(REPO, name)


def tree(path: Path) -> ast.Module:
    return codebase.tree(path)


def inert(file: str) -> bool:
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in tree(REPO / file).body)


def imports(name: str) -> frozenset[str]:
    return codebase.imports(REPO, name)


def closure(roots: list[list[str]]) -> dict[str, list[str]]:
    return codebase.closure(REPO, roots)


# ----------------------------------------------------------------------- deps coverage

def method_module(method: str) -> str:
    from fgi.methods import module_name  # the registry: the module it imports for `method`
    return module_name(method)


def covers(dep: str, file: str) -> bool:
    return dep in (".", file) or file.startswith(dep + "/")


def py_files(dep: str) -> list[str]:
    if (REPO / dep).is_dir():
        return [p.relative_to(REPO).as_posix() for p in (REPO / dep).rglob("*.py")]
    return [dep] if dep.endswith(".py") and (REPO / dep).is_file() else []


def coverage_problems(stages: list[tuple[str, str, list[str]]]) -> list[str]:
    """One line per problem over (address, cmd, repo-relative dep paths) of each stage.

    The stages of one `foreach` (train@ours, train@ce, ...) share one deps template that DVC
    cannot vary per item beyond `${item}`: each may list what a sibling imports (the shared
    method code, base.py or losses.py, that a classical method does not run), never more."""
    problems = [f"EXEMPT names {f}, which does not exist" for f in EXEMPT if not (REPO / f).is_file()]
    runs_of: dict[str, dict[str, list[str]]] = {}
    for address, cmd, deps in stages:
        words = cmd.split() if isinstance(cmd, str) else []
        if words[:2] != ["python", "-m"] or len(words) not in (3, 4) or not words[2].startswith("stages."):
            problems.append(f"{address}: cmd {cmd!r} is not `python -m stages.<name> [METHOD]`, "
                            "so this check cannot follow its imports")
            continue
        if not module_file(words[2]):
            problems.append(f"{address}: runs {words[2]}, which has no file")
        runs_of[address] = closure([[words[2]]] + [[f"fgi.methods.module_name({a!r})", method_module(a)]
                                                   for a in words[3:]])
    family: dict[str, set[str]] = {}
    for address, runs in runs_of.items():
        family.setdefault(address.partition("@")[0], set()).update(runs)
    for address, cmd, deps in stages:
        if address not in runs_of:
            continue
        runs = runs_of[address]
        local = [posixpath.normpath(d) for d in deps if "://" not in d and not os.path.isabs(d)]
        for dep in local:
            if not (REPO / dep).exists() and (dep.endswith(".py") or dep.split("/")[0] in PACKAGES):
                problems.append(f"{address}: dvc.yaml lists {dep}, which does not exist")
        for file, chain in sorted(runs.items()):
            if file not in EXEMPT and not inert(file) and not any(covers(d, file) for d in local):
                problems.append(f"{address}: imports {file} but dvc.yaml does not list it "
                                f"(add it to the stage's deps; imported via {' -> '.join(chain)})")
        for file in sorted({f for d in local for f in py_files(d)} - family[address.partition("@")[0]]):
            problems.append(f"{address}: dvc.yaml lists {file} but the stage never imports it "
                            "(drop it from the stage's deps: editing it reruns the stage for nothing)")
    return problems


@pytest.fixture(scope="module")
def stages() -> list[tuple[str, str, list[str]]]:
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    def path(stage, dep) -> str:  # def_path is relative to the stage's dvc.yaml; make it the repo's
        if "://" in dep.def_path or os.path.isabs(dep.def_path):
            return dep.def_path
        return Path(os.path.relpath(os.path.join(stage.wdir, dep.def_path), REPO)).as_posix()

    with Repo(str(REPO)) as repo:
        return [(s.addressing, s.cmd, [path(s, d) for d in s.deps if not isinstance(d, ParamsDependency)])
                for s in repo.index.stages if s.cmd]


def test_stage_deps_list_exactly_the_code_the_stage_runs(stages):
    problems = coverage_problems(stages)
    assert not problems, "dvc.yaml deps out of step with the code:\n" + "\n".join(problems)


def test_coverage_check_reports_a_dropped_dep(stages):
    # A file the stage imports and lists once: evaluate's if it has one, else a train@ stage's.
    for address, cmd, deps in sorted(stages, key=lambda s: (s[0] != "evaluate", not s[0].startswith("train@"))):
        real = coverage_problems([(address, cmd, deps)])
        said = " ".join(real) + " "
        droppable = [d for d in deps if d.startswith("fgi/") and d.endswith(".py") and (REPO / d).is_file()
                     and d not in EXEMPT and f" {d} " not in said and not any(covers(o, d) for o in deps if o != d)]
        if droppable:
            break
    else:
        pytest.fail("no stage lists an fgi/*.py file that it imports, once, for this test to drop")
    new = set(coverage_problems([(address, cmd, [d for d in deps if d != droppable[0]])])) - set(real)
    assert len(new) == 1, new
    assert new.pop().startswith(f"{address}: imports {droppable[0]} but dvc.yaml does not list it")


# ----------------------------------------------------------------------- layers and cycles

def layer_of(module: str) -> int | None:
    matches = [((entry == module, len(entry)), layer) for layer, entries in enumerate(LAYERS) for entry in entries
               if entry == module or (entry.endswith(".*") and module.startswith(entry[:-1]))]
    return max(matches)[1] if matches else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One chain per distinct cycle that a depth-first walk meets, e.g. [a, b, a]."""
    found: dict[frozenset, list[str]] = {}
    seen: set[str] = set()

    def walk(node: str, stack: list[str]) -> None:
        seen.add(node)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target in stack:
                loop = stack[stack.index(target):]
                start = loop.index(min(loop))  # the same cycle reads the same from any entry
                found.setdefault(frozenset(loop), loop[start:] + loop[:start] + [min(loop)])
            elif target not in seen:
                walk(target, stack)
        stack.pop()

    for node in sorted(graph):
        if node not in seen:
            walk(node, [])
    return list(found.values())


def layer_problems(graph: dict[str, set[str]]) -> list[str]:
    """One line per problem over {module: the modules it imports}."""
    problems = [f"{m} is in no layer of LAYERS: place it there deliberately"
                for m in sorted(graph) if layer_of(m) is None]
    for module in sorted(graph):
        for target in sorted(graph[module]):
            low, high = layer_of(module), layer_of(target)
            if low is not None and high is not None and high > low:
                problems.append(f"{module} (layer {low}: {LAYERS[low][0]}) imports {target} "
                                f"from a higher layer ({high}: {LAYERS[high][0]})")
    return problems + [f"import cycle: {' -> '.join(loop)}" for loop in cycles(graph)]


def test_fgi_imports_go_down_the_layers_without_cycles():
    modules = sorted({".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                      for p in (REPO / "fgi").rglob("*.py")})
    graph = {m: {t for t in imports(m) if t.split(".")[0] == "fgi"} for m in modules}
    stale = [f"{m} imports {t}, which is no module of this repo (a stale import?)" for m in modules
             for t in sorted(imports(m)) if not module_file(t) and not REPO.joinpath(*t.split(".")).is_dir()]
    problems = stale + layer_problems(graph)
    assert not problems, "fgi's import structure:\n" + "\n".join(problems)


def test_layer_check_reports_an_upward_import_a_cycle_and_an_unplaced_module():
    graph = {"fgi.files": set(), "fgi.methods": set(), "fgi.stats": set(),
             "fgi.data.holes": {"fgi.files", "fgi.training.train"},  # up: 2 -> 5
             "fgi.training.train": {"fgi.evaluation.metrics", "fgi.methods"},  # down: fine
             "fgi.evaluation.metrics": {"fgi.evaluation.tables"},
             "fgi.evaluation.tables": {"fgi.evaluation.metrics"}}
    assert sorted(layer_problems(graph)) == sorted([
        "fgi.stats is in no layer of LAYERS: place it there deliberately",
        "fgi.data.holes (layer 2: fgi.data) imports fgi.training.train from a higher layer (5: fgi.training)",
        "import cycle: fgi.evaluation.metrics -> fgi.evaluation.tables -> fgi.evaluation.metrics",
    ])


# ----------------------------------------------------------------------- methods are named once

def test_no_module_outside_a_method_names_it():
    """A method is one module: the rest of fgi derives everything from the registry, so none of it
    holds a built-in method's name as a string (prose that mentions one is not a name)."""
    from fgi import methods

    names = set(methods.names())
    found = []
    for path in sorted((REPO / "fgi").rglob("*.py")):
        relative = path.relative_to(REPO)
        if relative.parts[:2] == ("fgi", "methods") and len(relative.parts) > 3:
            continue  # fgi/methods/<name>/...: the method's own module
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{relative.as_posix()}:{node.lineno}: {node.value!r}")
    assert not found, "modules naming a method (derive it from fgi.methods instead):\n" + "\n".join(found)
