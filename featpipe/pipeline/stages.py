"""The five pipeline stages as cacheable module-level functions.

Each stage takes short keys (fingerprints, names, parameters) that joblib
hashes, and receives big arrays through arguments listed in ``IGNORED`` so
that joblib never hashes them. A stage's key therefore holds everything its
output depends on: the data's fingerprint and every upstream parameter.
"""

import inspect

import numpy as np
from sklearn.metrics import confusion_matrix
from sklearn.preprocessing import StandardScaler

from featpipe.datasets import SPLITS, load_dataset, round_robin_by_class
from featpipe.heads.blocks import ArrayBlocks, fit_scaler_by_blocks, is_block_source
from featpipe.heads.mirrored_rows import MirroredRows
from featpipe.parallel import DEFAULT_CHUNK_SIZE, transform_in_chunks
from featpipe.pipeline.registry import make_feature, make_head

N_EXAMPLES = 16
SCALER_ROWS = 4096
"""Rows per block when the scaler is fitted."""

STAGE_FORMATS = {"load": 2, "extract": 1, "normalize": 2, "train": 1, "evaluate": 2}
"""Format version of each stage's output: bump a stage's number when what it
returns changes (a decoder, a field), so outputs cached by older code are not
served. joblib itself only notices a change in the stage function's own source."""

IGNORED = {
    "load": ["data", "options", "progress"],
    "fit_extractor": ["images", "labels"],
    "extract": ["extractor", "dataset", "options", "progress"],
    "normalize": ["train_features"],
    "train": ["features", "dataset"],
    "evaluate": ["model_features", "head", "dataset"],
}
"""Stage function -> arguments that carry data rather than identity (joblib does not hash them)."""

TIMED_AS = {"load": "load", "fit_extractor": "extract", "extract": "extract", "normalize": "normalize",
            "train": "train", "evaluate": "evaluate"}
"""Stage function -> the stage of :data:`featpipe.metrics_schema.STAGE_NAMES` whose time and cache hits it counts in."""


def code_version():
    """featpipe's version and every stage's format version: part of every stage key."""
    import featpipe

    return {"featpipe": featpipe.__version__, "stages": STAGE_FORMATS}


def load(data_key, data, options, progress):
    """Load stage: decode and split the data set named by ``data_key`` (``options``: a RunOptions).

    ``data_key`` must cover ``options.max_pixels`` (it decides which files
    are skipped); ``strict`` is not in it, so the caller checks a cached
    result's ``skipped`` list itself.
    """
    return load_dataset(data, options, progress=progress)


def fit_extractor(feature_key, name, params, images, labels):
    """Extract stage, first half: fit feature ``name`` on the training images."""
    return make_feature(name, params).fit(images, labels)


def extract(feature_key, extractor, dataset, options, progress):
    """Extract stage, second half: features of every split, as float32 arrays (``options``: a RunOptions)."""
    return {
        split: transform_in_chunks(
            extractor, getattr(dataset, f"X_{split}"), n_jobs=options.n_jobs,
            chunk_size=options.chunk_size or DEFAULT_CHUNK_SIZE, progress=progress,
        )
        for split in SPLITS
    }


def normalize(features_key, method, train_features):
    """Normalize stage: fit the per-feature scaler on the training split.

    Returns ``None`` for ``method="none"``. Only the fitted scaler is
    cached; applying it is a cheap in-place pass (:func:`apply_scaler`).
    The scaler is fitted block of rows by block (``partial_fit``):
    ``StandardScaler.fit`` makes a float64 copy of the whole matrix, 5 GB
    for 98,000 x 6,400 float32 features.
    """
    if method == "none":
        return None
    scaler = StandardScaler()
    if not is_block_source(train_features):
        train_features = ArrayBlocks(train_features, SCALER_ROWS)
    fit_scaler_by_blocks(scaler, train_features)
    if isinstance(train_features, MirroredRows):
        # Exactly mirror-symmetric (not just up to rounding), so scaled mirrors stay a permutation.
        permutation = train_features.permutation
        for name in ("mean_", "var_", "scale_"):
            statistic = getattr(scaler, name)
            setattr(scaler, name, (statistic + statistic[permutation]) / 2)
    return scaler


def apply_scaler(scaler, features):
    """Standardize float32 ``features`` in place (no copy) and return them.

    A block source (a store read shard by shard) is not changed: the
    returned source standardizes each block as it is read; mirrored rows
    over an in-memory array (:class:`MirroredRows`) with a mirror-symmetric
    scaler have their array standardized in place.
    """
    if scaler is not None and isinstance(features, MirroredRows) and isinstance(features.rows, ArrayBlocks):
        mean, scale = scaler.mean_, scaler.scale_
        if np.array_equal(mean, mean[features.permutation]) and np.array_equal(scale, scale[features.permutation]):
            apply_scaler(scaler, features.rows.X)  # in place: the scaled mirrors are still a permutation
            return features
    if scaler is not None and is_block_source(features):
        return features.scaled(scaler.mean_, scaler.scale_)
    if scaler is not None:
        features -= scaler.mean_.astype(features.dtype)
        features /= scaler.scale_.astype(features.dtype)
    return features


def train(model_key, head_name, head_params, search_grid, features, dataset):
    """Train stage: fit the head, after a validation search when asked.

    Returns
    -------
    head : classifier
        Fitted on the training split.
    search_records : list of dict or None
        Every tried (learning_rate, reg) with its validation accuracy.
    """
    head = make_head(head_name, head_params)
    records = None
    if search_grid is not None:
        from featpipe.heads.search import search_hyperparameters  # only runs that search need it

        best_params, records = search_hyperparameters(
            head, features["train"], dataset.y_train, features["val"], dataset.y_val, **search_grid
        )
        head.set_params(**best_params)
    if "X_val" in inspect.signature(head.fit).parameters and len(dataset.y_val):
        head.fit(features["train"], dataset.y_train, X_val=features["val"], y_val=dataset.y_val)
    else:
        head.fit(features["train"], dataset.y_train)
    return head, records


def evaluate(model_key, model_features, head, dataset):
    """Evaluate stage: accuracies, per-class accuracy, confusion matrix, mistakes.

    Returns everything the run folder needs from the data, so a later run
    whose evaluation is cached never loads the data set again. Mistakes are
    ``None`` when the data set has no images (a feature store).
    """
    accuracy = {}
    test_predictions = None
    for split in SPLITS:
        truth = getattr(dataset, f"y_{split}")
        if len(truth) == 0:
            accuracy[split] = None
            continue
        predicted = np.asarray(head.predict(model_features[split]))
        accuracy[split] = float(np.mean(predicted == truth))
        if split == "test":
            test_predictions = predicted
    matrix = confusion_matrix(dataset.y_test, test_predictions, labels=np.arange(len(dataset.classes)))
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.diag(matrix) / matrix.sum(axis=1)
    per_class = {name: (None if np.isnan(value) else float(value)) for name, value in zip(dataset.classes, recall)}
    wrong_indices = np.flatnonzero(test_predictions != dataset.y_test)
    wrong = wrong_indices[round_robin_by_class(dataset.y_test[wrong_indices])][:N_EXAMPLES]
    return {
        "skipped_files": [(str(path), str(reason)) for path, reason in dataset.skipped],
        "accuracy": accuracy,
        "per_class_accuracy": {"test": per_class},
        "confusion_matrix": {"test": matrix.tolist()},
        "dataset": {
            "name": dataset.name,
            "fingerprint": dataset.fingerprint,
            "n_train": int(len(dataset.y_train)),
            "n_val": int(len(dataset.y_val)),
            "n_test": int(len(dataset.y_test)),
            "classes": list(dataset.classes),
            "skipped": len(dataset.skipped),
        },
        "examples": None if dataset.X_test is None else {
            "images": dataset.X_test[wrong],
            "y_true": dataset.y_test[wrong],
            "y_pred": test_predictions[wrong],
        },
    }

