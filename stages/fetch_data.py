"""DVC stage `fetch_data`: the face data set in the CelebAMask-HQ layout (synthetic or real)."""

from pathlib import Path

from fgi.data.sources import fetch_celebamask_hq
from fgi.stage import run_stage

if __name__ == "__main__":
    run_stage(lambda params, run: fetch_celebamask_hq(params, Path("data/raw/celebamask_hq")),
              sections=("seed", "data"))
