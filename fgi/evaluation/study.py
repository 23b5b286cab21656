"""The CPU study's record: what `make study` leaves in `docs/study/`.

The study is the `configs/study.yaml` profile run once through `dvc repro`,
then once more as a DVC experiment with Ours's other objective reading
(docs/results.md: "The CPU study"). The pipeline's own outputs live in
`reports/` and `models/`, which the next `dvc repro` of another profile
overwrites; `fgi study record` copies the ones a reader needs into a folder
that is committed with git:

    run.json / run.md          profile, Ours's reading, precision, machine, torch, wall time of
                               `dvc repro` and of each stage (its MLflow run)
    tables/                    Tables 1-5 (csv, md, tex), as `evaluate` wrote them
    figures/                   Fig. 4 and 5 analogs, training curves, metrics by bin
    curves/<model>_val.csv     validation hole PSNR per step (run.md: summary, the reference method's line)
    per_image.csv              every metric of every test pair, for later statistics
    per_image_components.csv   the same for the component pairs (Table 6)
    ranking.md                 the methods ordered per region and per hole-ratio bin, with rank
                               intervals and ties, also over the profile's training seeds
    ablation/<reading>/        Ours under another reading: per_image.csv, val.csv, run.json
    ablation.md                Ours under each recorded reading, on the same test pairs, and the
                               paired differences between the readings (interval, Wilcoxon, Holm)

`--ablation` records only the `ablation/<reading>/` part, for the experiment;
`--variant NAME` records a whole rerun with other params under `variants/NAME/`
and writes variants.md (`fgi.evaluation.variants`).
`fgi study render` rewrites run.md, ranking.md, ablation.md, variants.md and the tables of
every pair of methods (tables/table5_all_pairs, tables/table5_ranks) from the folder's own
records, so a recorded study is summarised by the current code without a rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from fgi import files, records
from fgi.config import load_params
from fgi.errors import UserError
from fgi.evaluation import ranks, stats, tables, variants
from fgi.evaluation.cards import CARDS, Cards, load_cards
from fgi.evaluation.figures import bin_order
from fgi.evaluation.report import validation_reference
from fgi.evaluation.tables import PSNR_CAP
from fgi.inference import cpu_name, resolve_precision

FIGURES = ("fig4_comparison.png", "fig5_foreground.png", "training_curves.png", "metrics_by_bin.png")
REGIONS = {"full": "Whole image", "foreground": "Foreground (face + hair)", "hole": "Hole"}


def run_info(root: Path, wall_s: float | None, cards: Cards, ablation: bool | None = False) -> dict:
    """The run's identity; `reading` is the reading (`base_loss`) of the proposed method."""
    import torch  # noqa: PLC0415 - only for its version; `fgi study` starts without it otherwise

    params = yaml.safe_load((root / "params.yaml").read_text())
    per_image = pd.read_csv(root / "reports" / "per_image.csv", dtype={"image_id": str})
    pairs = pd.read_csv(root / "data" / "holes" / "test_pairs.csv", dtype={"image_id": str}).to_dict("records")
    reference = validation_reference(per_image, pairs, params["train"]["val_images"], cards)
    where = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp, experiment = params["train"].get("amp", "float32"), params.get("tracking", {}).get("experiment")
    return {"profile": params["profile"],
            "reading": params["models"].get(cards.proposed(), {}).get("base_loss", "default"),
            "max_steps": params["train"]["max_steps"], "size": params["data"]["size"],
            "seed": params["train"]["seed"], "commit": git_commit(root),
            "amp": amp, "precision": resolve_precision(amp, where),
            "cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
            "cuda": torch.cuda.is_available(), "wall_s": wall_s,
            "stage_wall_s": stage_wall_times(root, experiment, ablation) if experiment else {},
            "reference_val_hole_psnr": reference[1] if reference else float("nan")}


def git_commit(root: Path) -> str | None:
    """The commit the run's code came from, with `+changes` when the work tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "fgi", "stages"],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if dirty else "")


def stage_wall_times(root: Path, experiment: str, ablation: bool | None) -> dict[str, float]:
    """Seconds of each stage's latest MLflow run in `experiment`: of the workspace's `dvc repro`,
    with `ablation` of the latest DVC experiment, with None of whichever ran last. Empty when
    tracking was off. A stage's run starts after its imports, so the sum falls a little short
    of the wall time."""
    import mlflow  # noqa: PLC0415 - slow to import; only the record needs it

    from fgi.tracking import tracking_uri  # noqa: PLC0415

    uri = tracking_uri(root)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return {}  # tracking was off; do not create a store just to find it empty
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    runs = [run for run in client.search_runs([found.experiment_id], max_results=5000) if run.info.end_time]
    if ablation is None and runs:
        ablation = max(runs, key=lambda run: run.info.start_time).data.tags.get("dvc_exp", "workspace") != "workspace"
    runs = [run for run in runs if (run.data.tags.get("dvc_exp", "workspace") != "workspace") == ablation]
    if not runs:
        return {}
    if ablation:  # the experiment of the latest run
        latest = max(runs, key=lambda run: run.info.start_time).data.tags["dvc_exp"]
        runs = [run for run in runs if run.data.tags["dvc_exp"] == latest]
    times: dict[str, tuple[int, float]] = {}
    for run in runs:
        stage = run.data.tags.get("dvc_stage", "manual")
        if stage not in times or run.info.start_time > times[stage][0]:
            times[stage] = (run.info.start_time, (run.info.end_time - run.info.start_time) / 1000)
    order = sorted(times, key=lambda stage: times[stage][0])
    return {stage: round(times[stage][1], 1) for stage in order}


def validation_summary(val: pd.DataFrame, last: int = 4) -> dict:
    """First, best (and its step), final, the mean of the last `last` validations, and the slope
    of a least-squares line through the second half of the run, in dB per 1,000 steps: near 0
    when the curve has flattened."""
    best = val.loc[val["psnr_hole"].idxmax()]
    half = val[val["step"] > val["step"].iloc[-1] / 2]
    slope = float(np.polyfit(half["step"], half["psnr_hole"], 1)[0] * 1000) if len(half) >= 3 else float("nan")
    return {"first": float(val["psnr_hole"].iloc[0]), "best": float(best["psnr_hole"]), "best_step": int(best["step"]),
            "final": float(val["psnr_hole"].iloc[-1]), "last_mean": float(val["psnr_hole"].tail(last).mean()),
            "final_step": int(val["step"].iloc[-1]), "slope_per_1000": slope}


def _ranking_table(ranked: pd.DataFrame, cards: Cards) -> list[str]:
    """One region's rows of `tables.rank_frame`: per bin and `all`, each method's mean PSNR with
    its rank interval, the order with ties, and the best learned model's gap to the reference."""
    methods = list(dict.fromkeys(ranked["Method"]))
    learned = [cards.display(m) for m in cards.learned() if cards.display(m) in methods]
    reference = next((cards.display(m) for m in cards.with_role("reference") if cards.display(m) in methods), None)
    lines = ["| Hole ratio | " + " | ".join(methods) + f" | Order | Best learned − {(reference or '').lower()} (dB) |",
             "| --- |" + " ---: |" * len(methods) + " --- | ---: |"]
    for label, rows in sorted(ranked.groupby("Hole ratio", sort=False), key=lambda group: group[0] == "all"):
        row = rows.set_index("Method")
        cells = [f"{row.at[m, 'PSNR ↑']:.2f} ({row.at[m, 'Rank ci_low']}"
                 + ("" if row.at[m, "Rank ci_low"] == row.at[m, "Rank ci_high"] else f"–{row.at[m, 'Rank ci_high']}")
                 + ")" for m in methods]
        gap = row.loc[learned, "PSNR ↑"].max() - row.at[reference, "PSNR ↑"] if learned and reference else float("nan")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ranks.written_order(rows)} | {gap:+.2f} |")
    return lines


def ranking_markdown(per_image: pd.DataFrame, cards: Cards, bootstrap,
                     seeds: dict[int, pd.DataFrame] | None = None) -> str:
    """The methods ordered by mean PSNR in each region, per hole-ratio bin and over all pairs, each
    mean with the interval of its rank and the order written with ties (`ranks.written_order`);
    with `seeds` ({seed: per-image rows} of the profile's training seeds, this run's among
    them), the same again over the seeds (a two-level bootstrap: seeds, then pairs)."""
    level, resamples = f"{bootstrap.level:.0%}", f"{bootstrap.resamples:,}"
    ranked = tables.rank_frame([per_image], bootstrap, cards)
    pooled = tables.rank_frame([seeds[seed] for seed in sorted(seeds)], bootstrap, cards) if seeds else None
    seeds_named = ", ".join(map(str, sorted(seeds or {})))
    lines = ["# Ranking by mean PSNR (dB)", "",
             f"{per_image['image_id'].nunique()} fixed test pairs; `all` is the mean over every pair. Each cell: a "
             f"method's mean PSNR and, in parentheses, the {level} interval of its rank (1 = highest mean) over "
             f"{resamples} bootstrap resamples of the pairs, drawn jointly for every method, the means ranked in each "
             f"(seed {bootstrap.seed} for `all`, seed + i for the i-th bin, as Table 4). **Order** writes `A > B` only "
             "where every method before the `>` has a rank interval wholly better than (not overlapping) every "
             "method after it; `≈` joins methods that no such cut separates: they are not ordered strictly. Every "
             "pair of methods is tested in [Table 5, all pairs](tables/table5_all_pairs.md); both ends of each rank "
             "interval are in [table5_ranks](tables/table5_ranks.md). The last column, the best learned model's mean "
             "minus the classical solver's, has no interval: the all-pairs table tests each such gap.", ""]
    if pooled is not None:
        lines += [f"Under each region, the same over the study profile's training seeds {seeds_named} (this run and "
                  "the `seed-N` variants): means over the seeds, rank intervals from a two-level bootstrap that draws "
                  "the seeds with replacement, then one set of pairs for every drawn seed (the runs share the test "
                  "pairs). Biharmonic is not retrained: its seeds are one run.", ""]
    for region, title in REGIONS.items():
        if region not in set(ranked["Region"]):
            continue
        lines += [f"## {title}", "", *_ranking_table(ranked[ranked["Region"] == region], cards), ""]
        if pooled is not None:
            lines += [f"Over seeds {seeds_named}:", "",
                      *_ranking_table(pooled[pooled["Region"] == region], cards), ""]
    return "\n".join(lines)


def reading_differences(readings: dict[str, pd.DataFrame], bootstrap, proposed: str) -> list[str]:
    """Markdown rows: the first reading minus each other one, per region's PSNR and SSIM, over the
    same pairs: mean paired difference, its bootstrap interval, Wilcoxon p and Holm p."""
    (main, main_frame), *others = readings.items()
    rows = []
    for other, other_frame in others:
        for column in ("full/psnr", "full/ssim", "foreground/psnr", "foreground/ssim", "hole/psnr", "hole/ssim"):
            both = pd.DataFrame({
                name: frame[frame["method"] == proposed].set_index("image_id")[column]
                for name, frame in ((main, main_frame), (other, other_frame))}).dropna().sort_index()
            if column.endswith("psnr"):
                both = both.clip(upper=PSNR_CAP)
            difference = (both[main] - both[other]).to_numpy()
            indices = stats.resample_indices(len(difference), bootstrap.resamples, bootstrap.seed)
            low, high = stats.percentile_ci(difference, indices, bootstrap.level)
            rows.append([f"{main} − {other}", column.replace("/", " ").replace("psnr", "PSNR").replace("ssim", "SSIM"),
                         len(difference), difference.mean(), low, high, stats.wilcoxon_p(difference)])
    holm = stats.holm([row[-1] for row in rows])
    digits = lambda metric: 4 if "SSIM" in metric else 2  # noqa: E731
    return [f"| {name} | {metric} | {pairs} | {mean:+.{digits(metric)}f} [{low:.{digits(metric)}f}, "
            f"{high:.{digits(metric)}f}] | {p:.1e} | {adjusted:.1e} |"
            for (name, metric, pairs, mean, low, high, p), adjusted in zip(rows, holm)]


def ablation_markdown(readings: dict[str, pd.DataFrame], cards: Cards, bootstrap=None) -> str:
    """The proposed method under each reading of its objective (its `base_loss`), on the same test
    pairs, beside the reference; with `bootstrap` (params' eval.bootstrap), the paired differences
    between the readings."""
    first = next(iter(readings.values()))
    proposed = cards.proposed()
    us = cards.display(proposed)
    rows = {f"{us} ({reading})": frame[frame["method"] == proposed] for reading, frame in readings.items()}
    for reference in cards.with_role("reference"):
        rows[f"{cards.display(reference)} (reference)"] = first[first["method"] == reference]
    ids = {name: set(frame["image_id"]) for name, frame in rows.items()}
    if len(set(map(frozenset, ids.values()))) != 1:
        raise ValueError("the readings were not evaluated on the same test pairs")
    labels = bin_order(first["bin"])
    columns = ["full/psnr", "full/ssim", "foreground/psnr", "foreground/ssim", "hole/psnr"]
    header = ["Full PSNR", "Full SSIM", "Foreground PSNR", "Foreground SSIM", "Hole PSNR"]
    lines = [f"# {us}: the two readings of its objective", "",
             "`none` is Eq. 1-4 as printed (every reconstruction term masked by the foreground); `swgan` "
             "adds S-WGAN's full-image perceptual loss under them. Same profile, same steps, same "
             f"{len(next(iter(ids.values())))} test pairs; only `models.{proposed}.base_loss` differs.", "",
             "| Model | " + " | ".join(header) + " |", "| --- |" + " ---: |" * len(header)]
    for name, frame in rows.items():
        values = [frame[c].clip(upper=PSNR_CAP).mean() if c.endswith("psnr") else frame[c].mean() for c in columns]
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" if c.endswith("ssim") else f"{v:.2f}"
                                                 for c, v in zip(columns, values)) + " |")
    lines += ["", "Hole PSNR (dB) per hole-ratio bin:", "",
              "| Model | " + " | ".join(labels) + " |", "| --- |" + " ---: |" * len(labels)]
    for name, frame in rows.items():
        means = frame.assign(v=frame["hole/psnr"].clip(upper=PSNR_CAP)).groupby("bin")["v"].mean()
        lines.append(f"| {name} | " + " | ".join(f"{means[label]:.2f}" for label in labels) + " |")
    if bootstrap is not None:
        level = f"{bootstrap.level:.0%}"
        lines += ["", f"Paired over the same pairs: mean difference [{level} percentile bootstrap interval, "
                  f"{bootstrap.resamples:,} resamples, seed {bootstrap.seed}], two-sided Wilcoxon signed-rank p "
                  "and its Holm-Bonferroni adjustment over the rows:", "",
                  "| Readings | Metric | Pairs | Difference | Wilcoxon p | Holm p |",
                  "| --- | --- | ---: | ---: | ---: | ---: |", *reading_differences(readings, bootstrap, proposed)]
    return "\n".join(lines + [""])


def run_markdown(info: dict, validation: dict[str, pd.DataFrame], cards: Cards) -> str:
    reference = cards.display(next(iter(cards.with_role("reference")), "the reference"))
    wall = "not measured" if info["wall_s"] is None else f"{info['wall_s'] / 60:.1f} min"
    lines = [
        "# The study run", "",
        f"- Profile: `{info['profile']}` (`configs/study.yaml`), {info['size']}², {info['max_steps']} steps per model",
        f"- {cards.display(cards.proposed())}'s reading: `base_loss: {info['reading']}`",
        f"- Precision: `train.amp: {info.get('amp', 'float32')}`, which ran as {info.get('precision', 'float32')}",
        f"- Machine: {info['cpu']}, {info['cores']} cores, CUDA {'yes' if info['cuda'] else 'no'}; torch {info['torch']}",
        f"- Wall time of `dvc repro`: {wall}", "",
        "## Validation hole PSNR during training (dB)", "",
        f"The training loop's validation pairs; {reference.lower()} reaches {info['reference_val_hole_psnr']:.2f} dB "
        "on them. The slope is a least-squares line through the second half of the run, in dB per 1,000 steps: "
        "a curve that has flattened has a slope near 0.",
        "", "| Model | first | best (step) | final (step) | mean of the last 4 | slope, 2nd half |",
        "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for model, val in validation.items():
        s = validation_summary(val)
        lines.append(f"| {cards.display(model)} | {s['first']:.2f} | {s['best']:.2f} ({s['best_step']}) "
                     f"| {s['final']:.2f} ({s['final_step']}) | {s['last_mean']:.2f} | {s['slope_per_1000']:+.2f} |")
    stages = info.get("stage_wall_s") or {}
    if stages:
        lines += ["", "## Time per stage", "",
                  "Each stage's MLflow run (from after its imports to its end), in the order they ran.", "",
                  "| Stage | min |", "| --- | ---: |", *(f"| {stage} | {seconds / 60:.1f} |"
                                                       for stage, seconds in stages.items())]
    return "\n".join(lines + [""])


def _sources(root: Path, target: Path, ablation: bool, variant: bool, cards: Cards) -> list[tuple[Path, Path]]:
    reports = root / "reports"
    if ablation:
        return [(reports / "per_image.csv", target / "per_image.csv"),
                (root / "models" / cards.proposed() / "val.csv", target / "val.csv")]
    runs = ([(table, target / "tables" / table.name) for table in sorted((reports / "tables").glob("*.*"))]
            + [(root / "models" / m / "val.csv", target / "curves" / f"{m}_val.csv") for m in cards.learned()]
            + [(reports / name, target / name) for name in ("per_image.csv", "per_image_components.csv")])
    if variant:
        return runs
    return runs + [(reports / "figures" / name, target / "figures" / name) for name in FIGURES] \
        + [(reports / CARDS, target / CARDS)]


def record(root: Path, out: Path, wall_s: float | None, ablation: bool, variant: str | None = None) -> list[Path]:
    """Copy the run's outputs under `out` (with `variant`, under out/variants/<variant>/); return
    what was written. Nothing is written unless every output is there."""
    needed = [root / "params.yaml", root / "reports" / "per_image.csv", root / "data" / "holes" / "test_pairs.csv",
              root / "reports" / CARDS]
    missing = [path for path in needed if not path.is_file()]
    if not missing:
        cards = load_cards(root / "reports" / CARDS)
        info = run_info(root, wall_s, cards, None if variant else ablation)
        if variant:
            if not (out / "run.json").is_file():
                raise ValueError(f"{out / 'run.json'}: not found; record the main study run before its variants")
            info["changed"] = variants.changed_params(yaml.safe_load((root / "configs" / "study.yaml").read_text()),
                                                      yaml.safe_load((root / "params.yaml").read_text()))
            if not info["changed"]:
                raise ValueError("params.yaml is configs/study.yaml unchanged: that is the main run; "
                                 "record it without --variant")
        target = (out / variants.VARIANTS / variants.check_name(variant) if variant
                  else out / "ablation" / info["reading"] if ablation else out)
        copies = _sources(root, target, ablation, bool(variant), cards)
        missing = [source for source, _ in copies if not source.is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: not found; run `dvc repro` with the study profile first "
                                "(`make study` does it all)")
    for source, dest in copies:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
    written = [dest for _, dest in copies]
    files.write_text_atomic(target / "run.json", json.dumps(info, indent=2) + "\n")
    written.append(target / "run.json")
    stamp(root, out, target, info)
    bootstrap = load_params(root / "params.yaml").eval.bootstrap
    if variant:
        return written + variants.write_variants(out, bootstrap)
    if not ablation:
        written += render_summaries(out, bootstrap)
    return written + write_ablation(out, bootstrap) + variants.write_variants(out, bootstrap)


MAIN_RECORD = ("run.json", "run.md", "ranking.md", "per_image.csv", "per_image_components.csv", CARDS, "tables/",
               "figures/", "curves/", "variants.md", "ablation.md")


def stamp(root: Path, out: Path, target: Path, info: dict) -> None:
    """Stamp what was recorded in `target` (the main run, an ablation or a variant) with the
    pipeline's code and the params it ran (configs/study.yaml and what changed from it)."""
    try:
        where = target.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return  # recorded outside the repository: no committed record
    if not records.is_repository(root):
        return
    profile = "configs/study.yaml"
    changed = variants.changed_params(yaml.safe_load((root / profile).read_text()),
                                      yaml.safe_load((root / "params.yaml").read_text()))
    summaries = [f"{where}/{name}" for name in MAIN_RECORD if (target / name.rstrip("/")).exists()]
    main = target.resolve() == out.resolve()
    name = "study" if main else f"study/{target.resolve().relative_to(out.resolve()).as_posix()}"
    records.stamp(root, name, summaries if main else [f"{where}/"], "make study / make variant (fgi study record)",
                  {"pipeline": True}, params_file=profile, overrides={k: v[1] for k, v in changed.items()},
                  machine=f"{info['cpu']}, {info['cores']} cores")


def render_summaries(out: Path, bootstrap) -> list[Path]:
    """run.md, ranking.md and the tables of every pair of methods (tables/table5_all_pairs,
    tables/table5_ranks) from what `out` holds (run.json, the curves, per_image.csv, the cards and
    the profile's seed variants), so a recorded study is summarised by the current code without
    rerunning it."""
    cards = load_cards(out / CARDS)
    info = json.loads((out / "run.json").read_text())
    per_image = pd.read_csv(out / "per_image.csv", dtype={"image_id": str})
    validation = {model: pd.read_csv(out / "curves" / f"{model}_val.csv") for model in cards.learned()}
    seeds = {seed: pd.read_csv(folder / "per_image.csv", dtype={"image_id": str})
             for seed, folder in variants.profile_seeds(out).items()}
    files.write_text_atomic(out / "ranking.md", ranking_markdown(per_image, cards, bootstrap, seeds or None))
    files.write_text_atomic(out / "run.md", run_markdown(info, validation, cards))
    return [out / "ranking.md", out / "run.md"] + tables.write_comparisons(per_image, out / "tables", bootstrap, cards)


def write_ablation(out: Path, bootstrap=None) -> list[Path]:
    """ablation.md from the main run and every recorded reading, once there are two."""
    if not (out / "run.json").is_file():
        return []
    main_reading = json.loads((out / "run.json").read_text())["reading"]
    readings = {main_reading: pd.read_csv(out / "per_image.csv", dtype={"image_id": str})}
    for folder in sorted((out / "ablation").glob("*/")):
        if folder.name != main_reading and (folder / "per_image.csv").is_file():
            readings[folder.name] = pd.read_csv(folder / "per_image.csv", dtype={"image_id": str})
    if len(readings) < 2:
        return []
    files.write_text_atomic(out / "ablation.md", ablation_markdown(readings, load_cards(out / CARDS), bootstrap))
    return [out / "ablation.md"]


def register(commands: argparse._SubParsersAction) -> None:
    study = commands.add_parser("study", help="record the CPU study's outputs in docs/study/")
    actions = study.add_subparsers(dest="action", required=True)
    rec = actions.add_parser("record", help="copy this run's tables, figures and curves into --out")
    rec.add_argument("--out", default="docs/study")
    rec.add_argument("--wall-s", type=float, default=None, help="the measured wall time of `dvc repro`")
    rec.add_argument("--ablation", action="store_true", help="record Ours's reading only (a DVC experiment)")
    rec.add_argument("--variant", metavar="NAME", help="record a whole rerun with other params under "
                     "--out/variants/NAME/ (e.g. train-mix-0.1, seed-1) and compare it in variants.md")
    rec.set_defaults(run=cmd_record)
    render = actions.add_parser("render", help="rewrite run.md, ranking.md, ablation.md and variants.md from "
                                "--out's records")
    render.add_argument("--out", default="docs/study")
    render.set_defaults(run=cmd_render)


def cmd_record(args: argparse.Namespace) -> int:
    try:
        written = record(Path("."), Path(args.out), args.wall_s, args.ablation, args.variant)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from err
    print(f"recorded {len(written)} files in {args.out}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if not (out / "run.json").is_file():
        raise UserError(f"{out / 'run.json'}: not found; `fgi study record` writes it after a study run")
    bootstrap = load_params(Path("params.yaml")).eval.bootstrap
    written = render_summaries(out, bootstrap) + write_ablation(out, bootstrap) + variants.write_variants(out, bootstrap)
    print(f"rendered {len(written)} files in {out}")
    return 0
