"""Ranks with intervals, and orders that show ties (docs/metrics.md: "Ranks, ties and seeds").

A method's rank is the place of its mean PSNR among all the methods' (1 = highest).
Its interval comes from the same bootstrap as the tables: in each resample the test
pairs are drawn with replacement, jointly for all methods (and, over several training
seeds, the seeds first, `stats.resampled_means`), every method's mean is taken on the
drawn pairs, and the means are ranked; the interval holds the central `level` of the
ranks a method got. An order is written from those intervals: `A > B` only where every
method before the `>` has a rank interval wholly better than every method after it,
`≈` elsewhere, so near-ties are not written as an order.

    rank_intervals    each method's rank by its mean and the percentile interval of that rank
    separated_groups  methods best first, split only where rank intervals do not overlap
    rank_frame        per region and bin: means, ranks, intervals, groups (table5_ranks)
    written_order     one region and bin of it as text: "A > B ≈ C"
    note              what table5_ranks's columns mean
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from fgi.evaluation import stats


def _ranks(means: np.ndarray) -> np.ndarray:
    """Competition ranks along the last axis, 1 = the highest mean; exactly tied means share
    the better rank (1, 1, 3)."""
    return scipy_stats.rankdata(-np.asarray(means), method="min", axis=-1).astype(int)


def rank_intervals(values: np.ndarray, pair_indices: np.ndarray, level: float,
                   seed_indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`values` (seeds, pairs, methods), higher is better. Returns each method's rank by its mean
    over every seed and pair, and the `level` percentile interval (low, high) of its rank over
    the resamples (`stats.resampled_means`), all methods ranked together in each resample.
    Ranks are whole numbers, so the ends are inverted-CDF quantiles: fewer than (1 - level) / 2
    of the resampled ranks lie below `low`, and at most as many above `high`."""
    values = np.asarray(values, dtype=np.float64)
    drawn = _ranks(stats.resampled_means(values, pair_indices, seed_indices))  # (resamples, methods)
    tail = (1.0 - level) / 2.0
    low = np.quantile(drawn, tail, axis=0, method="inverted_cdf").astype(int)
    high = np.quantile(drawn, 1.0 - tail, axis=0, method="inverted_cdf").astype(int)
    return _ranks(values.mean(axis=(0, 1))), low, high


def separated_groups(means: np.ndarray, low: np.ndarray, high: np.ndarray) -> list[list[int]]:
    """Method indices, highest mean first (equal means in the given order), in groups: a new group
    starts only where the worst rank-interval end of every method before it is better (smaller)
    than the best end of every method after it. Within a group no such cut exists, so its
    methods are not ordered strictly."""
    order = np.argsort(-np.asarray(means), kind="stable")
    low, high = np.asarray(low), np.asarray(high)
    groups = [[int(order[0])]]
    for position in range(1, len(order)):
        if high[order[:position]].max() < low[order[position:]].min():
            groups.append([])
        groups[-1].append(int(order[position]))
    return groups


def written_order(ranked: pd.DataFrame) -> str:
    """Rows of `rank_frame` for one region and bin as `A > B ≈ C`: highest mean first, `>` between
    groups, `≈` within one."""
    ranked = ranked.sort_values("PSNR ↑", ascending=False, kind="stable")
    return " > ".join(" ≈ ".join(group["Method"]) for _, group in ranked.groupby("Group", sort=True))


def rank_frame(psnr: dict[str, list[pd.DataFrame]], bins: list[str], bin_of_pair: pd.Series, bootstrap,
               display: Callable[[str], str]) -> pd.DataFrame:
    """Per region of `psnr` ({region: one (pairs, methods) frame of PSNR per training seed, indexed
    by image_id}), over all pairs (`all`) and per bin of `bins` (`bin_of_pair`: image_id -> bin):
    each method's mean over seeds and pairs, its rank and rank interval (`Rank ci_low`/`ci_high`)
    and its `Group` (1 = best; methods of one group are not ordered strictly). Only the pairs
    every seed has count. `all` resamples with `bootstrap.seed`, the i-th bin with seed + i, as
    Table 4 does; the seeds are drawn from a stream of their own (`stats.seed_draws`)."""
    rows = []
    for region, runs in psnr.items():
        common = sorted(set.intersection(*(set(run.index) for run in runs)))
        methods = list(runs[0].columns)
        for index, label in enumerate(["all", *bins]):
            pairs = [pair for pair in common if label in ("all", bin_of_pair[pair])]
            if not pairs or len(methods) < 2:
                continue
            values = np.stack([run.loc[pairs, methods].to_numpy() for run in runs])  # (seeds, pairs, methods)
            seed = bootstrap.seed + index
            pair_indices = stats.resample_indices(len(pairs), bootstrap.resamples, seed)
            seed_indices = stats.seed_draws(len(runs), bootstrap.resamples, seed, 1) if len(runs) > 1 else None
            rank, low, high = rank_intervals(values, pair_indices, bootstrap.level, seed_indices)
            means = values.mean(axis=(0, 1))
            group_of = {position: number for number, group in enumerate(separated_groups(means, low, high), 1)
                        for position in group}
            rows += [{"Region": region, "Hole ratio": label, "Method": display(method), "Seeds": len(runs),
                      "Pairs": len(pairs), "PSNR ↑": means[i], "Rank": int(rank[i]), "Rank ci_low": int(low[i]),
                      "Rank ci_high": int(high[i]), "Group": group_of[i]} for i, method in enumerate(methods)]
    return pd.DataFrame(rows)


def note(bootstrap, psnr_cap: float) -> str:
    """The note under a rank table (`rank_frame`)."""
    return (f"PSNR ↑: the method's mean PSNR (capped at {psnr_cap:g} dB) over the row's pairs (all of them, or one "
            "hole-ratio bin), and over the training seeds where Seeds > 1. Rank: its place among the methods' means "
            f"(1 = highest; equal means share the better rank), with the {bootstrap.level:.0%} percentile interval of "
            f"that rank [low, high] over {bootstrap.resamples:,} bootstrap resamples (seed {bootstrap.seed} for all "
            "pairs, seed + i for the i-th bin): each resample draws the pairs with replacement, the same for every "
            "method (over several seeds, the seeds first), and ranks the methods' means on them; the ends are "
            "inverted-CDF quantiles of those ranks. Group: 1 for the best; a new group starts only where every "
            "method before it has a rank interval wholly better (all its ranks smaller) than every method after "
            "it, so methods that share a group are not ordered strictly: a near-tie is not an order.")
