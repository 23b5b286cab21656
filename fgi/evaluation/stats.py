"""Intervals and paired tests over the fixed test pairs (docs/design.md §7).

Every method is evaluated on the same test pairs, so comparisons are paired:
one set of bootstrap resamples (pair indices drawn with replacement, seeded)
serves every method, and the interval of a difference between two methods is
taken over the same resamples of both.

    resample_indices   (resamples, n) pair indices, the same for every method
    percentile_ci      the percentile interval of the mean over those resamples
    wilcoxon_p         two-sided Wilcoxon signed-rank p-value of paired differences (scipy)
    holm               Holm-Bonferroni adjusted p-values (step-down, monotone)
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
