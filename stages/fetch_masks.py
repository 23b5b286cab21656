"""DVC stage `fetch_masks`: the hole-mask pool in the QD-IMD layout (synthetic or real)."""

from pathlib import Path

from fgi.data.sources import fetch_qd_imd
from fgi.stage import run_stage

if __name__ == "__main__":
    run_stage(lambda params, run: fetch_qd_imd(params, Path("data/raw/qd_imd")),
              sections=("seed", "holes"))
