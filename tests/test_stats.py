"""Intervals and paired tests: `fgi.evaluation.stats` against hand-computed cases and scipy, and Table 5."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from fgi.evaluation import stats, tables
from conftest import built_in_cards

BOOTSTRAP = SimpleNamespace(resamples=4000, level=0.95, seed=0)


def test_the_interval_of_two_values_is_their_range():
    """Resampling {0, 1} twice gives means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4, so the
    2.5 % and 97.5 % quantiles of the resampled means are exactly 0 and 1."""
    indices = stats.resample_indices(2, 4000, seed=0)
    assert stats.percentile_ci(np.array([0.0, 1.0]), indices, 0.95) == (0.0, 1.0)
    # At 40 % the tails hold 30 % each: both quantiles fall on the middle mean, 0.5.
    assert stats.percentile_ci(np.array([0.0, 1.0]), indices, 0.40) == (0.5, 0.5)


def test_the_interval_matches_the_exact_bootstrap_distribution():
    """Three values: all 27 equally likely resamples enumerated by hand give the exact quantiles;
    the seeded Monte Carlo interval must land on them."""
    values = np.array([1.0, 2.0, 6.0])
    exact = np.array(sorted(np.mean(c) for c in itertools.product(values, repeat=3)))
    assert exact[0] == 1.0 and exact[-1] == 6.0  # the extreme resamples (1,1,1) and (6,6,6), 1/27 each
    low, high = stats.percentile_ci(values, stats.resample_indices(3, 20000, seed=1), 0.90)
    # 5 % tails: only 1/27 = 3.7 % of resamples have mean 1, the next mean, 4/3, has 3/27 more; same at the top
    assert low == pytest.approx(4 / 3) and high == pytest.approx(14 / 3)
    assert (exact <= 4 / 3).mean() > 0.05 and (exact >= 14 / 3).mean() > 0.05


def test_identical_values_have_a_zero_width_interval():
    indices = stats.resample_indices(5, 100, seed=3)
    assert stats.percentile_ci(np.full(5, 7.25), indices, 0.95) == (7.25, 7.25)


def test_wilcoxon_is_scipys_and_all_zero_differences_give_one():
    differences = np.array([1.5, -0.5, 2.0, 3.0, 0.0, 1.0, -1.0, 2.5])
    expected = scipy_stats.wilcoxon(differences[differences != 0]).pvalue
    assert stats.wilcoxon_p(differences) == pytest.approx(expected)
    assert stats.wilcoxon_p(np.zeros(6)) == 1.0


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.03, 0.5 times 4, 3, 2, 1 -> 0.04, 0.06, 0.06 (kept monotone), 0.5
    assert stats.holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # capped at 1


def per_image_rows(psnr: dict[str, list[float]], mse: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for method in psnr:
        for index, (p, m) in enumerate(zip(psnr[method], mse[method])):
            row = {"method": method, "image_id": f"{index:05d}",
                   "bin": "(0.01,0.1]" if index < len(psnr[method]) // 2 else "(0.1,0.2]"}
            for region in ("full", "foreground", "hole"):
                row |= {f"{region}/psnr": p, f"{region}/mse": m, f"{region}/mae": m / 2, f"{region}/ssim": 0.5}
            rows.append(row)
    return pd.DataFrame(rows)


def test_table_intervals_share_one_set_of_resamples_across_methods():
    psnr = {"ours": [30, 31, 29, 35, 28, 33, 30, 32], "ce": [20, 25, 22, 21, 27, 23, 20, 26]}
    frame = per_image_rows(psnr, {m: [10.0] * 8 for m in psnr})
    cis = tables.intervals(frame, "full", BOOTSTRAP, built_in_cards())
    indices = stats.resample_indices(8, BOOTSTRAP.resamples, BOOTSTRAP.seed)
    for method, values in psnr.items():
        means = np.asarray(values, float)[indices].mean(axis=1)
        assert cis[method]["psnr"] == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    assert cis["ours"]["mse"] == (10.0, 10.0)


def test_paired_table_signs_tests_and_verdicts():
    """20 pairs where Ours beats CE on every pair by distinct amounts (exact Wilcoxon p = 2 / 2^20)
    and PConv equals Ours on every pair."""
    ce = [20.0 + (i * 7) % 11 for i in range(20)]
    ours = [value + 1 + 0.25 * i for i, value in enumerate(ce)]
    psnr = {"ours": ours, "ce": ce, "pconv": ours}
    mse = {"ours": [100 - v for v in ours], "ce": [100 - v for v in ce], "pconv": [100 - v for v in ours]}
    paired = tables.paired_frame(per_image_rows(psnr, mse), BOOTSTRAP, built_in_cards())
    assert len(paired) == 2 * 3 * 4  # two others x three regions x four per-pair metrics
    pick = lambda other, region, metric: paired[(paired["Ours vs"] == other) & (paired["Region"] == region)
                                                & (paired["Metric"] == metric)].iloc[0]
    row = pick("CE", "hole", "PSNR ↑")
    differences = np.subtract(ours, ce)
    assert row["Ours − other"] == pytest.approx(differences.mean())
    assert row["Wilcoxon p"] == pytest.approx(scipy_stats.wilcoxon(differences).pvalue)
    assert row["Wilcoxon p"] == pytest.approx(2 / 2**20)
    # Holm over 24 tests: CE's 9 PSNR/MSE/MAE tests share the smallest p, so each gets 24 x p.
    assert row["Holm p"] == pytest.approx(24 * 2 / 2**20)
    assert row["Better"] == "Ours"
    mse_row = pick("CE", "full", "MSE ↓")
    assert mse_row["Ours − other"] == pytest.approx(-differences.mean()) and mse_row["Better"] == "Ours"
    assert pick("CE", "full", "SSIM ↑")["Better"] == "—"  # equal SSIM on every pair
    same = paired[paired["Ours vs"] == "PConv"]
    assert (same["Wilcoxon p"] == 1.0).all() and (same["Better"] == "—").all()
    assert (same["Ours − other ci_low"] == 0).all() and (same["Ours − other ci_high"] == 0).all()


def test_a_method_that_wins_is_named_better():
    ce = [20.0 + (i * 7) % 11 for i in range(20)]
    worse = [value - 1 - 0.25 * i for i, value in enumerate(ce)]
    paired = tables.paired_frame(per_image_rows({"ours": worse, "ce": ce}, {"ours": ce, "ce": ce}), BOOTSTRAP, built_in_cards())
    row = paired[(paired["Region"] == "full") & (paired["Metric"] == "PSNR ↑")].iloc[0]
    assert row["Ours − other"] < 0 and row["Better"] == "CE"


def test_markdown_shows_mean_plus_minus_half_width_and_differences_as_intervals(tmp_path):
    psnr = {"ours": [30, 31, 29, 35, 28, 33, 30, 32], "ce": [20, 25, 22, 21, 27, 23, 20, 26]}
    frame = per_image_rows(psnr, {m: [10.0] * 8 for m in psnr})
    tables.build_tables(frame, {}, tmp_path, BOOTSTRAP, built_in_cards())
    low, high = tables.intervals(frame, "full", BOOTSTRAP, built_in_cards())["ours"]["psnr"]
    table1 = (tmp_path / "table1_full.md").read_text()
    assert f"| {np.mean(psnr['ours']):.2f} ± {(high - low) / 2:.2f} |" in table1
    assert "FID is one distance between two sets of images" in table1
    table5 = (tmp_path / "table5_paired.md").read_text()
    assert "| CE | full | PSNR ↑ | 8 | +8.00 [" in table5 and "Holm-Bonferroni adjustment over all 12 tests" in table5
    assert r"$\pm$" in (tmp_path / "table1_full.tex").read_text()
    csv = pd.read_csv(tmp_path / "table1_full.csv")
    assert csv.loc[csv["Method"] == "Ours", "PSNR ↑ ci_low"].iloc[0] == pytest.approx(low)


# ----------------------------------------------------------------------- two levels: seeds, then pairs

def test_resampled_means_with_every_seed_once_is_the_mean_of_the_seeds_means():
    values = np.array([[[1.0], [2.0], [6.0]], [[3.0], [4.0], [8.0]]])  # (2 seeds, 3 pairs, 1 method)
    indices = stats.resample_indices(3, 50, seed=4)
    expected = (values[0, :, 0][indices].mean(axis=1) + values[1, :, 0][indices].mean(axis=1)) / 2
    assert stats.resampled_means(values, indices)[:, 0] == pytest.approx(expected)


def test_with_identical_seeds_the_two_level_interval_is_the_one_level_paired_one():
    before = np.array([20.0, 25.0, 22.0, 31.0, 27.0, 24.0, 29.0, 21.0])
    after = before + np.array([1.0, -0.5, 2.0, 0.5, 3.0, -1.0, 1.5, 0.0])
    difference, low, high = stats.two_level_difference(np.tile(before, (3, 1)), np.tile(after, (2, 1)), BOOTSTRAP)
    one_level = stats.percentile_ci(after - before, stats.resample_indices(8, BOOTSTRAP.resamples, BOOTSTRAP.seed),
                                    BOOTSTRAP.level)
    assert difference == pytest.approx((after - before).mean())
    assert (low, high) == pytest.approx(one_level)
    assert low < difference < high


def test_a_constant_shift_gives_exactly_that_shift():
    pairs = np.array([20.0, 25.0, 22.0, 31.0, 27.0, 24.0])
    assert stats.two_level_difference(np.tile(pairs, (3, 1)), np.tile(pairs + 2.5, (2, 1)), BOOTSTRAP) == (
        2.5, 2.5, 2.5)


def test_the_seed_level_of_the_interval_by_hand():
    """The after setting's two seeds sit 0 and 1 above the before setting on every pair, so the pairs
    cancel and a resample's difference is the share of seed 1 among two draws: 0, 1/2 or 1 with
    chances 1/4, 1/2, 1/4. Its 95 % interval is [0, 1]; the point is the mean, 1/2."""
    pairs = np.array([20.0, 25.0, 22.0, 31.0])
    assert stats.two_level_difference(pairs[None], np.stack([pairs, pairs + 1]), BOOTSTRAP) == (0.5, 0.0, 1.0)


def test_seed_draws_are_a_stream_apart_from_the_pair_draws():
    seeds = stats.seed_draws(3, 200, seed=0, stream=1)
    assert seeds.shape == (200, 3) and set(np.unique(seeds)) == {0, 1, 2}
    assert np.array_equal(seeds, stats.seed_draws(3, 200, seed=0, stream=1))  # seeded
    assert not np.array_equal(seeds, stats.seed_draws(3, 200, seed=0, stream=2))
    assert not np.array_equal(seeds, stats.resample_indices(3, 200, seed=0))
