"""`fgi study record --variant`: a whole study rerun with other params, set against the main run."""

from __future__ import annotations

import json

import pytest

from fgi.cli import main as fgi_main
from fgi.evaluation import variants
from test_study import fake_run


def row_cells(text: str, start: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(start))
    return [cell.strip() for cell in line.strip("|").split("|")]


def interval(cell: str) -> tuple[float, float, float]:
    mean, bounds = cell.split(" [")
    low, high = bounds.rstrip("]").split(", ")
    return float(mean), float(low), float(high)


def test_changed_params_names_each_dotted_key_that_differs():
    profile = {"holes": {"train_mix": 0.0, "bins": [0.1, 0.2]}, "train": {"seed": 0, "amp": "auto"}}
    params = {"holes": {"train_mix": 0.1, "bins": [0.1, 0.2]}, "train": {"seed": 0, "amp": "auto", "new": 1}}
    assert variants.changed_params(profile, params) == {"holes.train_mix": [0.0, 0.1], "train.new": [None, 1]}
    assert variants.changed_params(profile, profile) == {}


def test_a_variant_is_compared_paired_with_the_main_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path, "swgan", (20, 22, 30, 32))
    assert fgi_main(["study", "record"]) == 0
    out = tmp_path / "docs" / "study"
    assert (out / "per_image_components.csv").is_file() and not (out / "variants.md").exists()

    fake_run(tmp_path, "swgan", (21, 24, 33, 36), train_mix=0.1, ours_components=(22, 23, 22, 23))
    assert fgi_main(["study", "record", "--variant", "train-mix-0.1"]) == 0
    folder = out / "variants" / "train-mix-0.1"
    info = json.loads((folder / "run.json").read_text())
    assert info["changed"] == {"holes.train_mix": [0.0, 0.1]}
    assert (folder / "per_image_components.csv").is_file() and (folder / "curves" / "ours_val.csv").is_file()
    assert not (folder / "figures").exists()  # a variant keeps numbers, not the main run's figures
    text = (out / "variants.md").read_text()
    assert "`holes.train_mix`: 0.0 → 0.1" in text
    random, components = text.split("### Whole components hidden")
    # Ours: differences 1, 2, 3, 4 on the four pairs: mean +2.50; exact two-sided Wilcoxon p = 2 / 2^4.
    cells = row_cells(random, "| Ours | Hole PSNR |")
    assert cells[2:5] == ["4", "26.00", "28.50"] and cells[6] == "1.2e-01"
    mean, low, high = interval(cells[5])
    assert mean == 2.5 and 1.0 <= low < 2.5 < high <= 4.0
    assert row_cells(random, "| Ours | Full PSNR |")[5].startswith("+2.50")  # full = hole + 10 in the toy run
    assert row_cells(random, "| CE | Hole PSNR |")[5:7] == ["+0.00 [+0.00, +0.00]", "1.0e+00"]
    assert "| Biharmonic |" not in random  # nothing to retrain: identical by construction
    # Components, paired: eyes 20, 21 -> 22, 23 (+2 each); mouth unchanged.
    assert row_cells(components, "| Ours | eyes |")[2:6] == ["2", "20.50", "22.50", "+2.00 [+2.00, +2.00]"]
    assert row_cells(components, "| Ours | mouth |")[5] == "+0.00 [+0.00, +0.00]"
    assert "## Seeds" not in text

    # A main run recorded before per-pair component values were kept: the means, unpaired.
    (out / "per_image_components.csv").unlink()
    assert fgi_main(["study", "render"]) == 0
    components = (out / "variants.md").read_text().split("### Whole components hidden")[1]
    assert "not paired" in components
    cells = row_cells(components, "| Ours | eyes |")
    assert cells[5] == f"+2.00 [{2 - 2 ** 0.5:+.2f}, {2 + 2 ** 0.5:+.2f}]" and cells[6:8] == ["n/a", "n/a"]


def test_seed_variants_are_pooled_with_the_main_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path, "swgan", (20, 22, 30, 32))
    assert fgi_main(["study", "record"]) == 0
    fake_run(tmp_path, "swgan", (22, 24, 32, 34), seed=1, ours_components=(21, 22, 23, 24))
    assert fgi_main(["study", "record", "--variant", "seed-1"]) == 0
    text = (tmp_path / "docs" / "study" / "variants.md").read_text()
    seeds = text.split("## Seeds")[1]
    # Hole PSNR means 26 and 28: 27 ± sd 1.41; eyes 20.5 and 21.5: 21 ± 0.71.
    cells = row_cells(seeds, "| Ours |")
    header = row_cells(seeds, "| Model |")
    assert cells[header.index("Setting")] == "study profile" and cells[header.index("Seeds")] == "0, 1"
    assert cells[header.index("Hole PSNR")] == "27.00 ± 1.41"
    assert cells[header.index("eyes hole PSNR")] == "21.00 ± 0.71"
    assert row_cells(seeds, "| CE |")[header.index("Hole PSNR")] == "2.50 ± 0.00"


def test_a_seed_trained_in_another_precision_is_not_pooled_with_the_profile(tmp_path, monkeypatch):
    """A seed trained in float32 on a CPU without native bfloat16 is another setting than the
    bfloat16 profile: two such seeds pool apart, one alone joins no pool."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "docs" / "study"

    def record(name: str, precision: str, **run) -> None:
        fake_run(tmp_path, "swgan", **run)
        assert fgi_main(["study", "record", *(["--variant", name] if name else [])]) == 0
        info_file = out / (f"variants/{name}" if name else "") / "run.json"
        info_file.write_text(json.dumps(json.loads(info_file.read_text()) | {"precision": precision}))

    record("", "bfloat16", ours_hole=(20, 22, 30, 32))
    record("seed-1", "bfloat16", ours_hole=(22, 24, 32, 34), seed=1)
    record("seed-2", "float32", ours_hole=(40, 40, 40, 40), seed=2)
    folders = sorted(p.parent for p in (out / "variants").glob("*/run.json"))
    assert {name: sorted(seeds) for name, seeds in variants.seed_groups(out, folders).items()} == {"": [0, 1]}
    record("seed-3", "float32", ours_hole=(30, 30, 30, 30), seed=3)
    folders = sorted(p.parent for p in (out / "variants").glob("*/run.json"))
    assert {name: sorted(seeds) for name, seeds in variants.seed_groups(out, folders).items()} == {
        "": [0, 1], "precision=float32": [2, 3]}
    assert sorted(variants.profile_seeds(out)) == [0, 1]


def test_a_changed_setting_run_with_two_seeds_is_pooled_apart(tmp_path, monkeypatch):
    """train_mix 0.1 with seeds 0 and 1 pools into its own row; it never enters the profile's
    spread, and a setting run with one seed gets no row."""
    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path, "swgan", (20, 22, 30, 32))
    assert fgi_main(["study", "record"]) == 0
    fake_run(tmp_path, "swgan", (22, 24, 32, 34), seed=1)
    assert fgi_main(["study", "record", "--variant", "seed-1"]) == 0
    fake_run(tmp_path, "swgan", (30, 30, 30, 30), train_mix=0.1)
    assert fgi_main(["study", "record", "--variant", "train-mix-0.1"]) == 0
    out = tmp_path / "docs" / "study"
    assert variants.seed_groups(out, sorted(p.parent for p in (out / "variants").glob("*/run.json"))).keys() == {""}
    fake_run(tmp_path, "swgan", (24, 24, 24, 24), seed=1, train_mix=0.1)
    assert fgi_main(["study", "record", "--variant", "train-mix-0.1-seed-1"]) == 0
    seeds = (out / "variants.md").read_text().split("## Seeds")[1].split("### ")[0]
    header = row_cells(seeds, "| Model |")
    rows = [row_cells(seeds, line) for line in seeds.splitlines() if line.startswith("| Ours |")]
    assert [(r[header.index("Setting")], r[header.index("Seeds")]) for r in rows] == [
        ("study profile", "0, 1"), ("holes.train_mix=0.1", "0, 1")]
    # The profile stays 26 and 28 (27 ± 1.41); the mix is 30 and 24: 27 ± 4.24.
    assert [r[header.index("Hole PSNR")] for r in rows] == ["27.00 ± 1.41", "27.00 ± 4.24"]


def test_a_setting_is_set_against_the_profile_over_seeds_and_pairs(tmp_path, monkeypatch):
    """Ours's hole PSNR per pair is x, x + 2 under the profile's seeds 0 and 1 and x + 3, x + 5 under the
    mix's, x = (20, 22, 30, 32). The pairs drawn are the same for every run, so they cancel, and a
    resample's difference is 3 + 2 (a − b), a and b the shares of seed 1 in the mix's and the profile's
    two draws: 0, 1/2 or 1 with chances 1/4, 1/2, 1/4 each. So the difference is 1 with chance 1/16,
    5 with chance 1/16, and the 95 % interval is exactly [1, 5] around +3."""
    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path, "swgan", (20, 22, 30, 32))
    assert fgi_main(["study", "record"]) == 0
    fake_run(tmp_path, "swgan", (22, 24, 32, 34), seed=1)
    assert fgi_main(["study", "record", "--variant", "seed-1"]) == 0
    fake_run(tmp_path, "swgan", (23, 25, 33, 35), train_mix=0.1, ours_components=(21, 22, 23, 24))
    assert fgi_main(["study", "record", "--variant", "train-mix-0.1"]) == 0
    fake_run(tmp_path, "swgan", (25, 27, 35, 37), seed=1, train_mix=0.1, ours_components=(21, 22, 23, 24))
    assert fgi_main(["study", "record", "--variant", "train-mix-0.1-seed-1"]) == 0
    out = tmp_path / "docs" / "study"
    text = (out / "variants.md").read_text()
    against = text.split("### holes.train_mix=0.1 − study profile, over seeds and pairs")[1]
    random, components = against.split("Whole components hidden")
    cells = row_cells(random, "| Ours | Hole PSNR |")
    assert cells[2:7] == ["0, 1; 0, 1", "4", "27.00", "30.00", "+3.00 [+1.00, +5.00]"]
    assert row_cells(random, "| CE | Hole PSNR |")[6] == "+0.00 [+0.00, +0.00]"  # the same CE in every run
    assert "only the seeds" not in components  # every run kept its per-pair component values
    # Components: eyes 20, 21 in both profile seeds against 21, 22 in both mix seeds: +1 on every pair.
    assert row_cells(components, "| Ours | eyes |")[2:7] == ["0, 1; 0, 1", "2", "20.50", "21.50", "+1.00 [+1.00, +1.00]"]

    # A main run recorded before per-pair component values were kept: its seed is left out there.
    (out / "per_image_components.csv").unlink()
    assert fgi_main(["study", "render"]) == 0
    components = (out / "variants.md").read_text().split("### holes.train_mix=0.1 − study profile")[1] \
        .split("Whole components hidden")[1]
    assert "only the seeds that kept per-pair component values (the profile's seed 0: no" in components
    assert row_cells(components, "| Ours | eyes |")[2] == "1; 0, 1"


@pytest.mark.parametrize("case, message", [
    ("before-main", "record the main study run before its variants"),
    ("unchanged", "configs/study.yaml unchanged"),
    ("bad-name", "use lower-case letters"),
])
def test_a_variant_that_cannot_be_recorded_says_why_and_exits_2(tmp_path, monkeypatch, capsys, case, message):
    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path, "swgan", (20, 22, 30, 32))
    if case != "before-main":
        assert fgi_main(["study", "record"]) == 0
    if case != "unchanged":
        fake_run(tmp_path, "swgan", (20, 22, 30, 32), seed=3)
    with pytest.raises(SystemExit) as exit_info:
        fgi_main(["study", "record", "--variant", "Seed 3" if case == "bad-name" else "seed-3"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "docs" / "study" / "variants").exists()
