"""DVC stage `manifest`: the files of a folder source, with sizes and sha256 (rerun when a folder changes)."""

from pathlib import Path

from fgi.data.manifest import build_manifests
from fgi.stage import run_stage

if __name__ == "__main__":
    run_stage(lambda params, run: build_manifests(params, Path("data/manifest")), sections=("data", "holes"))
