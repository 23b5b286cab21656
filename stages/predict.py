"""DVC stage `predict@<method>`: composited outputs of one method for the fixed test pairs."""

import sys
from pathlib import Path

from fgi import methods
from fgi.config import method_config
from fgi.evaluation.predict import predict
from fgi.stage import run_stage


def body(params, run, method):
    method_config(params, method)  # listed under `methods`, its section valid
    methods.check_code(method, params.methods[method])
    return predict(params, method, Path("data/predictions") / method)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: python -m stages.predict METHOD [--params FILE]  (METHOD: a method listed under "
                 "`methods` in the params file)")
    method = sys.argv.pop(1)
    run_stage(lambda params, run: body(params, run, method), sections=("predict",), model=method)
