"""The models a server holds: run folders loaded as ``featpipe predict`` loads them.

A :class:`ServedModel` wraps one run folder's ``model.skops`` (read with
:func:`featpipe.model_io.load_model`, so the loader's type allowlist applies)
and its ``metrics.json``; its :meth:`~ServedModel.predict_batch` is the one
vectorized call the batcher makes, and answers exactly what
``model.predict`` / ``model.predict_proba`` answer for the same images.
:class:`ModelRegistry` holds them by name and says whether all are warm.
"""

import gc
import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featpipe.errors import FeatpipeError
from featpipe.model_io import load_model

VERSION_HEX_DIGITS = 16
"""Characters of the model file's sha256 kept as its version."""


class ModelSourceError(FeatpipeError):
    """A run folder that cannot be served (missing files, a clashing name)."""


@dataclass(frozen=True)
class ModelSource:
    """Where a served model comes from: its URL name and run folder."""

    name: str
    run_dir: Path


def parse_model_sources(arguments):
    """Turn ``RUN_DIR`` or ``NAME=RUN_DIR`` arguments into sources, refusing duplicate names.

    A bare run folder is named after its run's spec (``metrics.json``'s
    ``spec``, e.g. ``hog+color+svm``).

    Raises
    ------
    ModelSourceError
        For a folder without ``metrics.json`` or ``model.skops``, an empty or
        unusable name, or two folders with the same name.
    """
    sources = []
    for argument in arguments:
        name, separator, folder = str(argument).partition("=")
        if not separator or Path(argument).exists():
            name, folder = None, str(argument)
        run_dir = Path(folder)
        metrics = read_run_metrics(run_dir)
        name = name if name is not None else metrics.get("spec", run_dir.name)
        if not name or "/" in name or name != name.strip():
            raise ModelSourceError(f"model name {name!r} cannot be used in a URL path; choose one with NAME=RUN_DIR")
        sources.append(ModelSource(name, run_dir))
    names = [source.name for source in sources]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise ModelSourceError(
            f"two run folders are named {', '.join(clashes)}; give each its own name with NAME=RUN_DIR"
        )
    return sources


def read_run_metrics(run_dir):
    """A run folder's ``metrics.json``, after checking the folder holds a model."""
    metrics_path = Path(run_dir) / "metrics.json"
    if not Path(run_dir).is_dir():
        raise ModelSourceError(f"run folder not found: {run_dir}")
    if not metrics_path.is_file() or not (Path(run_dir) / "model.skops").is_file():
        raise ModelSourceError(f"{run_dir} is not a run folder (it needs metrics.json and model.skops)")
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelSourceError(f"cannot read {metrics_path}: {error}") from None
    if not isinstance(metrics, dict) or "dataset" not in metrics:
        raise ModelSourceError(f"{metrics_path} is not a featpipe run's metrics")
    return metrics


@dataclass
class ServedModel:
    """One loaded run: the fitted pipeline, its description and its warm-up state.

    Attributes
    ----------
    name : str
        Name in URLs.
    model : sklearn.pipeline.Pipeline
        The run's ``features -> normalize -> head`` pipeline.
    metrics : dict
        The run's ``metrics.json``.
    version : str
        First characters of the sha256 of ``model.skops``.
    """

    name: str
    model: object
    metrics: dict
    version: str
    warm: threading.Event = field(default_factory=threading.Event)

    @property
    def classes(self):
        """Class names, indexed by label."""
        return list(self.metrics["dataset"]["classes"])

    @property
    def image_size(self):
        """Side every uploaded image is resized to, as in the run."""
        return int(self.metrics["dataset"]["image_size"])

    @property
    def has_probabilities(self):
        """Whether the head has ``predict_proba`` (else answers carry ``scores``)."""
        return hasattr(self.model, "predict_proba")

    @property
    def feature_width(self):
        """Width of the rows :meth:`features_batch` returns."""
        return int(self.metrics.get("feature_width") or sum(self.metrics.get("feature_widths", {}).values()))

    def describe(self):
        """What ``GET /v1/models/{name}`` answers."""
        return {
            "name": self.name,
            "spec": self.metrics.get("spec"),
            "version": self.version,
            "classes": self.classes,
            "image_size": self.image_size,
            "feature_width": self.feature_width,
            "feature_widths": self.metrics.get("feature_widths", {}),
            "accuracy": self.metrics.get("accuracy", {}),
            "outputs": "probabilities" if self.has_probabilities else "scores",
            "ready": self.warm.is_set(),
        }

    def predict_batch(self, images):
        """Labels and per-class values of a uint8 batch, in one vectorized pass.

        Parameters
        ----------
        images : ndarray of uint8, shape (N, image_size, image_size, 3)

        Returns
        -------
        labels : ndarray of int64, shape (N,)
            Class indices, as ``model.predict`` gives them.
        values : ndarray of float32, shape (N, n_classes)
            ``predict_proba`` when the head has it, else ``decision_function``.
        """
        features = self.model[:-1].transform(images)
        head = self.model[-1]
        labels = np.asarray(head.predict(features), dtype=np.int64)
        if self.has_probabilities:
            values = head.predict_proba(features)
        else:
            values = head.decision_function(features)
        return labels, np.asarray(values, dtype=np.float32).reshape(len(images), -1)

    def features_batch(self, images):
        """The extractors' float32 rows for a uint8 batch (before normalization, as ``featpipe extract`` stores)."""
        return np.asarray(self.model.named_steps["features"].transform(images), dtype=np.float32)

    def warm_up(self, n_images):
        """Run one batch of ``n_images`` blank images through every step, freeze the heap, mark the model warm.

        Freezing (:func:`freeze_heap`) takes the model, and every module
        loaded by then, out of the garbage collector's reach, so the full
        collections that serving triggers no longer pause the process for
        as long as it takes to walk them.
        """
        blank = np.zeros((n_images, self.image_size, self.image_size, 3), dtype=np.uint8)
        self.predict_batch(blank)
        freeze_heap()
        self.warm.set()


def freeze_heap():
    """Collect once, then move every object still alive to the collector's permanent generation.

    A full (generation 2) collection walks every tracked object; with a
    model and scikit-learn, SciPy, FastAPI and Pydantic loaded that is
    about 180,000 objects, which paused the server for 100-170 ms every
    second or two under load (the whole p99 tail at concurrency 32; see
    benchmarks/RESULTS.md, "serve-tail"). Objects alive after start-up
    live as long as the process, so the collector has nothing to gain from
    walking them: :func:`gc.freeze` excludes them from every later
    collection. Reference counting still frees them if they are dropped.
    """
    gc.collect()
    gc.freeze()


def load_served_model(source):
    """Load a :class:`ModelSource` with :func:`featpipe.model_io.load_model`."""
    metrics = read_run_metrics(source.run_dir)
    model_path = Path(source.run_dir) / "model.skops"
    model = load_model(model_path)
    version = hashlib.sha256(model_path.read_bytes()).hexdigest()[:VERSION_HEX_DIGITS]
    return ServedModel(source.name, model, metrics, version)


class ModelRegistry:
    """The served models by name; ready when every one is warm and the server is not draining."""

    def __init__(self, models=()):
        self._models = {model.name: model for model in models}
        self.draining = False

    def __iter__(self):
        return iter(list(self._models.values()))

    def __len__(self):
        return len(self._models)

    def get(self, name):
        """The model called ``name``, or None."""
        return self._models.get(name)

    def add(self, model):
        """Serve ``model`` under its name (a later job may add models while serving)."""
        if model.name in self._models:
            raise ModelSourceError(f"a model named {model.name} is already served")
        self._models[model.name] = model

    @property
    def ready(self):
        """Every model loaded and warmed, and no shutdown under way."""
        return not self.draining and all(model.warm.is_set() for model in self._models.values())
