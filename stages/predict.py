"""DVC stage `predict@<method>`: composited outputs of one method for the fixed test pairs."""

import sys
from pathlib import Path

from fgi.predict import predict
from fgi.stage import run_stage

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: python -m stages.predict METHOD [--params FILE]  (METHOD: ours, ce, pconv, gc, biharmonic)")
    method = sys.argv.pop(1)
    run_stage(lambda params, run: predict(params, method, Path("data/predictions") / method),
              sections=("predict", "models"), model=method)
