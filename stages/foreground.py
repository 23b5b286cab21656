"""DVC stage `foreground`: the foreground mask M_F (skin + hair) of every prepared face."""

from pathlib import Path

from fgi.data.foreground import build_foreground
from fgi.stage import run_stage

if __name__ == "__main__":
    run_stage(lambda params, run: build_foreground(params, Path("data/raw/celebamask_hq"),
                                                   Path("data/prepared"), Path("data/foreground")),
              sections=("data", "foreground"))
