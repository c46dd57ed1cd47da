"""Old import path of :mod:`featpipe.pipeline.spec` (kept for existing code)."""

from featpipe.pipeline.spec import (
    PipelineSpec,
    SpecError,
    Step,
    list_pipelines,
    load_pipeline_file,
    parse_features,
    parse_spec,
    resolve,
)

__all__ = ["PipelineSpec", "SpecError", "Step", "list_pipelines", "load_pipeline_file", "parse_features",
           "parse_spec", "resolve"]
