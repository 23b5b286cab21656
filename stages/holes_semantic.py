"""DVC stage `holes_semantic`: test holes that each take a whole eye region, nose or mouth."""

from pathlib import Path

from fgi.data.semantic import build_semantic_holes
from fgi.stage import run_stage

if __name__ == "__main__":
    run_stage(lambda params, run: build_semantic_holes(params, Path("data/raw/celebamask_hq"), Path("data/prepared"),
                                                       Path("data/holes_semantic")),
              sections=("data", "holes"))
