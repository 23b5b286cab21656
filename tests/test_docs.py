"""The docs against the repository, by reading files only.

* docs/design.md's layout (§2) names every module and folder under fgi/, and everything it names exists;
  so does every source file a page names.
* A number quoted from a generated file is in that file: every number in a sentence of README.md or
  docs/*.md that links a file of docs/study/ or reports/ must appear in one of the files the sentence
  links. Quote a figure in the sentence that links its file, in the file's own digits. A pipeline
  output (reports/tables/, ...) is read as git's index holds it, so a `make repro` that lands
  elsewhere on another CPU does not fail the docs that quote the committed demo.
* A number quoted from a stale record says so: where a sentence quotes a measured number (one with
  a decimal part) from a file of a record that `fgi records` lists as stale (docs/records.json: its code changed since), the same
  sentence names the record's commit, "(recorded at 7abde3b, before ...)".
* README.md stays within 2,500 words (as `wc -w` counts them).
* Every relative link of README.md and docs/*.md resolves to a file or folder, and an anchor to a
  heading of its page.
"""

from __future__ import annotations

import re
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from fgi import records

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DESIGN = REPO / "docs" / "design.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
README_WORDS = 2500
# Generated files whose figures the docs quote: the CPU study's record and the pipeline's reports.
SOURCES = ("docs/study/", "reports/")
SOURCE_SUFFIXES = {".md", ".csv", ".json", ".txt"}
# A number as written: digits, thousands commas, a decimal part, an exponent (7.8e-16 is one
# number); not part of a word (table5, python3.11, 64²) and not the fraction of another number.
NUMBER = re.compile(r"(?<![\w.])(?>\d+(?:,\d{3})*(?:\.\d+)?(?:e[-+]?\d+)?)(?!\w)")
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^()\s]+)\)")
FENCE = re.compile(r"^```.*?^```[^\n]*$", re.MULTILINE | re.DOTALL)
# Repository paths a page may name in prose or code, checked to exist (templates like <name> skipped).
SOURCE_PATH = re.compile(r"(?<![\w/.-])((?:fgi|stages|tests|benchmarks|docs)/[\w./-]*\.(?:py|md|yaml|png|json|js|css|html)"
                         r"|configs/[\w.-]+\.yaml)(?!\w)")


def relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# ----------------------------------------------------------------------------- design.md's layout


def layout_block() -> str:
    text = DESIGN.read_text(encoding="utf-8")
    section = re.search(r"^## 2\. Layout\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert section, "docs/design.md has no section '## 2. Layout'"
    block = re.search(r"^```\n(.*?)^```", section.group(1), re.MULTILINE | re.DOTALL)
    assert block, "docs/design.md §2 has no code block with the layout tree"
    return block.group(1)


def layout_paths(block: str) -> list[str]:
    """The paths a layout tree names. An entry is a line indented two spaces per folder level, its
    first word the name (a folder ends in /); a line indented deeper than the next level continues
    the description above it."""
    paths, folders = [], []
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent > 2 * len(folders) or indent % 2:
            continue  # the description of the entry above, continued
        folders = folders[: indent // 2]
        name = line.split()[0]
        paths.append("".join(folders) + name)
        if name.endswith("/"):
            folders.append(name)
    return paths


def package_entries() -> set[str]:
    """Every .py file and every folder under fgi/ (caches and build metadata left out)."""
    found = set()
    for path in (REPO / "fgi").rglob("*"):
        parts = path.relative_to(REPO).parts
        if any(part == "__pycache__" or part.endswith(".egg-info") for part in parts):
            continue
        if path.is_dir():
            found.add(relative(path) + "/")
        elif path.suffix == ".py":
            found.add(relative(path))
    return found


def test_layout_parser_reads_nesting_and_continuations():
    block = ("top.md      a file\n"
             "pkg/        a folder\n"
             "  a.py      its module, whose description\n"
             "            runs on\n"
             "  sub/      a sub-package\n"
             "    b.py    deeper\n"
             "  c.py      back up\n"
             "tail/       another top folder\n")
    assert layout_paths(block) == ["top.md", "pkg/", "pkg/a.py", "pkg/sub/", "pkg/sub/b.py", "pkg/c.py", "tail/"]


def test_design_layout_names_every_module_of_fgi():
    named = set(layout_paths(layout_block()))
    missing = sorted(package_entries() - named)
    assert not missing, f"docs/design.md §2 does not name: {', '.join(missing)} (add a line to its layout tree)"


def test_everything_design_layout_names_exists():
    absent = [path for path in layout_paths(layout_block())
              if not ((REPO / path).is_dir() if path.endswith("/") else (REPO / path).is_file())]
    assert not absent, f"docs/design.md §2 names what does not exist: {', '.join(absent)}"


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_source_file_a_page_names_exists(page):
    absent = sorted({path.rstrip(".") for path in SOURCE_PATH.findall(page.read_text(encoding="utf-8"))
                     if "<" not in path and not (REPO / path.rstrip(".")).exists()})
    assert not absent, f"{relative(page)} names files that do not exist: {', '.join(absent)}"


# ----------------------------------------------------------------------------- quoted numbers


def numbers(text: str) -> set[str]:
    return {match.replace(",", "") for match in NUMBER.findall(text)}


def pipeline_outputs(repo: Path) -> tuple[str, ...]:
    """The paths dvc.lock lists as outputs: `make repro` rewrites them on the user's CPU."""
    return tuple(path.rstrip("/") for path in records.lock_outputs((repo / "dvc.lock").read_text(encoding="utf-8")))


def committed_text(path: Path, repo: Path = REPO) -> str:
    """The text the docs quote: for a pipeline output, the version in git's index (the committed one
    in a fresh clone, even after a `make repro` on a CPU whose float32 kernels land elsewhere; stage
    a remade table with `git add` to check docs against it); for any other file, the file."""
    if path.is_relative_to(repo):
        name = path.relative_to(repo).as_posix()
        if any(name == out or name.startswith(f"{out}/") for out in pipeline_outputs(repo)):
            shown = subprocess.run(["git", "show", f":{name}"], cwd=repo, capture_output=True, check=False)
            if shown.returncode == 0:
                return shown.stdout.decode("utf-8")
    return path.read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def numbers_in_file(path: Path) -> frozenset[str]:
    return frozenset(numbers(committed_text(path)))


def test_quotes_are_checked_against_the_committed_outputs_not_a_local_repro(tmp_path):
    (tmp_path / "reports" / "tables").mkdir(parents=True)
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(
        {"schema": "2.0", "stages": {"evaluate": {"cmd": "python -m stages.evaluate",
                                                  "outs": [{"path": "reports/tables", "md5": "a.dir"}]}}}))
    table = tmp_path / "reports" / "tables" / "table1_full.md"
    table.write_text("| LaMa | 25.21 |\n")
    notes = tmp_path / "reports" / "bench.md"
    notes.write_text("0.497 s\n")
    git = ["git", "-c", "user.name=fgi-test", "-c", "user.email=test@fgi.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "demo"], cwd=tmp_path, check=True)
    table.write_text("| LaMa | 25.62 |\n")  # `make repro` on another CPU
    notes.write_text("0.5 s\n")               # not a pipeline output: read as it is
    assert "25.21" in committed_text(table, tmp_path) and "25.62" not in committed_text(table, tmp_path)
    assert committed_text(notes, tmp_path) == "0.5 s\n"
    subprocess.run(["git", "add", str(table)], cwd=tmp_path, check=True)  # a remade table, staged
    assert "25.62" in committed_text(table, tmp_path)


def blocks(text: str) -> list[str]:
    """Paragraphs, list items, table rows and headings of a Markdown text, code blocks left out."""
    found, current = [], []

    def flush() -> None:
        if current:
            found.append(" ".join(current))
            current.clear()

    for line in FENCE.sub("", text).splitlines():
        stripped = line.strip()
        if not stripped:
            flush()
        elif stripped.startswith(("|", "#")):
            flush()
            found.append(stripped)
        else:
            if re.match(r"(?:[-*]|\d+\.)\s", stripped):
                flush()
            current.append(stripped)
    flush()
    return found


def sentences(block: str) -> list[str]:
    """A block split after a full stop, question or exclamation mark that ends a sentence."""
    return re.split(r"(?<=[.!?])\s+(?=[A-Z(\[*`⟦])", block)


def linked_sources(sentence: str, page: Path, repo: Path = REPO) -> list[Path]:
    out = []
    for _, target in LINK.findall(sentence):
        if re.match(r"\w+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if (path.is_file() and path.suffix in SOURCE_SUFFIXES and path.is_relative_to(repo)
                and path.relative_to(repo).as_posix().startswith(SOURCES)):
            out.append(path)
    return out


def quoted_numbers(sentence: str) -> set[str]:
    prose = LINK.sub(lambda m: m.group(1), sentence)  # the link text stays, the target goes
    return numbers(re.sub(r"`[^`]*`", "", prose))      # code is no quote


LIST_ITEM = re.compile(r"(?:[-*]|\d+\.)\s")


def quotes(page: Path, repo: Path = REPO) -> list[tuple[str, list[Path]]]:
    """(sentence, the generated files it links) for every sentence of `page` that links one. A
    paragraph that ends in a colon lends its links to the list right after it ("in the section's
    last run ([bench](…)):" and then a bullet per figure)."""
    found, lent = [], []
    for block in blocks(page.read_text(encoding="utf-8")):
        if not LIST_ITEM.match(block):
            lent = []
        for sentence in sentences(block):
            sources = [*linked_sources(sentence, page, repo), *lent]
            if sources:
                found.append((sentence, list(dict.fromkeys(sources))))
        if not LIST_ITEM.match(block) and block.rstrip().endswith(":"):
            lent = linked_sources(block, page, repo)
    return found


def unquoted(sentence: str, sources: list[Path]) -> list[str]:
    """The numbers `sentence` writes that none of `sources` holds."""
    present = set().union(*(numbers_in_file(source) for source in sources))
    return sorted(quoted_numbers(sentence) - present)


def test_number_extraction():
    text = "0.0903 s, 1,475 GFLOP, [0.08, 0.16], −0.9331 dB, 64², table5, python3.11, 2000. Eq. 3, 7.8e-16, 1e-6"
    assert numbers(text) == {"0.0903", "1475", "0.08", "0.16", "0.9331", "2000", "3", "7.8e-16", "1e-6"}


def test_sentences_keep_decimals_and_abbreviations_together():
    assert sentences("Ours took 0.09 s (Fig. 4). Then 0.27 s in float32.") == [
        "Ours took 0.09 s (Fig. 4).", "Then 0.27 s in float32."]


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_quoted_number_is_in_its_file(page):
    wrong = [f"{number} (not in {', '.join(relative(s) for s in sources)}): {sentence[:160]}"
             for sentence, sources in quotes(page) for number in unquoted(sentence, sources)]
    assert not wrong, f"{relative(page)} quotes numbers its linked files do not hold:\n" + "\n".join(wrong)


def test_a_list_quotes_the_file_its_lead_in_links(tmp_path):
    (tmp_path / "reports").mkdir()
    bench = tmp_path / "reports" / "bench.md"
    bench.write_text("0.5 0.7\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("Measured in the last run ([bench](reports/bench.md)):\n\n* Ours 0.5 s.\n* Theirs 0.7 s.\n\n"
                    "Later, 0.9 s.\n\n* Then 0.6 s.\n", encoding="utf-8")
    assert quotes(page, tmp_path) == [("Measured in the last run ([bench](reports/bench.md)):", [bench]),
                                      ("* Ours 0.5 s.", [bench]), ("* Theirs 0.7 s.", [bench])]
    assert unquoted("* Ours 0.6 s.", [bench]) == ["0.6"]


def test_readme_quotes_a_generated_file():
    """The check above has something to check: the README quotes reports/bench.md."""
    assert any(REPO / "reports" / "bench.md" in sources and quoted_numbers(sentence)
               for sentence, sources in quotes(README))


def test_a_changed_number_is_caught():
    sentence, sources = next((s, src) for s, src in quotes(README) if unquoted(s, src) == [] and
                             any("." in n for n in quoted_numbers(s)))
    number = next(n for n in sorted(quoted_numbers(sentence)) if "." in n)
    present = set().union(*(numbers_in_file(source) for source in sources))
    changed = next(f"{number}{digit}" for digit in "123456789" if f"{number}{digit}" not in present)
    assert unquoted(sentence.replace(number, changed), sources) == [changed]


# ----------------------------------------------------------------------------- stale records

RECORDED_AT = re.compile(r"recorded at ([0-9a-f]{7,12})")


@lru_cache(maxsize=None)
def record_statuses() -> tuple[records.Status, ...]:
    return tuple(records.statuses(REPO))


def unmarked_stale_quotes(sentence: str, sources: list[Path], statuses) -> list[str]:
    """The stale records `sentence` quotes a measured number from without naming their commit. A
    measured number has a decimal part (0.117, 65.8); a bare integer reads as a count of the
    protocol (200 pairs, seeds 0, 1, 2, 2,000 steps). Of records that are sections of one file,
    those holding the most of the sentence's measured numbers count."""
    measured = {n for n in quoted_numbers(sentence) if "." in n}  # 0.117 is measured; 200 pairs, seed 2 are not
    marks = RECORDED_AT.findall(sentence)
    candidates = [(status, record_file) for source in sources
                  for status, record_file in records.covering(list(statuses), relative(source))]
    held = {record_file: len(measured & numbers(records.section_text(REPO, record_file)))
            for _, record_file in candidates if records.SECTION in record_file}
    found = []
    for status, record_file in candidates:
        if records.SECTION in record_file and not 0 < held[record_file] == max(held.values()):
            continue  # the sentence quotes another section of the file (or none)
        if measured and status.stale and not any(status.commit.startswith(mark) for mark in marks) \
                and status.name not in found:
            found.append(status.name)
    return found


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_a_number_from_a_stale_record_says_when_it_was_recorded(page):
    wrong = [f"{', '.join(names)} (stale: `fgi records`): {sentence[:160]}" for sentence, sources in quotes(page)
             if (names := unmarked_stale_quotes(sentence, sources, record_statuses()))]
    assert not wrong, (f"{relative(page)} quotes stale records without '(recorded at <commit>, before <change>)':\n"
                       + "\n".join(wrong))


def test_a_planted_quote_from_a_stale_record_is_refused():
    stale = records.Status("bench/planted", {"files": ["reports/bench.md#evaluate"], "commit": "4e32d0aea667"},
                           changed=["fgi/evaluation/metrics.py"])
    current = records.Status("bench/planted", stale.entry)
    section = records.section_text(REPO, "reports/bench.md#evaluate")
    number = sorted(numbers(section) - numbers_in_file(REPO / "README.md"), key=len)[-1]
    sentence = f"Ours scored {number} ([bench](reports/bench.md))."
    sources = linked_sources(sentence, README)
    assert unmarked_stale_quotes(sentence, sources, [current]) == []
    assert unmarked_stale_quotes(sentence, sources, [stale]) == ["bench/planted"]
    marked = f"Ours scored {number} (recorded at 4e32d0a, before a faster metric) ([bench](reports/bench.md))."
    assert unmarked_stale_quotes(marked, sources, [stale]) == []
    elsewhere = f"Ours scored {number} (recorded at 1234567) ([bench](reports/bench.md))."
    assert unmarked_stale_quotes(elsewhere, sources, [stale]) == ["bench/planted"]


# ----------------------------------------------------------------------------- length and links


def test_readme_is_short():
    words = len(README.read_text(encoding="utf-8").split())
    assert words <= README_WORDS, f"README.md has {words} words, over {README_WORDS}: move detail to docs/"


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*#*$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        base, n = slug, 1
        while slug in found:
            slug, n = f"{base}-{n}", n + 1
        found.add(slug)
    return found


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_relative_link_resolves(page):
    broken = []
    for _, target in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"\w+:", target):
            continue  # https:, mailto: ...
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target} (no heading with that anchor)")
    assert not broken, f"{relative(page)} links to: {', '.join(broken)}"


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_no_placeholder_is_left(page):
    left = re.findall(r"⟦[^⟧]*⟧", page.read_text(encoding="utf-8"))
    assert not left, f"{relative(page)} still has {len(left)} placeholder(s) to fill, e.g. {left[0][:100]}"
