"""The `fgi` command.

    fgi check-params [FILE]      validate a params file: prints OK, or one line per problem (exit 2)
    fgi ui [--port 5000]         the MLflow UI over this checkout's runs
    fgi ui --backend-store-uri URI --artifacts-destination URI --host 0.0.0.0   a team's tracking server
    fgi tables [--reports DIR] [--params FILE]   rebuild reports/tables/ from reports/per_image*.csv and fid.json
    fgi inpaint --checkpoint models/ours --image face.jpg --mask hole.png --out filled.png
    fgi study record [--ablation] [--wall-s S]   copy the CPU study's outputs into docs/study/
    fgi seeds [--out reports]    mean ± sd across training seeds run as DVC experiments
    fgi serve [--port 8765]      paint a hole on your own photo, compare every method in the browser
    fgi records [--check]        each committed record (study, benchmarks, seeds, figures) as current or stale
"""

from __future__ import annotations

import argparse
import sys

from pathlib import Path

from fgi import records
from fgi.apps import inpaint, serve, ui
from fgi.config import ParamsError, check_all, load_params
from fgi.errors import UserError, exits_cleanly
from fgi.evaluation import components, seeds, study
from fgi.evaluation.tables import rebuild


def cmd_check_params(args: argparse.Namespace) -> int:
    try:
        check_all(args.file)
    except ParamsError as err:
        for line in err.problems:
            print(line, file=sys.stderr)
        return 2
    print("OK")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    return ui.serve(host=args.host, port=args.port, backend_store_uri=args.backend_store_uri,
                    artifacts_destination=args.artifacts_destination, allowed_hosts=args.allowed_hosts)


def cmd_tables(args: argparse.Namespace) -> int:
    reports = Path(args.reports)
    if not (reports / "per_image.csv").is_file():
        raise UserError(f"{reports / 'per_image.csv'}: not found; run `dvc repro evaluate` first")
    bootstrap = load_params(args.params).eval.bootstrap
    rebuild(reports, bootstrap)
    components.rebuild(reports, bootstrap)
    names = sorted(path.stem for path in (reports / "tables").glob("*.md"))
    print(f"rebuilt {len(names)} tables in {reports / 'tables'}: {', '.join(names)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fgi", description="Foreground-guided facial inpainting pipeline.")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check-params", help="validate a params file")
    check.add_argument("file", nargs="?", default="params.yaml")
    check.set_defaults(run=cmd_check_params)

    ui = commands.add_parser("ui", help="serve the MLflow UI over this checkout's runs, or a team's tracking server",
                             description="An MLflow tracking server (UI and API) that proxies artifacts; "
                                         "clients log to it with MLFLOW_TRACKING_URI=http://HOST:PORT.")
    ui.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0: the network, "
                         "without authentication)")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--backend-store-uri", metavar="URI",
                    help="database of runs, e.g. postgresql://user@db/mlflow (default: this checkout's "
                         "sqlite:///<root>/mlflow.db, or $MLFLOW_TRACKING_URI when it names a database)")
    ui.add_argument("--artifacts-destination", metavar="URI",
                    help="where the server stores the artifacts it proxies, e.g. s3://bucket/mlflow or a "
                         "folder (default: this checkout's mlartifacts/)")
    ui.add_argument("--allowed-hosts", metavar="LIST",
                    help="Host headers MLflow answers besides localhost and private IPs, e.g. "
                         "mlflow.team.example:5000 (passed to mlflow server)")
    ui.set_defaults(run=cmd_ui)

    rebuild = commands.add_parser("tables", help="rebuild the tables from the saved per-image metrics")
    rebuild.add_argument("--reports", default="reports")
    rebuild.add_argument("--params", default="params.yaml", help="its eval.bootstrap sets the intervals")
    rebuild.set_defaults(run=cmd_tables)

    for module in (inpaint, study, seeds, serve, records):
        module.register(commands)
    return parser


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
