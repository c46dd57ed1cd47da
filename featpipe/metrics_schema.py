"""The vocabulary of a run's metrics.json, shared by the pipeline that writes it and the report that reads it.

It sits below both (:mod:`featpipe.pipeline` writes the file, :mod:`featpipe.report` reads
it) so that neither imports the other. The full schema is in docs/ARCHITECTURE.md.
"""

STAGE_NAMES = ("load", "extract", "normalize", "train", "evaluate")
"""The five stages a run times and reports (``seconds`` and ``cache_hits``), in the order they run."""
