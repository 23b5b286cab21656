"""docs/fidelity.md's architecture table is what `python -m fgi.methods.summary` prints.

The page carries the table between `<!-- summary:begin -->` and `<!-- summary:end -->`; the first test
rebuilds every learned method's networks at the page's size and width (~3 s on 2 cores) and compares.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fgi.errors import UserError
from fgi.methods import summary

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / summary.PAGE
MICRO = REPO / "tests" / "micro_params.yaml"


def test_fidelity_md_carries_the_current_architecture_table():
    generated = summary.table(summary.SIZE, summary.WIDTH, str(REPO / summary.PARAMS))
    diff = summary.difference(summary.block(PAGE.read_text(encoding="utf-8")), generated)
    assert not diff, (f"{summary.PAGE}'s architecture table is stale; run `{summary.COMMAND}` and reread "
                      f"the prose around it for quoted counts:\n{diff}")


def test_a_planted_change_in_the_block_is_caught():
    documented = summary.block(PAGE.read_text(encoding="utf-8"))
    assert summary.difference(documented, documented) == ""
    row = next(line for line in documented.splitlines() if re.search(r"\b\d+ Conv2d", line))
    edited = re.sub(r"\b(\d+) Conv2d", lambda m: f"{int(m.group(1)) + 1} Conv2d", row, count=1)
    diff = summary.difference(documented.replace(row, edited), documented).splitlines()
    assert f"-{edited}" in diff and f"+{row}" in diff
    # a row dropped or a parameter count changed is caught as well
    assert summary.difference("\n".join(documented.splitlines()[:-1]), documented)
    assert summary.difference(documented.replace(" M |", "0 M |", 1), documented)


def test_write_replaces_exactly_the_block(tmp_path):
    page = tmp_path / "page.md"
    before, after = "# Title\n\nprose above\n\n", "\n\nprose below, `| 1 Conv2d |` included\n"
    page.write_text(f"{before}{summary.BEGIN}\n| stale | table |\n{summary.END}{after}", encoding="utf-8")
    args = ["--size", "64", "--width", "0.25", "--params", str(MICRO), "--write", str(page)]
    summary.main(args)
    expected = summary.table(64, 0.25, str(MICRO))
    assert page.read_text(encoding="utf-8") == f"{before}{summary.BEGIN}\n{expected}\n{summary.END}{after}"
    assert summary.write(page, expected) is False  # already current: not rewritten
    assert [p.name for p in tmp_path.iterdir()] == ["page.md"]  # no temp file left behind


@pytest.mark.parametrize("text", ["no markers at all\n",
                                  f"{summary.END}\n| t |\n{summary.BEGIN}\n",
                                  f"{summary.BEGIN}\n| t |\n{summary.END}\n{summary.BEGIN}\n{summary.END}\n"],
                         ids=["missing", "reversed", "twice"])
def test_a_page_without_one_marked_block_is_refused(text):
    with pytest.raises(UserError, match="summary:begin"):
        summary.replace_block(text, "| t |")
