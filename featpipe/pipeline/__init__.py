"""Pipelines: what to run (spec, registry), running it (stages, inputs, run) and extract jobs.

``featpipe.pipeline.run_pipeline(spec, ...)`` runs a :class:`PipelineSpec` end to end
(:mod:`featpipe.pipeline.run`); :func:`resolve` turns a name like ``hog+color+svm`` or a
pipeline file into one (:mod:`featpipe.pipeline.spec`); :func:`run_extract_job` writes a feature
store (:mod:`featpipe.pipeline.extract_job`). :class:`RunOptions` and :class:`ExtractOptions`
say how (:mod:`featpipe.pipeline.options`).
"""

from featpipe._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "ExtractOptions": "options",
    "PipelineSpec": "spec",
    "RunOptions": "options",
    "RunResult": "run",
    "SpecError": "spec",
    "resolve": "spec",
    "run_extract_job": "extract_job",
    "run_pipeline": "run",
})
