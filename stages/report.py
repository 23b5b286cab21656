"""DVC stage `report`: the figures, reports/report.md and a self-contained reports/report.html."""

from pathlib import Path

from fgi.evaluation.report import FIGURES, build_report
from fgi.stage import run_stage

REPORTS = Path("reports")


def body(params, run):
    summary = build_report(params, root=Path("."), out=REPORTS)
    run.log_artifact(REPORTS / "report.html", "report")
    run.log_artifact(REPORTS / "report.md", "report")
    for name in FIGURES:
        if (REPORTS / "figures" / f"{name}.png").is_file():  # Fig. 6 only with component pairs
            run.log_artifact(REPORTS / "figures" / f"{name}.png", "report/figures")
    return summary


if __name__ == "__main__":
    run_stage(body, sections=("report",))
