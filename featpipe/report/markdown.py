"""The report as Markdown, for a terminal or a repository.

Rendered from the results dict alone, with the same display strings as the
HTML page; figures are linked as ``figures/*.png`` beside ``report.md``.
"""

from featpipe.report.results import (
    RESULTS_COLUMNS, SECONDS_COLUMNS, per_class_table, reproduction_items, results_rows,
    seconds_rows, summary_line,
)
from featpipe.report.figures import SECTIONS


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header, rows, numeric_from=1):
    """A GitHub-flavoured table; columns from ``numeric_from`` on are right-aligned."""
    lines = ["| " + " | ".join(_cell(name) for name in header) + " |"]
    lines.append("|" + "|".join("---" if i < numeric_from else "---:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def render_markdown(results):
    """Return the report as a Markdown string.

    Parameters
    ----------
    results : dict
        From :func:`featpipe.report.results.collect_results`, with its
        ``figures`` drawn.

    Returns
    -------
    text : str
    """
    report = results["report"]
    lines = [
        f"# {report['title']}",
        "",
        f"Created {report['created']} by featpipe {report['featpipe_version']}.",
        "",
        f"**{summary_line(results)}**",
        "",
    ]
    lines += [f"> **Warning:** {warning}\n" for warning in results["warnings"]]
    lines += ["## Results", ""] + _table(RESULTS_COLUMNS, results_rows(results)) + [""]
    lines += ["## Seconds per stage", ""] + _table(SECONDS_COLUMNS, seconds_rows(results)) + [""]
    header, rows = per_class_table(results)
    if rows:
        lines += ["## Test accuracy per class", ""] + _table(header, rows) + [""]
    for section in SECTIONS:
        figures = [figure for figure in results["figures"] if figure["section"] == section]
        if not figures:
            continue
        lines += [f"## {section}", ""]
        for figure in figures:
            lines += [f"### {figure['title']}", "", f"![{_cell(figure['title'])}]({figure['file']})", "",
                      figure["caption"], ""]
    lines += ["## Reproduce", ""]
    for entry in results["pipelines"]:
        lines += [f"### {entry['name']}", ""]
        lines += [f"- **{label}:** `{text}`" for label, text in reproduction_items(entry)]
        lines.append("")
    return "\n".join(lines)
