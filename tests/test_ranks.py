"""Ranks with intervals, orders that show ties, and every pair of methods tested: hand-checked cases."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fgi.cli import main as fgi_main
from fgi.config import load_params
from fgi.evaluation import ranks, stats, tables
from fgi.evaluation.cards import CARDS, write_cards
from conftest import built_in_cards
from test_stats import per_image_rows

BOOTSTRAP = SimpleNamespace(resamples=4000, level=0.95, seed=0)
ROOT_PARAMS = str(Path(__file__).resolve().parents[1] / "params.yaml")


def one_run(*columns) -> np.ndarray:
    """(1 seed, pairs, methods) from one list of per-pair values per method."""
    return np.array(columns, dtype=float).T[None]


def test_two_exactly_tied_methods_share_a_rank_and_are_written_as_tied():
    x = np.array([20.0, 25.0, 22.0, 31.0, 27.0, 24.0])
    values = one_run(x, x, x - 5)  # A and B equal on every pair; C 5 dB below on every pair
    indices = stats.resample_indices(len(x), BOOTSTRAP.resamples, BOOTSTRAP.seed)
    rank, low, high = ranks.rank_intervals(values, indices, BOOTSTRAP.level)
    assert rank.tolist() == [1, 1, 3]  # equal means share the better rank
    assert low.tolist() == [1, 1, 3] and high.tolist() == [1, 1, 3]
    assert ranks.separated_groups(values.mean(axis=(0, 1)), low, high) == [[0, 1], [2]]


def test_a_clear_separation_gives_one_rank_each_and_a_strict_order():
    x = np.array([20.0, 25.0, 22.0, 31.0, 27.0, 24.0])
    values = one_run(x, x + 10, x + 5)  # the pairs vary a lot, the gaps between methods not at all
    indices = stats.resample_indices(len(x), BOOTSTRAP.resamples, BOOTSTRAP.seed)
    rank, low, high = ranks.rank_intervals(values, indices, BOOTSTRAP.level)
    assert rank.tolist() == low.tolist() == high.tolist() == [3, 1, 2]
    assert ranks.separated_groups(values.mean(axis=(0, 1)), low, high) == [[1], [2], [0]]


def test_the_rank_interval_of_two_values_is_hand_checkable():
    """A is 0 or 3 on two pairs, B is 1 on both. A resample's mean of A is 0, 1.5 or 3 with chances
    1/4, 1/2, 1/4: A is second (below B) with chance 1/4, far over the 2.5 % tail, else first.
    So both rank intervals are 1-2, A ranks first by its mean (1.5), and the two are a tie."""
    values = one_run([0.0, 3.0], [1.0, 1.0])
    indices = stats.resample_indices(2, BOOTSTRAP.resamples, BOOTSTRAP.seed)
    rank, low, high = ranks.rank_intervals(values, indices, BOOTSTRAP.level)
    assert rank.tolist() == [1, 2] and low.tolist() == [1, 1] and high.tolist() == [2, 2]
    assert ranks.separated_groups(np.array([1.5, 1.0]), low, high) == [[0, 1]]
    # At 40 % the tails hold 30 % each: A's 25 % of second places fall in the tail, so A is 1-1.
    rank, low, high = ranks.rank_intervals(values, indices, 0.40)
    assert low.tolist() == [1, 2] and high.tolist() == [1, 2]


@pytest.mark.parametrize("low, high, groups", [
    ([1, 1, 3, 3], [2, 2, 4, 4], [[0, 1], [2, 3]]),  # two pairs of ties, apart from each other
    ([1, 2, 2], [1, 3, 4], [[0], [1, 2]]),           # the first alone; B and C overlap
    ([1, 1, 2], [2, 3, 3], [[0, 1, 2]]),             # A and C do not overlap, but B bridges them: no cut
    ([1, 3, 2], [1, 3, 3], [[0], [1, 2]]),           # C's interval reaches above B's: no cut between them
])
def test_a_cut_needs_every_method_before_it_wholly_better_than_every_method_after_it(low, high, groups):
    means = np.arange(len(low), 0, -1, dtype=float)  # already in order, highest first
    assert ranks.separated_groups(means, np.array(low), np.array(high)) == groups


def test_the_written_order_joins_groups_with_greater_and_ties_with_approx():
    ranked = pd.DataFrame({"Method": ["CE", "PConv", "Ours", "Biharmonic"], "PSNR ↑": [20.0, 29.6, 29.56, 35.0],
                           "Group": [3, 2, 2, 1]})
    assert ranks.written_order(ranked) == "Biharmonic > PConv ≈ Ours > CE"


def test_rank_frame_ranks_each_region_and_bin_and_marks_ties():
    """PConv equals Ours on every pair (a tie), CE is 10 dB below both: per bin and over all pairs."""
    ours = [30, 31, 29, 35, 28, 33, 30, 32]
    psnr = {"ce": [v - 10 for v in ours], "pconv": ours, "ours": ours}
    frame = per_image_rows(psnr, {m: [10.0] * 8 for m in psnr})
    ranked = tables.rank_frame([frame], BOOTSTRAP, built_in_cards())
    assert set(ranked["Hole ratio"]) == {"all", "(0.01,0.1]", "(0.1,0.2]"} and set(ranked["Region"]) == {
        "full", "foreground", "hole"}
    every = ranked[(ranked["Region"] == "hole") & (ranked["Hole ratio"] == "all")].set_index("Method")
    assert every.loc["Ours", ["Rank", "Rank ci_low", "Rank ci_high", "Group"]].tolist() == [1, 1, 1, 1]
    assert every.loc["PConv", "Group"] == 1 and every.loc["CE", ["Rank", "Group"]].tolist() == [3, 2]
    assert every.loc["Ours", "Pairs"] == 8 and every.loc["Ours", "PSNR ↑"] == pytest.approx(np.mean(ours))
    assert ranks.written_order(every.reset_index()) == "PConv ≈ Ours > CE"


def three_methods(pairs: int = 10) -> pd.DataFrame:
    """CE − PConv = 2i and CE − Ours = 3i on pair i = 1..10 (all positive, distinct: exact two-sided
    Wilcoxon p = 2 / 2^10 each); PConv − Ours = i except −1 on pair 1 (p = 4 / 2^10: of the 2^10
    sign patterns only 'none negative' and 'the smallest negative' have W− ≤ 1)."""
    i = np.arange(1, pairs + 1, dtype=float)
    ours = np.full(pairs, 20.0)
    pconv = ours + np.where(i == 1, -1.0, i)
    ce = pconv + 2 * i
    psnr = {"ce": ce.tolist(), "pconv": pconv.tolist(), "ours": ours.tolist()}
    return per_image_rows(psnr, {m: [10.0] * pairs for m in psnr})


def test_every_pair_is_tested_and_holm_runs_over_the_whole_table():
    """18 tests: 3 pairs x 3 regions of PSNR (p = 2/1024 six times, 4/1024 three times) and of SSIM
    (equal on every pair: p = 1). Holm by hand: the six smallest times 18, 17, ..., 13, kept
    monotone, are all 36/1024; the next three times 12, 11, 10 are all 48/1024; the rest 1."""
    frame = tables.all_pairs_frame(three_methods(), BOOTSTRAP, built_in_cards())
    assert len(frame) == 18 and set(frame["Metric"]) == {"PSNR ↑", "SSIM ↑"}  # no LPIPS measured here
    assert list(frame[["Method A", "Method B"]].drop_duplicates().itertuples(index=False, name=None)) == [
        ("CE", "PConv"), ("CE", "Ours"), ("PConv", "Ours")]
    psnr = frame[frame["Metric"] == "PSNR ↑"].set_index(["Method A", "Method B", "Region"])
    for region in ("full", "foreground", "hole"):
        assert psnr.at[("CE", "PConv", region), "Wilcoxon p"] == pytest.approx(2 / 1024)
        assert psnr.at[("CE", "Ours", region), "Wilcoxon p"] == pytest.approx(2 / 1024)
        assert psnr.at[("PConv", "Ours", region), "Wilcoxon p"] == pytest.approx(4 / 1024)
        assert psnr.at[("CE", "PConv", region), "Holm p"] == pytest.approx(36 / 1024)
        assert psnr.at[("CE", "Ours", region), "Holm p"] == pytest.approx(36 / 1024)
        assert psnr.at[("PConv", "Ours", region), "Holm p"] == pytest.approx(48 / 1024)
        assert psnr.at[("CE", "PConv", region), "A − B"] == pytest.approx(11.0)  # mean of 2i
        assert psnr.at[("PConv", "Ours", region), "Better"] == "PConv"  # 48/1024 < 0.05
    assert stats.holm(frame["Wilcoxon p"].tolist()) == pytest.approx(frame["Holm p"].tolist())
    ssim = frame[frame["Metric"] == "SSIM ↑"]
    assert (ssim["Holm p"] == 1.0).all() and (ssim["Better"] == "—").all()
    assert (ssim["A − B ci_low"] == 0).all() and (ssim["A − B ci_high"] == 0).all()


def test_a_lower_is_better_metric_names_the_smaller_value_better():
    assert tables.better("CE", "Ours", "LPIPS ↓", -0.1, 0.01, 0.05) == "CE"
    assert tables.better("CE", "Ours", "PSNR ↑", -0.1, 0.01, 0.05) == "Ours"
    assert tables.better("CE", "Ours", "PSNR ↑", -0.1, 0.05, 0.05) == "—"


def test_evaluate_and_fgi_tables_write_the_all_pairs_and_rank_tables(tmp_path):
    """`build_tables` (the evaluate stage) writes them; `fgi tables` rebuilds them alike from the
    saved per-image rows."""
    per_image = three_methods()
    tables.build_tables(per_image, {}, tmp_path / "evaluate", BOOTSTRAP, built_in_cards())
    for name in ("table5_all_pairs", "table5_ranks"):
        assert all((tmp_path / "evaluate" / f"{name}.{kind}").is_file() for kind in ("csv", "md", "tex"))
    md = (tmp_path / "evaluate" / "table5_all_pairs.md").read_text()
    assert md.startswith("### Table 5, all pairs: every method against every other")
    assert "| CE | PConv | full | PSNR ↑ | 10 | +11.00 [" in md and "adjustment over all 18 tests" in md
    ranked = (tmp_path / "evaluate" / "table5_ranks.md").read_text()
    assert "| hole | all | CE | 1 | 10 | 36.30 | 1 [1, 1] | 1 |" in ranked  # CE above both on every pair

    reports = tmp_path / "reports"
    reports.mkdir()
    per_image.to_csv(reports / "per_image.csv", index=False)
    write_cards(reports / CARDS, built_in_cards())
    assert fgi_main(["tables", "--reports", str(reports), "--params", ROOT_PARAMS]) == 0
    bootstrap = load_params(ROOT_PARAMS).eval.bootstrap  # what `fgi tables` resampled with
    saved = pd.read_csv(reports / "per_image.csv", dtype={"image_id": str})
    pd.testing.assert_frame_equal(pd.read_csv(reports / "tables" / "table5_all_pairs.csv"),
                                  tables.all_pairs_frame(saved, bootstrap, built_in_cards()), check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_csv(reports / "tables" / "table5_ranks.csv", dtype={"Hole ratio": str}),
                                  tables.rank_frame([saved], bootstrap, built_in_cards()), check_dtype=False)
