"""DVC stage `evaluate`: per-image metrics, FID and the paper's tables for every method."""

from pathlib import Path

from fgi.config import flatten
from fgi.evaluation.evaluate import evaluate
from fgi.stage import run_stage
from fgi.tracking import metric_name


def body(params, run):
    measured = evaluate(params)
    # table/method/metric, and table6_components/method/component/region/metric
    run.log_metrics({metric_name(key.replace(".", "/")): value for key, value in flatten(measured).items()})
    for table in sorted(Path("reports/tables").glob("table*.*")):
        run.log_artifact(table, "tables")
    run.log_artifact(Path("reports/per_image.csv"))
    if Path("reports/per_image_components.csv").is_file():
        run.log_artifact(Path("reports/per_image_components.csv"))
    run.log_artifact(Path("reports/methods.json"))
    return {"methods": len(measured["table1_full"])}


if __name__ == "__main__":
    run_stage(body, sections=("eval", "methods"))
