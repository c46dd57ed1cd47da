"""Comparison reports: which pipeline wins, and the pictures that show why.

:func:`write_report` (:mod:`featpipe.report.writer`) reads finished run folders and writes
``results.json`` (every figure, machine-readable), ``report.md`` and a self-contained
``report.html``, all three rendered from the same results dict.
"""

from featpipe._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "ReportError": "results",
    "write_report": "writer",
})
