"""DVC stage `holes`: the hole-mask pool at data.size and the fixed test pairs."""

from pathlib import Path

from fgi.data.holes import build_holes
from fgi.stage import run_stage

if __name__ == "__main__":
    run_stage(lambda params, run: build_holes(params, Path("data/raw/qd_imd"), Path("data/prepared"),
                                              Path("data/holes")),
              sections=("seed", "holes"))
