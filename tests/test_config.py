"""Params validation: both profiles pass, every kind of mistake is one clear line."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fgi.config import ParamsError, check_sections, flatten, load_params, method_config, parse_params

REPO = Path(__file__).resolve().parents[1]
PROFILES = [REPO / "params.yaml", REPO / "configs" / "paper.yaml", REPO / "tests" / "micro_params.yaml"]


def raw(path: Path = REPO / "params.yaml") -> dict:
    return yaml.safe_load(path.read_text())


def key_paths(tree: dict) -> set[str]:
    paths = set()
    for key, value in tree.items():
        paths.add(key)
        if isinstance(value, dict) and value:
            paths |= {f"{key}.{sub}" for sub in key_paths(value)}
    return paths


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_profiles_are_valid(path):
    params = load_params(path)
    check_sections(params)
    assert list(params.methods) == ["ce", "pconv", "gc", "lama", "ours", "biharmonic"]  # the paper's table order
    assert params.holes.ratio_min < params.holes.ratio_max


def test_profiles_carry_the_same_keys():
    demo, paper, micro = (key_paths(raw(path)) for path in PROFILES)
    assert demo == paper
    assert demo == micro


def test_paper_profile_holds_the_papers_values():
    paper = load_params(REPO / "configs" / "paper.yaml")
    assert paper.data.size == 256
    assert (paper.split.train, paper.split.test) == (27000, 3000)
    assert (paper.holes.ratio_min, paper.holes.ratio_max) == (0.01, 0.60)
    assert paper.train.batch_size == 5 and paper.train.epochs == 100 and paper.train.max_steps == 0
    assert (method_config(paper, "ours").lr_g, method_config(paper, "ours").lr_d) == (1e-4, 1e-12)
    assert paper.foreground.parts == ["skin", "hair"]
    assert paper.data.source == "celebamask_hq" and paper.holes.source == "qd_imd"


def edit(path: str, value, delete: bool = False) -> dict:
    tree = copy.deepcopy(raw())
    *parents, last = path.split(".")
    node = tree
    for key in parents:
        node = node[key]
    if delete:
        del node[last]
    else:
        node[last] = value
    return tree


BAD = [
    # (what, edit, expected start of the one line)
    ("unknown key", lambda: edit("data.sise", 64), "data.sise: unknown key; allowed keys in data:"),
    ("wrong type", lambda: edit("data.size", "big"), "data.size: expected an integer, got 'big'"),
    ("bool is not int", lambda: edit("train.batch_size", True), "train.batch_size: expected an integer"),
    ("int is not bool", lambda: edit("train.channels_last", 1), "train.channels_last: expected true or false"),
    ("old boolean amp", lambda: edit("train.amp", True), "train.amp: True is not allowed; choose one of: auto, float32, bfloat16"),
    ("out of range", lambda: edit("holes.ratio_max", 1.5), "holes.ratio_max: 1.5 is out of range"),
    ("negative", lambda: edit("models.ours.lr_g", -1.0), "models.ours.lr_g: -1.0 is out of range"),
    ("unknown method section", lambda: edit("models.unet", {"width": 1.0}), "models.unet: unknown method; known methods:"),
    ("unknown method", lambda: edit("methods.unet", "fgi/methods/unet"), "methods.unet: unknown method; known methods:"),
    ("listed without a section", lambda: edit("models.gc", None, delete=True),
     "models.gc: missing section; `methods` lists gc"),
    ("no method", lambda: edit("methods", {}), "methods: empty; list the methods to compare"),
    ("unknown data source", lambda: edit("data.source", "imagenet"),
     "data.source: 'imagenet' is not allowed; choose one of: synthetic, celebamask_hq, folder"),
    ("folder source without a folder", lambda: edit("data.source", "folder"),
     "data.folder.images: none; with data.source: folder give the folder of your face images"),
    ("an empty folder key", lambda: edit("data.folder.foreground", ""),
     "data.folder.foreground: empty, and dvc.yaml lists it as a dependency of the manifest stage, which DVC "
     "cannot give an empty path; write none for no folder"),
    ("label ids beyond the label count", lambda: edit("data.folder.label_ids", [1, 17]),
     "data.folder.label_count: 0 must exceed every id of data.folder.label_ids (the largest is 17)"),
    ("a negative label id", lambda: edit("data.folder.label_ids", [-1]),
     "data.folder.label_ids[0]: -1 is out of range"),
    ("unknown square rule", lambda: edit("data.folder.square", "stretch"),
     "data.folder.square: 'stretch' is not allowed"),
    ("hole folder source without a folder", lambda: edit("holes.source", "folder"),
     "holes.folder.train: none; with holes.source: folder give the folder of your hole masks"),
    ("test share of all masks", lambda: edit("holes.folder.test_share", 1.0),
     "holes.folder.test_share: 1.0 is out of range"),
    ("split of a count and a share", lambda: edit("split.test", 0.2),
     "split: train 252 and test 0.2 mix a count and a fraction"),
    ("split share of 1 or more", lambda: {**edit("split.train", 1.5), "split": {"train": 1.5, "test": 0.1}},
     "split.train: 1.5 is a fraction but not below 1"),
    ("split shares over 1", lambda: {**edit("split.train", 0.9), "split": {"train": 0.9, "test": 0.2}},
     "split: train + test = 1.1 of the images; the two shares may add up to 1 at most"),
    ("split as text", lambda: edit("split.test", "ten"),
     "split.test: expected a whole number or a fraction, got 'ten'"),
    ("unknown hole source", lambda: edit("holes.source", "scribbles"), "holes.source: 'scribbles' is not allowed"),
    ("unknown part", lambda: edit("foreground.parts", ["skin", "beard"]),
     "foreground.parts[1]: 'beard' is not allowed"),
    ("missing section", lambda: edit("report", None, delete=True), "report: missing section"),
    ("missing key", lambda: edit("train.amp", None, delete=True), "train.amp: missing key"),
    ("unknown critic", lambda: edit("models.ours.critic", "hinge"), "models.ours.critic: 'hinge' is not allowed"),
    ("ratio order", lambda: edit("holes.ratio_min", 0.7), "holes.ratio_min: 0.7 must be below holes.ratio_max"),
    ("split too big", lambda: edit("split.train", 10_000), "split: train + test = 10048 exceeds"),
    ("source without url or path", lambda: edit("data.source", "celebamask_hq"),
     "data.celebamask_hq: give `url` or `path`"),
    ("section not a mapping", lambda: edit("train", [1, 2]), "train: expected a mapping"),
    ("several nodes without a rendezvous", lambda: edit("train.nnodes", 2),
     "train.rdzv_endpoint: '' is not host:port; with train.nnodes 2 every node needs the address"),
]


@pytest.mark.parametrize("what,make,expected", BAD, ids=[case[0] for case in BAD])
def test_bad_params_give_one_line_naming_the_key(what, make, expected):
    with pytest.raises(ParamsError) as caught:
        check_sections(parse_params(make()))
    assert len(caught.value.problems) == 1, caught.value.problems
    line = caught.value.problems[0]
    assert line.startswith(expected), line
    assert "\n" not in line


def test_every_problem_is_reported_at_once():
    tree = edit("data.size", "big")
    tree["train"]["amp"] = "yes"
    tree["models"]["unet"] = {}
    with pytest.raises(ParamsError) as caught:
        parse_params(tree)
    assert len(caught.value.problems) == 3
    tree = edit("models.ours.lr_g", -1.0)
    tree["models"]["gc"]["attention"] = "yes"
    with pytest.raises(ParamsError) as caught:
        check_sections(parse_params(tree))
    assert len(caught.value.problems) == 2


def folder_tree(**folder) -> dict:
    tree = edit("data.source", "folder")
    tree["data"]["folder"].update({"images": "/data/ffhq", **folder})
    return tree


def test_a_folder_source_without_foreground_masks_refuses_the_foreground_guided_method():
    params = parse_params(folder_tree())
    with pytest.raises(ParamsError) as caught:
        check_sections(params)
    assert caught.value.problems == [
        "methods.ours: it learns from a foreground mask per training image, and data.folder.foreground is empty; "
        "give the folder of your face parser's masks (data.folder.foreground), or remove ours from `methods`"]
    with pytest.raises(ParamsError, match="methods.ours: it learns from a foreground mask"):
        method_config(params, "ours")
    for other in ("ce", "pconv", "gc", "lama", "biharmonic"):
        method_config(params, other)
    with_masks = parse_params(folder_tree(foreground="/data/ffhq-parsing", label_ids=[1, 17], label_count=19))
    check_sections(with_masks)
    assert method_config(with_masks, "ours").w_f == 10.0


def test_released_weights_need_the_release_s_size_and_width():
    tree = raw()  # the demo profile: 64², width 0.25
    tree["models"]["lama"]["released"]["path"] = "/data/releases/lama-fourier"
    params = parse_params(tree)
    with pytest.raises(ParamsError) as caught:
        method_config(params, "lama")
    assert caught.value.problems == [
        "models.lama.released: the release (advimman/lama: lama-celeba-hq/lama-fourier (config.yaml and "
        "models/best.ckpt)) works at 256x256, and data.size is 64; set data.size: 256, or clear models.lama.released",
        "models.lama.released: the release's width is 1, and models.lama.width is 0.25; set models.lama.width: 1, "
        "or clear models.lama.released"]
    with pytest.raises(ParamsError, match="models.lama.released: the release"):
        check_sections(params)
    tree["data"]["size"], tree["models"]["lama"]["width"] = 256, 1.0
    tree["models"]["lama"]["released"]["url"] = "https://example.org/lama.zip"
    with pytest.raises(ParamsError, match="both url and path are set"):
        method_config(parse_params(tree), "lama")
    tree["models"]["lama"]["released"]["url"] = ""
    assert method_config(parse_params(tree), "lama").released.given
    tree["models"]["ce"]["released"] = {"url": "", "path": "/x", "sha256": ""}  # CE cannot import
    with pytest.raises(ParamsError, match="models.ce.released: unknown key"):
        method_config(parse_params(tree), "ce")


def test_split_shares_and_counts_keep_their_kind():
    shares = parse_params({**raw(), "split": {"train": 0.9, "test": 0.1}})
    assert (shares.split.train, shares.split.test) == (0.9, 0.1)
    assert isinstance(parse_params(raw()).split.train, int)


def test_a_folder_source_draws_no_component_holes_for_training():
    with pytest.raises(ParamsError, match="holes.train_mix: 0.25 draws training holes from CelebAMask-HQ's part "
                                          "annotations, which data.source: folder does not have; set it to 0"):
        parse_params({**folder_tree(), "holes": {**raw()["holes"], "train_mix": 0.25}})


def test_ints_are_accepted_where_numbers_are_expected():
    params = parse_params(edit("models.ours.w_f", 3))
    assert method_config(params, "ours").w_f == 3.0 and isinstance(method_config(params, "ours").w_f, float)


def test_flatten_gives_dotted_keys():
    flat = flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}})
    assert flat == {"a.b": 1, "a.c.d": [1, 2], "e": {}}


def check_params(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fgi.cli", "check-params", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=60)


def check_params_here(capsys, *args: str) -> tuple[int, str, str]:
    """`fgi check-params` in this process: exit code, stdout, stderr (each subprocess pays
    ~4 s of imports; `test_cli_names_the_file_and_key_path` runs the real command)."""
    from fgi import cli

    try:
        code = cli.main(["check-params", *args])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_prints_ok_for_a_good_file(capsys):
    code, out, _ = check_params_here(capsys, str(REPO / "configs" / "paper.yaml"))
    assert code == 0 and out.strip() == "OK"


@pytest.mark.parametrize("content,expected", [
    ("data: [\n", "not valid YAML at line"),
    ("- 1\n- 2\n", "the top level: expected a mapping"),
    (None, "no such params file"),
], ids=["yaml syntax", "not a mapping", "missing file"])
def test_cli_rejects_unreadable_files_with_exit_2(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_text(content)
    code, _, err = check_params_here(capsys, str(path))
    assert code == 2
    assert expected in err and str(path) in err
    assert "Traceback" not in err


def test_cli_names_the_file_and_key_path(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(edit("models.pconv.w_hole", "six")))
    result = check_params(str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"{path}: models.pconv.w_hole: expected a number, got 'six' (str)"
