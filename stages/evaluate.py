"""DVC stage `evaluate`: per-image metrics, FID and the paper's tables for every method."""

from pathlib import Path

from fgi.evaluation.evaluate import evaluate
from fgi.stage import run_stage
from fgi.evaluation.tables import TABLES
from fgi.tracking import metric_name


def body(params, run):
    measured = evaluate(params)
    for table, methods in measured.items():
        run.log_metrics({metric_name(f"{table}/{method}/{metric}"): value
                         for method, values in methods.items() for metric, value in values.items()})
    for name in (*TABLES, "table4_bins"):
        for suffix in (".csv", ".md", ".tex"):
            run.log_artifact(Path("reports/tables") / f"{name}{suffix}", "tables")
    run.log_artifact(Path("reports/per_image.csv"))
    run.log_artifact(Path("reports/methods.json"))
    return {"methods": len(measured["table1_full"])}


if __name__ == "__main__":
    run_stage(body, sections=("eval", "methods"))
