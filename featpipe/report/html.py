"""The report as one self-contained HTML page.

Rendered from the results dict alone, with the same display strings as the
Markdown. Figures are embedded as base64 ``data:`` URIs and the page loads
nothing from the network (its Content-Security-Policy forbids it), so the
file opens from disk anywhere. The CSS is responsive: figures shrink to the
screen and wide tables scroll sideways inside their box on a phone.
"""

import base64
import struct
from html import escape
from pathlib import Path

from featpipe.report.figures import SECTIONS
from featpipe.report.results import (
    RESULTS_COLUMNS, SECONDS_COLUMNS, per_class_table, reproduction_items, results_rows,
    seconds_rows, summary_line,
)

STYLE = """
:root { color-scheme: light dark; --fg: #1b1b1f; --bg: #fdfdfc; --muted: #5f6368; --line: #d6d6d6;
        --best: #fde8d7; --accent: #d95f02; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e8e8ea; --bg: #17181b; --muted: #a0a4aa; --line: #3a3b40; --best: #4a2d16; }
  figure img { background: #fff; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
main { max-width: 1100px; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.6rem; margin: 0.5rem 0; overflow-wrap: anywhere; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid var(--line); }
.meta { color: var(--muted); font-size: 0.9rem; }
.summary { font-weight: 600; }
.warning { border-left: 4px solid var(--accent); padding: 0.5rem 0.8rem; }
.table-scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; max-width: 100%; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; white-space: nowrap; }
th, td { padding: 0.35rem 0.7rem; border-bottom: 1px solid var(--line); text-align: right; }
th:first-child, td:first-child { text-align: left; position: sticky; left: 0; background: var(--bg); }
tr.best td { background: var(--best); font-weight: 600; }
.figures { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fill, minmax(min(100%, 460px), 1fr)); }
figure { margin: 0; }
figure.wide { grid-column: 1 / -1; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 0.9rem; }
details { margin: 0.5rem 0; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; }
dd { margin: 0; overflow-wrap: anywhere; font-family: ui-monospace, monospace; font-size: 0.85rem; }
@media (max-width: 600px) { main { padding: 0.6rem; } dl { grid-template-columns: 1fr; } dt { font-weight: 600; } }
"""

WIDE_PIXELS = 760
"""Figures wider than this (in PNG pixels) take a whole row of the figure grid."""

CONTENT_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _table(table_id, header, rows, best_flags=None):
    best_flags = best_flags or [False] * len(rows)
    head = "".join(f'<th scope="col">{escape(name)}</th>' for name in header)
    body = "".join(
        ('<tr class="best">' if best else "<tr>")
        + "".join(f"<td>{escape(value)}</td>" for value in row)
        + "</tr>"
        for row, best in zip(rows, best_flags)
    )
    return (f'<div class="table-scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _image(out_dir, figure):
    png = (Path(out_dir) / figure["file"]).read_bytes()
    width, height = struct.unpack(">II", png[16:24])
    data = base64.b64encode(png).decode("ascii")
    wide = ' class="wide"' if width > WIDE_PIXELS else ""
    return (f'<figure id="{escape(figure["id"])}"{wide}><img src="data:image/png;base64,{data}" '
            f'width="{width}" height="{height}" alt="{escape(figure["caption"])}">'
            f"<figcaption><strong>{escape(figure['title'])}.</strong> {escape(figure['caption'])}</figcaption></figure>")


def _reproduction(entry):
    items = "".join(f"<dt>{escape(label)}</dt><dd>{escape(text)}</dd>" for label, text in reproduction_items(entry))
    return f"<details><summary>{escape(entry['name'])}</summary><dl>{items}</dl></details>"


def render_html(results, out_dir):
    """Return the report as one self-contained HTML page.

    Parameters
    ----------
    results : dict
        From :func:`featpipe.report.results.collect_results`, with its
        ``figures`` drawn.
    out_dir : path-like
        The report folder the figures' ``file`` paths are relative to; the
        PNGs are read from there and embedded.

    Returns
    -------
    page : str
    """
    report = results["report"]
    best_flags = [entry["best"] for entry in results["pipelines"]]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_POLICY}">',
        f"<title>{escape(report['title'])}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>{escape(report['title'])}</h1>",
        f'<p class="meta">Created {escape(report["created"])} by featpipe {escape(report["featpipe_version"])}.</p>',
        f'<p class="summary">{escape(summary_line(results))}</p>',
    ]
    parts += [f'<p class="warning">{escape(warning)}</p>' for warning in results["warnings"]]
    parts += ["<h2>Results</h2>", _table("results", RESULTS_COLUMNS, results_rows(results), best_flags)]
    parts += ["<h2>Seconds per stage</h2>", _table("seconds", SECONDS_COLUMNS, seconds_rows(results), best_flags)]
    header, rows = per_class_table(results)
    if rows:
        parts += ["<h2>Test accuracy per class</h2>", _table("per-class", header, rows)]
    for section in SECTIONS:
        figures = [figure for figure in results["figures"] if figure["section"] == section]
        if figures:
            parts += [f"<h2>{escape(section)}</h2>", '<div class="figures">']
            parts += [_image(out_dir, figure) for figure in figures]
            parts.append("</div>")
    parts += ["<h2>Reproduce</h2>"] + [_reproduction(entry) for entry in results["pipelines"]]
    parts.append("</main></body></html>")
    return "\n".join(parts)
