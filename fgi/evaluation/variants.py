"""Study variants: the study profile rerun with a few params changed, set against the recorded run.

A variant is a whole `dvc repro` of `configs/study.yaml` with some keys changed:
a training share of component holes (`holes.train_mix: 0.1`), another training
seed (`train.seed: 1`). The test pairs stay the same, so every comparison with
the main run (`docs/study/`) is paired. `fgi study record --variant NAME`
copies the variant's outputs to `docs/study/variants/NAME/`:

    run.json                     as the main run's, plus `changed` ({key: [study profile, variant]})
    per_image.csv                every metric of every random-hole test pair
    per_image_components.csv     the same for the component pairs (Table 6)
    tables/, curves/             its Tables 1-6 and validation curves

and `variants.md` sets every variant against the main run:

- random holes (Tables 1-3): per learned method, the paired difference variant - main
  of full, foreground and hole PSNR and hole SSIM: mean, bootstrap interval, Wilcoxon
  p, Holm's adjustment over the variant's rows;
- whole components hidden (Table 6): hole PSNR per method and component, paired the
  same way when both runs recorded `per_image_components.csv`; otherwise the difference
  of the two means with the interval of independent samples, sqrt(h_main² + h_variant²)
  from each run's own half-width, which is wider than a paired one would be;
- seeds: runs that differ only in `train.seed` are pooled into mean ± sample sd across
  seeds, the spread that a retrained GAN adds: the main run with the variants that change
  the seed alone and trained in its precision, and each other setting run with several
  seeds (`holes.train_mix=0.1` with seeds 0 and 1), so a setting is read against the
  seeds' spread, not one run;
  and each such setting against the profile: the difference of the means over seeds,
  with an interval from a two-level bootstrap (`stats.two_level_difference`: each
  setting's seeds drawn apart, then one set of test pairs for both), on random holes and,
  from the seeds that kept per-pair component values, per component.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from fgi import files
from fgi.evaluation import stats
from fgi.evaluation.cards import CARDS, Cards, load_cards
from fgi.evaluation.tables import PSNR_CAP

VARIANTS = "variants"
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
RANDOM_COLUMNS = {"full/psnr": "Full PSNR", "foreground/psnr": "Foreground PSNR", "hole/psnr": "Hole PSNR",
                  "hole/ssim": "Hole SSIM"}
COMPONENT_TABLE = "table6_components.csv"
COMPONENT_PSNR = "Hole PSNR ↑"


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_params(profile: dict, params: dict) -> dict[str, list]:
    """Each dotted key whose value differs between the profile and the run's params: [profile, run]."""
    before, after = flatten(profile), flatten(params)
    return {key: [before.get(key), after.get(key)] for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key)}


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValueError(f"variant name {name!r}: use lower-case letters, digits, '.', '_' and '-' "
                         "(e.g. train-mix-0.1 or seed-1)")
    return name


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path, dtype={"image_id": str}) if path.is_file() else None


def _metric(frame: pd.DataFrame, method: str, column: str) -> pd.Series:
    """One method's per-pair values keyed by (image_id, bin); PSNR capped as in the tables."""
    rows = frame[frame["method"] == method].set_index(["image_id", "bin"])[column]
    return rows.clip(upper=PSNR_CAP) if column.endswith("psnr") else rows


def paired_rows(main: pd.DataFrame, variant: pd.DataFrame, methods: list[str], columns: dict[str, str],
                bootstrap, by_bin: bool = False) -> list[dict]:
    """Per method and column (and bin, with `by_bin`): both means and the paired difference
    variant - main over the pairs both runs evaluated, with its interval and Wilcoxon p."""
    rows = []
    bins = list(dict.fromkeys(main["bin"]))  # the order the stage wrote them
    for method in methods:
        for column, label in columns.items():
            both = pd.DataFrame({"main": _metric(main, method, column),
                                 "variant": _metric(variant, method, column)}).dropna()
            groups = (sorted(both.groupby(level="bin"), key=lambda group: bins.index(group[0])) if by_bin
                      else [(None, both)])
            for group, values in groups:
                difference = (values["variant"] - values["main"]).to_numpy()
                if len(difference) == 0:
                    continue
                indices = stats.resample_indices(len(difference), bootstrap.resamples, bootstrap.seed)
                low, high = stats.percentile_ci(difference, indices, bootstrap.level)
                rows.append({"method": method, "what": group or label, "pairs": len(difference),
                             "main": values["main"].mean(), "variant": values["variant"].mean(),
                             "difference": difference.mean(), "low": low, "high": high,
                             "p": stats.wilcoxon_p(difference)})
    for row, adjusted in zip(rows, stats.holm([row["p"] for row in rows])):
        row["holm"] = adjusted
    return rows


def unpaired_component_rows(main: pd.DataFrame, variant: pd.DataFrame, cards: Cards) -> list[dict]:
    """Hole PSNR per method and component from two runs' Table 6 csv: the difference of the means,
    its interval from both half-widths as if the samples were independent; no test."""
    column = COMPONENT_PSNR
    keyed = {name: frame.set_index(["Method", "Component"]) for name, frame in (("main", main), ("variant", variant))}
    rows = []
    for (display, component), after in keyed["variant"].iterrows():
        if (display, component) not in keyed["main"].index:
            continue
        before = keyed["main"].loc[(display, component)]
        half = np.hypot((before[f"{column} ci_high"] - before[f"{column} ci_low"]) / 2,
                        (after[f"{column} ci_high"] - after[f"{column} ci_low"]) / 2)
        difference = after[column] - before[column]
        method = next((name for name in cards if cards.display(name) == display), display)
        if method not in cards.learned():
            continue  # nothing retrained: the same numbers by construction
        rows.append({"method": method, "what": component, "pairs": int(after["Pairs"]), "main": before[column],
                     "variant": after[column], "difference": difference, "low": difference - half,
                     "high": difference + half, "p": float("nan"), "holm": float("nan")})
    return rows


def _difference_lines(rows: list[dict], cards: Cards, level: str, first: str) -> list[str]:
    digits = lambda what: 4 if "SSIM" in what else 2  # noqa: E731
    lines = [f"| Model | {first} | Pairs | Main | Variant | Variant − main [{level}] | Wilcoxon p | Holm p |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        d = digits(row["what"])
        p = "n/a" if np.isnan(row["p"]) else f"{row['p']:.1e}"
        holm = "n/a" if np.isnan(row["holm"]) else f"{row['holm']:.1e}"
        lines.append(f"| {cards.display(row['method'])} | {row['what']} | {row['pairs']} | {row['main']:.{d}f} "
                     f"| {row['variant']:.{d}f} | {row['difference']:+.{d}f} [{row['low']:+.{d}f}, "
                     f"{row['high']:+.{d}f}] | {p} | {holm} |")
    return lines


def _validation_lines(main: Path, variant: Path, cards: Cards) -> list[str]:
    lines = ["| Model | Main | Variant | Variant − main |", "| --- | ---: | ---: | ---: |"]
    for method in cards.learned():
        curves = [folder / "curves" / f"{method}_val.csv" for folder in (main, variant)]
        if all(path.is_file() for path in curves):
            before, after = (pd.read_csv(path)["psnr_hole"].tail(4).mean() for path in curves)
            lines.append(f"| {cards.display(method)} | {before:.2f} | {after:.2f} | {after - before:+.2f} |")
    return lines


def variant_section(out: Path, folder: Path, cards: Cards, bootstrap) -> list[str]:
    info = json.loads((folder / "run.json").read_text())
    changed = ", ".join(f"`{key}`: {before} → {after}" for key, (before, after) in info["changed"].items())
    wall = "not measured" if info.get("wall_s") is None else f"{info['wall_s'] / 60:.1f} min"
    level = f"{bootstrap.level:.0%} interval"
    learned = cards.learned()
    lines = [f"## {folder.name}", "", f"- Changed from `configs/study.yaml`: {changed}",
             f"- Precision {info.get('precision', 'float32')}; {info['cpu']}, {info['cores']} cores; "
             f"commit {info.get('commit') or 'not recorded'}; wall time of `dvc repro`: {wall}", "",
             "### Random holes (Tables 1-3)", "",
             f"Paired over the same test pairs; {level}: percentile bootstrap, {bootstrap.resamples:,} resamples; "
             "Holm over this table's rows.", "",
             *_difference_lines(paired_rows(_read(out / "per_image.csv"), _read(folder / "per_image.csv"),
                                            learned, RANDOM_COLUMNS, bootstrap), cards, level, "Metric"), ""]
    main_components, variant_components = _read(out / "per_image_components.csv"), \
        _read(folder / "per_image_components.csv")
    lines += ["### Whole components hidden (Table 6): hole PSNR", ""]
    if main_components is not None and variant_components is not None:
        lines += ["Paired over the same component pairs, as above.", "",
                  *_difference_lines(paired_rows(main_components, variant_components, learned,
                                                 {"hole/psnr": "Hole PSNR"}, bootstrap, by_bin=True),
                                     cards, level, "Component")]
    else:
        lines += ["The main run kept only Table 6's means and intervals, not its per-pair values, so these "
                  "differences are not paired: the interval treats the two runs as independent samples "
                  "(sqrt of the sum of both squared half-widths), wider than a paired interval, and there is "
                  "no test.", "",
                  *_difference_lines(unpaired_component_rows(pd.read_csv(out / "tables" / COMPONENT_TABLE),
                                                             pd.read_csv(folder / "tables" / COMPONENT_TABLE),
                                                             cards), cards, level, "Component")]
    lines += ["", "### Validation hole PSNR during training: mean of the last 4 validations (dB)", "",
              *_validation_lines(out, folder, cards), ""]
    return lines


def setting(changed: dict[str, list]) -> str:
    """What a variant changes besides the training seed, `key=value` joined ('' for the profile itself)."""
    return ", ".join(f"{key}={new}" for key, (_, new) in sorted(changed.items()) if key != "train.seed")


def seed_groups(out: Path, folders: list[Path]) -> dict[str, dict[int, Path]]:
    """{setting: {seed: folder}} of every setting that ran with more than one training seed; the
    main run and the variants that change `train.seed` alone make up the profile's setting ''.
    A run that trained in another precision than the main run (`train.amp: auto` gives float32 on a
    CPU without native bfloat16) is another setting, `precision=float32`: seeds pool only alike."""
    main = json.loads((out / "run.json").read_text())
    groups: dict[str, dict[int, Path]] = {"": {main.get("seed", 0): out}}
    for folder in folders:
        info = json.loads((folder / "run.json").read_text())
        seed = info.get("seed", info["changed"].get("train.seed", [0, 0])[1])
        name = setting(info["changed"])
        if (precision := info.get("precision", "float32")) != main.get("precision", "float32"):
            name = ", ".join(filter(None, (name, f"precision={precision}")))
        groups.setdefault(name, {})[int(seed)] = folder
    return {name: seeds for name, seeds in groups.items() if len(seeds) > 1}


def profile_seeds(out: Path) -> dict[int, Path]:
    """{seed: folder} of the study profile's training seeds (the main run and the variants that
    change `train.seed` alone), empty unless there are several."""
    folders = sorted(path.parent for path in (out / VARIANTS).glob("*/run.json"))
    return seed_groups(out, folders).get("", {}) if (out / "run.json").is_file() else {}


def two_level_rows(profile: list[pd.DataFrame], other: list[pd.DataFrame], methods: list[str],
                   columns: dict[str, str], bootstrap, by_bin: bool = False) -> list[dict]:
    """Per method and column (and bin, with `by_bin`): each setting's mean over its seeds (runs)
    and pairs, over the pairs every run has, and the difference other − profile with its
    two-level interval (`stats.two_level_difference`)."""
    rows = []
    runs = [*profile, *other]
    bins = list(dict.fromkeys(runs[0]["bin"]))  # the order the stage wrote them
    for method in methods:
        for column, label in columns.items():
            values = pd.concat([_metric(run, method, column) for run in runs], axis=1,
                               keys=range(len(runs))).dropna().sort_index()
            groups = (sorted(values.groupby(level="bin"), key=lambda group: bins.index(group[0])) if by_bin
                      else [(None, values)])
            for group, pairs in groups:
                if not len(pairs):
                    continue
                before, after = pairs.to_numpy().T[:len(profile)], pairs.to_numpy().T[len(profile):]  # (seeds, pairs)
                difference, low, high = stats.two_level_difference(before, after, bootstrap)
                rows.append({"method": method, "what": group or label, "pairs": len(pairs), "profile": before.mean(),
                             "setting": after.mean(), "difference": difference, "low": low, "high": high})
    return rows


def _two_level_lines(rows: list[dict], cards: Cards, level: str, first: str, seeds: str) -> list[str]:
    lines = [f"| Model | {first} | Seeds ({seeds}) | Pairs | Profile | Setting | Setting − profile [{level}] |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {cards.display(row['method'])} | {row['what']} | {row['seeds']} | {row['pairs']} | "
              f"{row['profile']:.2f} | {row['setting']:.2f} | {row['difference']:+.2f} [{row['low']:+.2f}, "
              f"{row['high']:+.2f}] |" for row in rows]
    return lines


def setting_difference_lines(groups: dict[str, dict[int, Path]], cards: Cards, bootstrap) -> list[str]:
    """Each setting run with several seeds against the study profile: mean PSNR per random-hole
    region and per component, the difference of the means over seeds, its two-level interval."""
    profile = groups.get("")
    if not profile:
        return []
    level, lines = f"{bootstrap.level:.0%} interval", []
    for name, seeds in ((name, seeds) for name, seeds in groups.items() if name):
        sides = (dict(sorted(profile.items())), dict(sorted(seeds.items())))
        random = [[_read(folder / "per_image.csv") for folder in side.values()] for side in sides]
        kept = [{seed: frame for seed, folder in side.items()
                 if (frame := _read(folder / "per_image_components.csv")) is not None} for side in sides]
        listed = lambda chosen: "; ".join(", ".join(map(str, side)) for side in chosen)  # noqa: E731
        # k seeds drawn with replacement give comb(2k - 1, k) distinct multisets: 3 for 2 seeds, 10 for 3
        outcomes = " and ".join(str(math.comb(2 * len(side) - 1, len(side))) for side in sides)
        lines += [f"### {name} − study profile, over seeds and pairs", "",
                  f"Each setting's mean over its seeds of each seed's mean over the pairs, and their difference "
                  f"with its {level}: a two-level bootstrap ({bootstrap.resamples:,} resamples, seed "
                  f"{bootstrap.seed}) that draws each setting's seeds with replacement, apart, then one set of test "
                  f"pairs for both settings and every drawn seed (they share the test pairs). With "
                  f"{len(sides[0])} and {len(sides[1])} seeds, a draw of seeds has {outcomes} distinct outcomes, so "
                  "the interval shows how far these seeds spread, not how far others would; there is no test.", ""]
        rows = two_level_rows(*random, cards.learned(), {c: l for c, l in RANDOM_COLUMNS.items() if c.endswith("psnr")},
                              bootstrap)
        lines += _two_level_lines([row | {"seeds": listed(sides)} for row in rows], cards, level, "Metric",
                                  "profile; setting") + [""]
        if not all(kept):
            lines += ["Whole components hidden (Table 6): no run of one side kept per-pair component values "
                      "(per_image_components.csv), so there is no paired difference here.", ""]
            continue
        missing = [f"{owner}'s seed {seed}" for owner, side, chosen in zip(("the profile", name), sides, kept)
                   for seed in side if seed not in chosen]
        lines += ["Whole components hidden (Table 6), hole PSNR" + (
            f": only the seeds that kept per-pair component values ({', '.join(missing)}: no "
            "per_image_components.csv in the record)." if missing else "."), ""]
        rows = two_level_rows(*[list(chosen.values()) for chosen in kept], cards.learned(),
                              {"hole/psnr": "Hole PSNR"}, bootstrap, by_bin=True)
        lines += _two_level_lines([row | {"seeds": listed(kept)} for row in rows], cards, level, "Component",
                                  "profile; setting") + [""]
    return lines


def seed_lines(groups: dict[str, dict[int, Path]], cards: Cards) -> list[str]:
    """Mean ± sample sd across seeds of each learned method's mean PSNR per region and component,
    one row per method and setting."""
    values: dict[tuple[str, str], dict[str, list[float]]] = {}
    for name, seeds in groups.items():
        for folder in seeds.values():
            per_image = _read(folder / "per_image.csv")
            components = pd.read_csv(folder / "tables" / COMPONENT_TABLE)
            for method in (m for m in cards.learned() if m in set(per_image["method"])):
                row = values.setdefault((method, name), {})
                for column, label in RANDOM_COLUMNS.items():
                    if column.endswith("psnr"):
                        row.setdefault(label, []).append(float(_metric(per_image, method, column).mean()))
                for _, component in components[components["Method"] == cards.display(method)].iterrows():
                    row.setdefault(f"{component['Component']} hole PSNR", []).append(
                        float(component[COMPONENT_PSNR]))
    labels = list(next(iter(values.values())))
    lines = ["## Seeds", "",
             "Every setting that ran with more than one training seed: the study profile (the main run and "
             "the variants that change `train.seed` alone) and each set of params changed alike. Mean ± "
             "sample standard deviation across seeds of each mean PSNR (dB), random holes then whole "
             "components. Below it, each setting against the profile, with intervals over seeds and pairs.", "",
             "| Model | Setting | Seeds | " + " | ".join(labels) + " |",
             "| --- | --- | --- |" + " ---: |" * len(labels)]
    for (method, name), row in sorted(values.items(), key=lambda item: cards.learned().index(item[0][0])):
        seeds = ", ".join(map(str, groups[name]))
        lines.append(f"| {cards.display(method)} | {name or 'study profile'} | {seeds} | " + " | ".join(
            f"{np.mean(row[label]):.2f} ± {np.std(row[label], ddof=1):.2f}" for label in labels) + " |")
    return lines + [""]


def variants_markdown(out: Path, bootstrap) -> str | None:
    """variants.md for `out` (docs/study/), or None before any variant is recorded."""
    folders = sorted(path.parent for path in (out / VARIANTS).glob("*/run.json"))
    if not folders or not (out / "run.json").is_file():
        return None
    cards = load_cards(out / CARDS)
    lines = ["# Study variants", "",
             "The study profile rerun whole (`dvc repro`) with the listed params changed; same data, same test "
             "pairs as the main run (run.md). Every difference is variant − main.", ""]
    for folder in folders:
        lines += variant_section(out, folder, cards, bootstrap)
    groups = seed_groups(out, folders)
    if groups:
        lines += seed_lines(groups, cards) + setting_difference_lines(groups, cards, bootstrap)
    return "\n".join(lines)


def write_variants(out: Path, bootstrap) -> list[Path]:
    text = variants_markdown(out, bootstrap)
    if text is None:
        return []
    files.write_text_atomic(out / "variants.md", text)
    return [out / "variants.md"]
