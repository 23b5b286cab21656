"""`fgi seeds`: one profile trained with several training seeds, as mean ± standard deviation.

Retraining a GAN with another seed can move its numbers more than resampling
the test set does, so the bootstrap intervals of the tables (over test pairs)
do not cover it. The seeds run as DVC experiments that differ from the
workspace only in `train.seed` (the data and the test pairs stay the same):

    for seed in 1 2; do dvc exp run --queue -S train.seed=$seed -n seed-$seed; done
    dvc exp run --run-all          # the queue, one experiment after the other
    fgi seeds                      # the workspace (seed 0) and every seed experiment

`fgi seeds` reads `dvc exp show --json`, keeps the workspace and every
experiment of its commit whose params equal the workspace's except
`train.seed` (one result per seed), and writes `reports/seeds.{csv,md}`: per
method, the mean and sample standard deviation across seeds of each table's
PSNR, SSIM and MAE (Tables 1-3), and how many seeds went into it;
`reports/seeds_per_seed.csv`: every value behind them, a row per method and seed;
and in seeds.md the order of the methods by each region's PSNR under every seed.
It stamps them as one record (`fgi records`) with the pipeline's code and params.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from fgi import files, records
from fgi.errors import UserError
from fgi.evaluation.cards import CARDS, Cards, load_cards
from fgi.evaluation.tables import TABLES
from fgi.inference import cpu_name

METRICS = {"psnr": "PSNR ↑", "ssim": "SSIM ↑", "mae": "MAE ↓"}
REGION_NAMES = {"table1_full": "full", "table2_foreground": "foreground", "table3_hole": "hole"}


def _entry(rev: str, name: str | None, data: dict | None) -> dict | None:
    if not data:
        return None
    params = (data.get("params") or {}).get("params.yaml", {}).get("data")
    metrics = (data.get("metrics") or {}).get("reports/metrics.json", {}).get("data")
    if not params or not metrics:
        return None
    return {"rev": rev, "name": name or rev[:7], "params": params, "metrics": metrics}


def experiments(shown: list[dict]) -> list[dict]:
    """`dvc exp show --json` flattened: the workspace first, then each commit and its experiments,
    each {"rev", "name", "params", "metrics"}; entries without both params and metrics are left out."""
    found = []
    for commit in shown:
        found.append(_entry(commit["rev"], commit.get("name"), commit.get("data")))
        for experiment in commit.get("experiments") or []:
            for revision in experiment.get("revs") or []:
                found.append(_entry(revision["rev"], revision.get("name") or experiment.get("name"),
                                    revision.get("data")))
    return [entry for entry in found if entry]


# Sections no DVC stage reads: a change there does not make another run.
UNREAD_SECTIONS = ("serve",)


def _without_seed(params: dict) -> dict:
    stripped = copy.deepcopy(params)
    stripped.get("train", {}).pop("seed", None)
    for section in UNREAD_SECTIONS:
        stripped.pop(section, None)
    return stripped


def seed_runs(entries: list[dict]) -> dict[int, dict]:
    """{train.seed: metrics} of the entries whose params equal the first entry's (the workspace)
    except train.seed; the first entry of each seed wins."""
    if not entries:
        raise UserError("dvc exp show: no run with params.yaml and reports/metrics.json; run `dvc repro` first")
    reference = _without_seed(entries[0]["params"])
    runs: dict[int, dict] = {}
    for entry in entries:
        seed = entry["params"].get("train", {}).get("seed")
        if seed is not None and seed not in runs and _without_seed(entry["params"]) == reference:
            runs[seed] = entry["metrics"]
    return runs


def seeds_frame(runs: dict[int, dict], cards: Cards) -> pd.DataFrame:
    """One row per method (in the tables' order): seeds, then `<region> <metric>` mean and sd (ddof 1)
    across seeds."""
    methods = cards.order(m for run in runs.values() for m in run.get("table1_full", {}))
    rows = []
    for method in methods:
        row = {"Method": cards.display(method), "Seeds": 0}
        for table in TABLES:
            for metric, header in METRICS.items():
                values = np.array([run[table][method][metric] for run in runs.values()
                                   if run.get(table, {}).get(method, {}).get(metric) is not None], float)
                row["Seeds"] = max(row["Seeds"], len(values))
                name = f"{REGION_NAMES[table]} {header}"
                row[f"{name} mean"] = values.mean() if len(values) else np.nan
                row[f"{name} sd"] = values.std(ddof=1) if len(values) > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def per_seed_frame(runs: dict[int, dict], cards: Cards) -> pd.DataFrame:
    """A row per method and seed (the tables' order, then the seed): every metric of Tables 1-3 that
    the run measured, as `<region> <metric>`."""
    methods = cards.order(m for run in runs.values() for m in run.get("table1_full", {}))
    rows = []
    for method in methods:
        for seed in sorted(runs):
            row = {"Method": cards.display(method), "Seed": seed}
            for table, region in REGION_NAMES.items():
                for metric, value in runs[seed].get(table, {}).get(method, {}).items():
                    row[f"{region} {metric}"] = value
            rows.append(row)
    return pd.DataFrame(rows)


def orders(per_seed: pd.DataFrame) -> list[str]:
    """Per region, the methods by PSNR (best first) under each seed, and whether every seed agrees."""
    lines = []
    for region in REGION_NAMES.values():
        column = f"{region} psnr"
        if column not in per_seed:
            continue
        by_seed = {seed: " > ".join(group.sort_values(column, ascending=False)["Method"])
                   for seed, group in per_seed.dropna(subset=[column]).groupby("Seed")}
        same = len(set(by_seed.values())) == 1
        lines.append(f"- {region} PSNR: " + ("the same order under every seed: " + next(iter(by_seed.values()))
                                            if same else "; ".join(f"seed {s}: {o}" for s, o in by_seed.items())))
    return lines


def to_markdown(frame: pd.DataFrame, seeds: list[int], per_seed: pd.DataFrame | None = None) -> str:
    names = [c[:-5] for c in frame.columns if c.endswith(" mean")]
    lines = ["### Across training seeds: mean ± standard deviation", "",
             "| Method | Seeds | " + " | ".join(names) + " |", "| --- | ---: |" + " ---: |" * len(names)]
    for row in frame.to_dict("records"):
        cells = []
        for name in names:
            mean, sd = row[f"{name} mean"], row[f"{name} sd"]
            digits = 4 if abs(mean) < 1 else 2
            cells.append("n/a" if np.isnan(mean) else f"{mean:.{digits}f}" + ("" if np.isnan(sd) else f" ± {sd:.{digits}f}"))
        lines.append(f"| {row['Method']} | {row['Seeds']} | " + " | ".join(cells) + " |")
    lines += ["", f"Training seeds (`train.seed`): {', '.join(map(str, seeds))}; the same data and "
              "test pairs for every seed. ± is the sample standard deviation across seeds (n − 1), "
              "not an interval over test pairs (those are in Tables 1-4). Every value behind it: seeds_per_seed.csv.", ""]
    if per_seed is not None:
        lines += ["### Order of the methods under each seed", "", *orders(per_seed), ""]
    return "\n".join(lines)


def dvc_exp_show(root: Path, all_commits: bool = False) -> list[dict]:
    try:
        result = subprocess.run(["dvc", "exp", "show", "--json", *(["--all-commits"] if all_commits else [])], cwd=root, capture_output=True, text=True,
                                check=False)
    except FileNotFoundError as err:
        raise UserError("dvc: not found; run `fgi seeds` from the project's environment (`make setup`)") from err
    if result.returncode != 0:
        raise UserError(f"dvc exp show --json failed in {root}: {result.stderr.strip()[-300:]}")
    return json.loads(result.stdout)


def cmd_seeds(args: argparse.Namespace) -> int:
    runs = seed_runs(experiments(dvc_exp_show(Path("."), args.all_commits)))
    if len(runs) < 2:
        raise UserError(f"found {len(runs)} training seed(s) of this workspace's params; queue more with "
                        "`dvc exp run --queue -S train.seed=1` and run them with `dvc exp run --run-all`")
    cards = load_cards(Path("reports") / CARDS)
    frame, per_seed = seeds_frame(runs, cards), per_seed_frame(runs, cards)
    out = Path(args.out)
    markdown = to_markdown(frame, sorted(runs), per_seed)
    written = {"seeds.csv": frame.to_csv(index=False), "seeds_per_seed.csv": per_seed.to_csv(index=False),
               "seeds.md": markdown}
    for name, text in written.items():
        files.write_text_atomic(out / name, text)
    if out.resolve() == (Path("reports")).resolve():
        records.stamp(Path("."), "seeds", [f"reports/{name}" for name in written], "make seeds (fgi seeds)",
                      {"pipeline": True, "modules": ["fgi.evaluation.seeds"]}, params_file="params.yaml",
                      machine=cpu_name())
    print(markdown)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    seeds = commands.add_parser("seeds", help="mean ± sd across training seeds (DVC experiments)")
    seeds.add_argument("--out", default="reports", help="folder for seeds.csv and seeds.md")
    seeds.add_argument("--all-commits", action="store_true",
                       help="also read experiments queued from earlier commits (dvc exp show --all-commits); "
                            "only right when the code did not change since")
    seeds.set_defaults(run=cmd_seeds)
