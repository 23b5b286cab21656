"""What every DVC stage script shares: params, one MLflow run, clean user errors.

A stage script is a few lines: it names the params sections it reads and a
function `(params, run) -> summary`. `run_stage` loads and validates
`params.yaml`, opens the stage's MLflow run (docs/design.md §6), logs those sections
and the summary's numbers, and turns a `UserError` into one line and exit 2.
"""

from __future__ import annotations

import argparse
import numbers
import sys
from typing import Callable

from fgi import tracking
from fgi.config import Params, load_params, to_dict
from fgi.errors import exits_cleanly


def stage_tags(params: Params, **extra) -> dict[str, str]:
    return tracking.stage_tags(profile=params.profile, **extra)


def log_summary(run: tracking.Run, summary: dict, prefix: str = "") -> None:
    """Numbers become metrics, everything else a param (nested keys are dotted)."""
    metrics, rest = {}, {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            log_summary(run, value, f"{name}.")
        elif isinstance(value, numbers.Number) and not isinstance(value, bool):
            metrics[name] = value
        else:
            rest[name] = value
    run.log_metrics(metrics)
    if rest:
        run.log_params({f"summary.{key}": value for key, value in rest.items()})


def run_stage(body: Callable[[Params, tracking.Run], dict], sections: tuple[str, ...],
              argv: list[str] | None = None, **tags) -> None:
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)

    @exits_cleanly
    def main() -> None:
        params = load_params(args.params)
        everything = to_dict(params)
        with tracking.Run(params.tracking.experiment, tags=stage_tags(params, **tags),
                          enabled=params.tracking.enabled) as run:
            run.log_params({key: everything[key] for key in sections})
            summary = body(params, run) or {}
            log_summary(run, summary)
            print(", ".join(f"{k}={v}" for k, v in summary.items() if not isinstance(v, (dict, list))))

    main()
