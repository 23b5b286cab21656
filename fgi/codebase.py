"""This repository's code as files: which files importing a module runs, and each file's git hash.

Two things ask this: `tests/test_structure.py`, which checks that every DVC stage lists in its
deps exactly the code its command runs, and `fgi.records`, which stamps a committed record with
the code it measured. Both read imports with `ast`, never by importing: every import in a file
counts, also inside a function (it runs when the function does), except under
`if TYPE_CHECKING:`. The one import `ast` cannot see, the method module the registry loads with
importlib, is the caller's to add as a root.

A file's hash is git's blob id (`git hash-object`), so a stamp made from the work tree and one
read from a commit's tree (`git ls-tree`) compare directly.
"""

from __future__ import annotations

import ast
import hashlib
from collections import deque
from functools import lru_cache
from pathlib import Path

PACKAGES = ("fgi", "stages", "benchmarks")  # the top-level packages whose files are this repo's code


def blob_id(data: bytes) -> str:
    """git's object id of a file with these bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_id(path: Path) -> str | None:
    """git's object id of the file at `path`, or None where there is none."""
    return blob_id(path.read_bytes()) if path.is_file() else None


@lru_cache(maxsize=None)
def module_file(root: Path, name: str) -> Path | None:
    """The file of module `name` under `root` (`x.py` or `x/__init__.py`), or None."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    base = root.joinpath(*parts)
    return next((p for p in (base.with_name(parts[-1] + ".py"), base / "__init__.py") if p.is_file()), None)


@lru_cache(maxsize=None)
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@lru_cache(maxsize=None)
def imports(root: Path, name: str) -> frozenset[str]:
    """The modules of PACKAGES that module `name` imports by name, existing or not (their parent
    packages not added)."""
    path = module_file(root, name)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: level - 1 packages up from this module's package
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            for alias in node.names:  # `from pkg import sub` imports module pkg.sub if there is one
                sub = f"{base}.{alias.name}"
                found.append(sub if alias.name != "*" and module_file(root, sub) else base)
        typing_only = isinstance(node, ast.If) and "TYPE_CHECKING" in (
            getattr(node.test, "id", None), getattr(node.test, "attr", None))
        for child in node.orelse if typing_only else ast.iter_child_nodes(node):
            visit(child)

    visit(tree(path))
    return frozenset(m for m in found if m.split(".")[0] in PACKAGES)


def closure(root: Path, roots: list[list[str]]) -> dict[str, list[str]]:
    """Every file under `root` that importing the roots runs -> the shortest import chain reaching
    it. A root is a chain ending in a module: [module], or [how it was found, module]."""
    chains: dict[str, list[str]] = {}
    queue = deque((chain[-1], chain) for chain in roots)
    while queue:
        name, chain = queue.popleft()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            module = ".".join(parts[:i])
            if module not in chains and module_file(root, module):
                chains[module] = chain[:-1] + [module]
                queue.extend((t, chains[module] + [t]) for t in sorted(imports(root, module)))
    return {module_file(root, m).relative_to(root).as_posix(): chain for m, chain in chains.items()}
