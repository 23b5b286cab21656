"""Intervals and paired tests over the fixed test pairs (docs/design.md §7, docs/metrics.md).

Every method is evaluated on the same test pairs, so comparisons are paired:
one set of bootstrap resamples (pair indices drawn with replacement, seeded)
serves every method, and the interval of a difference between two methods is
taken over the same resamples of both. Runs with other training seeds share
the test pairs too, so a two-level resample draws the seeds, then one set of
pairs for every drawn seed.

    resample_indices      (resamples, n) pair indices, the same for every method
    percentile_ci         the percentile interval of the mean over those resamples
    wilcoxon_p            two-sided Wilcoxon signed-rank p-value of paired differences (scipy)
    holm                  Holm-Bonferroni adjusted p-values (step-down, monotone)
    seed_draws            (resamples, seeds) seed indices, a stream apart from the pair draws
    resampled_means       per resample, the mean over drawn seeds of the mean over drawn pairs
    two_level_difference  the difference of two settings' means over seeds and pairs, its interval
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) indices into n paired observations, drawn with replacement."""
    if n < 1:
        raise ValueError("no observations to resample")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_ci(values: np.ndarray, indices: np.ndarray, level: float) -> tuple[float, float]:
    """The `level` percentile bootstrap interval of the mean of `values` (1-d) over `indices`."""
    means = np.asarray(values, dtype=np.float64)[indices].mean(axis=1)  # (resamples,)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value that the paired differences centre on 0.

    Zero differences are dropped (Wilcoxon's own convention); with none left
    there is no evidence of a difference and the p-value is 1."""
    differences = np.asarray(differences, dtype=np.float64)
    if not np.any(differences != 0):
        return 1.0
    return float(stats.wilcoxon(differences, zero_method="wilcox", alternative="two-sided").pvalue)


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni: the k-th smallest of m p-values times (m - k + 1), kept monotone, at most 1."""
    order = np.argsort(pvalues, kind="stable")
    m = len(pvalues)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted.tolist()


def seed_draws(seeds: int, resamples: int, seed: int, stream: int) -> np.ndarray:
    """(resamples, seeds) indices into `seeds` training runs, drawn with replacement. `stream`
    keeps these draws apart from the pair draws of the same `seed` (and one setting's from
    another's), so adding seeds leaves the pair resamples as they were."""
    return np.random.default_rng([seed, stream]).integers(0, seeds, size=(resamples, seeds))


def resampled_means(values: np.ndarray, pair_indices: np.ndarray, seed_indices: np.ndarray | None = None) -> np.ndarray:
    """`values` (seeds, pairs, ...) -> (resamples, ...): in each resample the mean over its drawn
    seeds of the mean over its drawn pairs. One row of `pair_indices` serves every drawn seed
    and every column: the runs were evaluated on the same test pairs. Without `seed_indices`
    every seed counts once in every resample."""
    values = np.asarray(values, dtype=np.float64)
    per_seed = np.stack([run[pair_indices].mean(axis=1) for run in values])  # (seeds, resamples, ...)
    resamples = len(pair_indices)
    if seed_indices is None:
        seed_indices = np.tile(np.arange(len(values)), (resamples, 1))
    return per_seed[seed_indices, np.arange(resamples)[:, None]].mean(axis=1)


def two_level_difference(before: np.ndarray, after: np.ndarray, bootstrap) -> tuple[float, float, float]:
    """`after` − `before`, each (seeds, pairs) with the pairs in the same order: the difference
    of the means over seeds and pairs, and its percentile interval over resamples that draw
    each setting's seeds with replacement, apart (the settings' runs are not paired), and
    one set of pairs for both (they share the test pairs)."""
    before, after = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    pairs = resample_indices(before.shape[1], bootstrap.resamples, bootstrap.seed)
    drawn = (resampled_means(after, pairs, seed_draws(len(after), bootstrap.resamples, bootstrap.seed, 2))
             - resampled_means(before, pairs, seed_draws(len(before), bootstrap.resamples, bootstrap.seed, 1)))
    tail = (1.0 - bootstrap.level) / 2.0
    low, high = np.quantile(drawn, [tail, 1.0 - tail])
    return float(after.mean() - before.mean()), float(low), float(high)
