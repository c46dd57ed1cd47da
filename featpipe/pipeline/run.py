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
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.pipeline import FeatureUnion, Pipeline
from tqdm.auto import tqdm

from featpipe.cache import fingerprint, make_memory
from featpipe.pipeline import stages
from featpipe.pipeline.inputs import ImageSource, StoreSource
from featpipe.pipeline.registry import OWN_HEADS, make_feature, make_head
from featpipe.pipeline.run_folder import write_run_folder
from featpipe.pipeline.spec import SpecError
from featpipe.pipeline.stages import STAGE_NAMES
from featpipe.store.reader import is_store

DEFAULT_IMAGE_SIZE = 32


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


class _StageClock:
    """Seconds and cache hits per stage, and tqdm bars that respect --quiet."""

    def __init__(self, quiet):
        self.quiet = quiet
        self.seconds = dict.fromkeys(STAGE_NAMES, 0.0)
        self.hits = dict.fromkeys(STAGE_NAMES, True)

    def bar(self, description, total):
        """A progress bar on stderr that shows only when a step takes over half a second."""
        return tqdm(total=total, desc=description, unit="img", delay=0.5,
                    disable=self.quiet, file=sys.stderr, leave=False)

    @contextmanager
    def timed(self, stage):
        """Add the time spent in the ``with`` block to ``stage``."""
        started = time.perf_counter()
        yield
        self.seconds[stage] += time.perf_counter() - started

    def run(self, stage, cached_function, *args):
        """Call a cached stage function, timing it and recording whether it hit."""
        hit = cached_function.check_call_in_cache(*args)
        with self.timed(stage):
            output = cached_function(*args)
        self.hits[stage] = self.hits[stage] and hit
        return output


def _check_image_size(extractors, image_size):
    for name, extractor in extractors:
        needed = extractor.min_image_size()
        if image_size < needed:
            raise SpecError(
                f"image size {image_size} is too small for feature '{name}': "
                f"it needs at least {needed}x{needed} pixels (raise --image-size)"
            )


def run_pipeline(spec, data=None, image_size=None, out=None, cache_dir=None, use_cache=True,
                 n_jobs=-1, chunk_size=None, seed=0, val_size=None, strict=False,
                 search=False, quiet=False):
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
    image_size : int or None
        Side every image is resized to; default the spec's, else 32.
    out : path-like or None
        Run folder; default ``runs/<timestamp>-<spec name>``.
    cache_dir : path-like or None
        Cache root (default: the user cache directory).
    use_cache : bool
        ``False`` recomputes every stage and caches nothing.
    n_jobs : int
        Worker processes for extraction (-1: every core). Results do not
        depend on it.
    chunk_size : int or None
        Images per extraction task.
    seed : int
        Seeds the validation split and every estimator's ``random_state``
        that the spec leaves unset.
    val_size : int or None
        Validation images held out from train (default: the data set's).
    strict : bool
        Fail on the first unreadable image instead of skipping it.
    search : bool
        Search learning rate x regularization on the validation split first.
    quiet : bool
        No progress bars.

    Returns
    -------
    RunResult
    """
    data = data if data is not None else spec.data.get("data")
    image_size = int(image_size or spec.data.get("image_size", DEFAULT_IMAGE_SIZE))
    memory = make_memory(cache_dir, enabled=use_cache)
    cached = {name: memory.cache(getattr(stages, name), ignore=ignored)
              for name, ignored in stages.IGNORED.items()}
    clock = _StageClock(quiet)

    extractors = [(step.name, make_feature(step.name, step.params)) for step in spec.features]
    _check_image_size(extractors, image_size)
    feature_params = [_with_seed(step.params, extractor, seed)
                      for step, (_, extractor) in zip(spec.features, extractors)]
    head_probe = make_head(spec.head.name, spec.head.params)
    head_params = _with_seed(spec.head.params, head_probe, seed)
    search_grid = _search_grid(spec, search)

    if data is not None and is_store(data):
        source = StoreSource(spec, data, clock)
        image_size = source.image_size
    else:
        source = ImageSource(spec, data, image_size, val_size, seed, strict, cache_dir,
                             n_jobs, chunk_size, feature_params, cached, clock)
    features_key = source.key
    model_key = fingerprint(features_key, spec.normalize, spec.head.name, head_params, search_grid)
    fitted = source.fitted_extractors()
    get_features, get_dataset = source.features, source.training_dataset

    if cached["normalize"].check_call_in_cache(features_key, spec.normalize, None):
        scaler = clock.run("normalize", cached["normalize"], features_key, spec.normalize, None)
    else:
        scaler = clock.run("normalize", cached["normalize"], features_key, spec.normalize,
                           get_features()["train"])

    model_features = None

    def get_model_features():
        nonlocal model_features
        if model_features is None:
            features = get_features()
            with clock.timed("normalize"):
                model_features = {split: stages.apply_scaler(scaler, array) for split, array in features.items()}
        return model_features

    train_args = (model_key, spec.head.name, head_params, search_grid)
    if cached["train"].check_call_in_cache(*train_args, None, None, None):
        head, search_records = clock.run("train", cached["train"], *train_args, None, None, None)
    else:
        with clock.bar(f"train {spec.head.name}", None):
            head, search_records = clock.run("train", cached["train"], *train_args,
                                             get_model_features(), get_dataset(), _search_function())

    if cached["evaluate"].check_call_in_cache(model_key, None, None, None):
        evaluation = clock.run("evaluate", cached["evaluate"], model_key, None, None, None)
    else:
        evaluation = clock.run("evaluate", cached["evaluate"], model_key,
                               get_model_features(), head, get_dataset())
    if not use_cache:
        clock.hits = dict.fromkeys(STAGE_NAMES, False)

    model = Pipeline([
        ("features", FeatureUnion([(step.name, extractor) for step, extractor in zip(spec.features, fitted)])),
        ("normalize", scaler if scaler is not None else "passthrough"),
        ("head", head),
    ])
    widths = {step.name: int(extractor.n_features_out_) for step, extractor in zip(spec.features, fitted)}
    metrics = _metrics(spec, evaluation, widths, head, search_records, clock, seed, image_size)
    run_dir = write_run_folder(out, spec.name, metrics, model, evaluation["examples"])
    return RunResult(run_dir=run_dir, metrics=metrics)


def _search_function():
    from featpipe.heads.search import search_hyperparameters

    return search_hyperparameters


def _search_grid(spec, search):
    if not search:
        return None
    if spec.head.name not in OWN_HEADS:
        raise SpecError(
            f"--search tunes learning rate x regularization of featpipe's own heads "
            f"({', '.join(sorted(OWN_HEADS))}), not '{spec.head.name}'"
        )
    return {key: spec.search[key] for key in ("learning_rates", "regs", "n_samples") if key in spec.search}


def _metrics(spec, evaluation, widths, head, search_records, clock, seed, image_size):
    import skimage
    import sklearn

    import featpipe

    dataset = dict(evaluation["dataset"], image_size=image_size)
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
        "seed": seed,
        "versions": {
            "featpipe": featpipe.__version__,
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "scikit-image": skimage.__version__,
            "python": sys.version.split()[0],
        },
    }
