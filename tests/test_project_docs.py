"""The README and docs/ stay true to the repository: CI runs the README's test line, and every
figure the docs quote links to a row of benchmarks/RESULTS.md that exists."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "data" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _quick_start_commands():
    """The indented command lines of the README's "Quick start" section, comments removed."""
    section = (ROOT / "README.md").read_text().split("\n## Quick start\n")[1].split("\n## ")[0]
    return [line.split("#")[0].strip() for line in section.splitlines() if line.startswith("    ")]


def test_readme_has_the_two_set_up_commands():
    install_and_run, install_and_test = _quick_start_commands()
    assert install_and_run.startswith("pip install -e . && featpipe run ")
    assert install_and_test.startswith("pip install -e \".[test]\" && pytest")


def test_ci_runs_the_readme_test_line_word_for_word():
    test_line = _quick_start_commands()[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_line in ci_lines
    development = (ROOT / "README.md").read_text().split("\n## Development\n")[1]
    assert f"    {test_line}\n" in development


def _heading_anchor(heading):
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=[str(path.relative_to(ROOT)) for path in DOCS])
def test_links_to_results_find_their_row(doc):
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', results))
    anchors |= {_heading_anchor(heading) for heading in re.findall(r"^#+ (.*)$", results, re.MULTILINE)}
    linked = re.findall(r"RESULTS\.md#([\w-]+)", doc.read_text())
    assert set(linked) <= anchors, sorted(set(linked) - anchors)
