"""DVC stage `prepare`: faces resized to data.size as PNGs, and the train/test split."""

from pathlib import Path

from fgi.data.prepare import prepare
from fgi.stage import run_stage

if __name__ == "__main__":
    run_stage(lambda params, run: prepare(params, Path("data/raw/celebamask_hq"), Path("data/prepared")),
              sections=("seed", "data", "split"))
