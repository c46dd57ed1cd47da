"""Writing a comparison report: results.json, report.md and report.html from the same results."""

import json
from pathlib import Path

from featpipe.report.figures import draw_figures
from featpipe.report.html import render_html
from featpipe.report.markdown import render_markdown
from featpipe.report.results import ReportError, collect_results


def write_report(run_dirs, out_dir, title=None):
    """Write a comparison report of finished runs.

    Parameters
    ----------
    run_dirs : sequence of path-like
        Run folders written by ``featpipe run`` (metrics.json, model.skops,
        examples.npz), in the order the report lists them.
    out_dir : path-like
        Folder to write into; created when missing. Figures go to its
        ``figures`` subfolder.
    title : str or None
        The report's title; default "featpipe comparison: <data set>".

    Returns
    -------
    paths : dict of str to Path
        ``"html"``, ``"markdown"`` and ``"json"``: report.html, report.md
        and results.json.

    Raises
    ------
    ReportError
        When no run folders are given, one cannot be read, or ``out_dir``
        cannot be written.

    Examples
    --------
    >>> paths = write_report(["runs/hog+svm", "runs/raw+svm"], "report")  # doctest: +SKIP
    >>> paths["html"]  # doctest: +SKIP
    PosixPath('report/report.html')
    """
    results = collect_results(run_dirs, title=title)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReportError(f"cannot create report folder {out_dir}: {error.strerror or error}") from None
    results["figures"] = draw_figures(results, out_dir)
    paths = {"html": out_dir / "report.html", "markdown": out_dir / "report.md", "json": out_dir / "results.json"}
    paths["json"].write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(results), encoding="utf-8")
    paths["html"].write_text(render_html(results, out_dir), encoding="utf-8")
    return paths
