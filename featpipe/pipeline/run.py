"""Run a pipeline: load -> extract -> normalize -> train -> evaluate, cached.

Every stage's output is cached with joblib.Memory under keys built from the
data set's fingerprint and the parameters of the stage and of everything
upstream, so a second identical run reuses every stage and a changed
feature parameter recomputes only what depends on that feature. Outputs are
fetched lazily: when training and evaluation are cached, the data set and
its features are never loaded at all, which keeps a warm run to a few
seconds whatever the data set's size.
"""

import sys
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.pipeline import FeatureUnion, Pipeline

from featpipe.cache import fingerprint, make_memory
from featpipe.datasets import DatasetError
from featpipe.datasets.options import DEFAULT_IMAGE_SIZE
from featpipe.metrics_schema import STAGE_NAMES
from featpipe.pipeline import stages
from featpipe.pipeline.cached_stages import CachedStages, StageClock
from featpipe.memory_budget import default_budget
from featpipe.pipeline.dask_backend import dask_backend
from featpipe.pipeline.image_store import extract_into_cache, in_memory_bytes
from featpipe.pipeline.inputs import ImageSource, StoreSource
from featpipe.pipeline.options import RunOptions, resolve_options
from featpipe.pipeline.registry import OWN_HEADS, make_feature, make_head
from featpipe.pipeline.run_folder import release_run_dir, reserve_run_dir, write_run_folder
from featpipe.pipeline.spec import SpecError
from featpipe.store.format import distinct_feature_names
from featpipe.store.reader import is_store


@dataclass
class RunResult:
    """What a finished run produced: its folder and its metrics."""

    run_dir: Path
    metrics: dict


def _with_seed(estimator_params, estimator, seed):
    """Parameters with ``random_state=seed`` added when the estimator takes one."""
    params = dict(estimator_params)
    if "random_state" in estimator.get_params(deep=False) and "random_state" not in params:
        params["random_state"] = seed
    return params


def _check_image_size(extractors, image_size):
    for name, extractor in extractors:
        needed = extractor.min_image_size()
        if image_size < needed:
            raise SpecError(
                f"image size {image_size} is too small for feature '{name}': "
                f"it needs at least {needed}x{needed} pixels (raise --image-size)"
            )


def run_pipeline(spec, data=None, *, options=None, out=None, **option_values):
    """Run ``spec`` end to end and write its run folder.

    Parameters
    ----------
    spec : PipelineSpec
        What to run (see :mod:`featpipe.pipeline.spec`).
    data : str or None
        Data set: ``None``/``"builtin"``, ``"cifar10"``, a folder, an
        ``.npz`` file, or a feature store written by ``featpipe extract``
        (whose features are used as they are); ``None`` falls back to the
        spec's ``[data]`` table.
    options : RunOptions or None
        How to run: image size (default the spec's, else 32), validation
        hold-out, seed, strictness, cache, worker processes, chunk size,
        search, quiet (:class:`featpipe.pipeline.options.RunOptions`).
        ``None`` for the defaults.
    out : path-like or None
        Run folder; default ``runs/<timestamp>-<spec name>``.
    **option_values
        Fields of :class:`RunOptions` to set on top of ``options``.

    Returns
    -------
    RunResult

    Raises
    ------
    RunFolderError
        When ``out`` exists: a run never replaces another.

    Examples
    --------
    >>> from featpipe.pipeline import RunOptions, resolve, run_pipeline
    >>> result = run_pipeline(resolve("hog+svm"), "builtin",
    ...                       options=RunOptions(n_jobs=1, quiet=True))  # doctest: +SKIP
    >>> result.metrics["accuracy"]["test"]  # doctest: +SKIP
    """
    options = resolve_options(RunOptions, options, option_values)
    with ExitStack() as stack:
        client = None
        if options.backend == "dask" or options.scheduler is not None:
            client = stack.enter_context(dask_backend(options.n_jobs, options.scheduler))
        return _run(spec, data, options, out, client)


def _run(spec, data, options, out, client):
    """The body of :func:`run_pipeline`, on the Dask ``client`` (or locally with ``None``)."""
    data = data if data is not None else spec.data.get("data")
    options = replace(options, image_size=int(options.image_size or spec.data.get("image_size", DEFAULT_IMAGE_SIZE)))
    clock = StageClock(options.quiet)
    cached = CachedStages(make_memory(options.cache_dir, enabled=options.use_cache), clock)

    extractors = [(step.name, make_feature(step.name, step.params)) for step in spec.features]
    _check_image_size(extractors, options.image_size)
    feature_params = [_with_seed(step.params, extractor, options.seed)
                      for step, (_, extractor) in zip(spec.features, extractors)]
    head_params = _with_seed(spec.head.params, make_head(spec.head.name, spec.head.params), options.seed)
    search_grid = _search_grid(spec, options.search)

    source = _source(spec, data, options, feature_params, cached, client)
    if isinstance(source, StoreSource):
        options = replace(options, image_size=source.image_size)
    run_dir = reserve_run_dir(out, spec.name)
    try:
        metrics, model, examples = _train_and_evaluate(spec, source, cached, options, head_params, search_grid)
        write_run_folder(run_dir, metrics, model, examples)
    except BaseException:
        release_run_dir(run_dir)
        raise
    return RunResult(run_dir=run_dir, metrics=metrics)


def _train_and_evaluate(spec, source, cached, options, head_params, search_grid):
    """(metrics, model, examples) of a run: the stages after loading, each cached."""
    clock = cached.clock
    model_key = fingerprint(source.key, spec.normalize, spec.head.name, head_params, search_grid,
                            stages.code_version())
    fitted = source.fitted_extractors()

    scaler = cached.lazily("normalize", (source.key, spec.normalize),
                           lambda: {"train_features": source.features()["train"]})
    model_features = None

    def get_model_features():
        nonlocal model_features
        if model_features is None:
            features = source.features()
            with clock.timed("normalize"):
                model_features = {split: stages.apply_scaler(scaler, array) for split, array in features.items()}
        return model_features

    with ExitStack() as stack:
        def training_data():
            stack.enter_context(clock.bar(f"train {spec.head.name}", None))
            return {"features": get_model_features(), "dataset": source.training_dataset()}

        trained = cached.lazily("train", (model_key, spec.head.name, head_params, search_grid), training_data)
    head = trained[0]
    evaluation = cached.lazily("evaluate", (model_key,), lambda: {
        "model_features": get_model_features(), "head": head, "dataset": source.training_dataset()})
    if options.strict and evaluation["skipped_files"]:  # the same outcome as a fresh load with --strict
        path, reason = evaluation["skipped_files"][0]
        raise DatasetError(f"cannot read image {path}: {reason}")
    if not options.use_cache:
        clock.hits = dict.fromkeys(STAGE_NAMES, False)

    model = Pipeline([
        ("features", FeatureUnion([(step.name, extractor) for step, extractor in zip(spec.features, fitted)])),
        ("normalize", scaler if scaler is not None else "passthrough"),
        ("head", head),
    ])
    names = distinct_feature_names([step.name for step in spec.features])
    widths = {name: int(extractor.n_features_out_) for name, extractor in zip(names, fitted)}
    metrics = _metrics(spec, options, evaluation, trained, widths, clock)
    return metrics, model, evaluation["examples"]


def _source(spec, data, options, feature_params, cached, client):
    """Where the run's features come from: the images, or a store (given, or extracted into the cache).

    A store is read shard by shard when its training split exceeds the
    memory budget, and always on Dask (the losses are summed on the workers);
    images whose pixels and features would exceed the budget are extracted
    into a store under the cache first (:mod:`featpipe.pipeline.image_store`),
    mirrored training images as extra rows for augmented pipelines.
    """
    budget = default_budget() if options.memory_budget is None else options.memory_budget
    store_path = data if data is not None and is_store(data) else None
    needed = None if store_path is not None else in_memory_bytes(spec, data, options)
    if needed is not None and needed > budget:
        _check_head_streams(spec, needed, budget)
        store_path = extract_into_cache(spec, data, feature_params, options, client)
    if store_path is None:
        return ImageSource(spec, data, options, feature_params, cached)
    source = StoreSource(spec, store_path, cached.clock, feature_params)
    if client is not None or source.train_bytes() > budget:
        _check_head_streams(spec, source.train_bytes(), budget)
        if not options.quiet:
            print(f"featpipe: training features ({source.train_bytes() / 2**20:,.0f} MiB) are read from the "
                  "store shard by shard", file=sys.stderr)
        source.stream(client)
    return source


def _check_head_streams(spec, feature_bytes, budget):
    """Refuse to stream ``feature_bytes`` of features into a scikit-learn head: it loads the whole matrix."""
    if spec.head.name not in OWN_HEADS:
        raise SpecError(
            f"head '{spec.head.name}' is scikit-learn's: it trains on the whole training matrix in memory "
            f"({feature_bytes / 2**20:,.0f} MiB), over --memory-budget {budget / 2**20:,.0f} MiB or on Dask; "
            f"use one of featpipe's heads ({', '.join(sorted(OWN_HEADS))}), which stream, or raise --memory-budget"
        )


def _search_grid(spec, search):
    if not search:
        return None
    if spec.head.name not in OWN_HEADS:
        raise SpecError(
            f"--search tunes learning rate x regularization of featpipe's own heads "
            f"({', '.join(sorted(OWN_HEADS))}), not '{spec.head.name}'"
        )
    return {key: spec.search[key] for key in ("learning_rates", "regs", "n_samples") if key in spec.search}


def _metrics(spec, options, evaluation, trained, widths, clock):
    """metrics.json of a run (schema in docs/ARCHITECTURE.md); ``trained`` is (head, search records)."""
    import skimage
    import sklearn

    import featpipe

    head, search_records = trained
    dataset = dict(evaluation["dataset"], image_size=options.image_size)
    return {
        "spec": spec.name,
        "pipeline": spec.to_dict(),
        "dataset": dataset,
        "feature_width": int(sum(widths.values())),
        "feature_widths": widths,
        "accuracy": evaluation["accuracy"],
        "per_class_accuracy": evaluation["per_class_accuracy"],
        "confusion_matrix": evaluation["confusion_matrix"],
        "seconds": {stage: round(value, 4) for stage, value in clock.seconds.items()},
        "cache_hits": clock.hits,
        "history": {
            "loss": [float(value) for value in getattr(head, "loss_history_", [])],
            "val_accuracy": [float(value) for value in getattr(head, "val_accuracy_history_", [])],
        },
        "search": search_records,
        "seed": options.seed,
        "versions": {
            "featpipe": featpipe.__version__,
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "scikit-image": skimage.__version__,
            "python": sys.version.split()[0],
        },
    }
