"""Stratified, seeded splits: a test split for folders without one, and the validation hold-out.

Every split draws from its own random stream, ``numpy.random.default_rng([seed,
stream])``, so the test split and the validation split of one seed are
independent, and the same seed always gives the same split.
"""

import numpy as np

from .core import DatasetError

TEST_FRACTION = 0.2
"""Share of each class held out as test images when a folder has no test split."""

DEFAULT_MAX_VAL_SIZE = 1000
"""Validation images held out by default: 1,000, or 10% of train when that is fewer."""

TEST_STREAM = 1
VAL_STREAM = 2


def default_val_size(n_train):
    """1,000 images, or 10% of ``n_train`` (rounded) when that is fewer.

    The two readings of "1,000 images, or 10% when smaller" agree: 10% is
    fewer than 1,000 exactly when ``n_train`` is below 10,000.
    """
    return min(DEFAULT_MAX_VAL_SIZE, (n_train + 5) // 10)


def resolve_val_size(val_size, n_train):
    """Number of validation images to hold out of ``n_train``.

    Parameters
    ----------
    val_size : None, int or float
        ``None`` for :func:`default_val_size`; an int >= 0 for that many
        images; a float in (0, 1) for that fraction of train (rounded).
    n_train : int
        Training images available before the hold-out.

    Returns
    -------
    n_val : int
    """
    if val_size is None:
        return default_val_size(n_train)
    if isinstance(val_size, (bool, np.bool_)):
        raise DatasetError(f"validation size must be a count or a fraction; got {val_size!r}")
    if isinstance(val_size, (float, np.floating)):
        if not 0 < val_size < 1:
            raise DatasetError(f"a validation fraction must lie in (0, 1); got {val_size}")
        n_val = int(np.floor(val_size * n_train + 0.5))
    elif isinstance(val_size, (int, np.integer)):
        if val_size < 0:
            raise DatasetError(f"validation size must be >= 0; got {val_size}")
        n_val = int(val_size)
    else:
        raise DatasetError(f"validation size must be a count or a fraction; got {val_size!r}")
    if n_val >= n_train:
        raise DatasetError(
            f"validation size {n_val} leaves no training images: train has only {n_train}"
        )
    return n_val


def allocate(class_counts, total):
    """Share ``total`` among classes in proportion to ``class_counts``.

    Largest-remainder rounding: every class gets the floor of its quota, and
    the leftover units go to the largest fractional parts (ties to the lower
    class index). The shares sum to ``total`` exactly and never exceed a
    class's count.
    """
    class_counts = np.asarray(class_counts, dtype=np.int64)
    quota = class_counts * (total / max(class_counts.sum(), 1))
    shares = np.floor(quota).astype(np.int64)
    leftover = total - shares.sum()
    by_remainder = np.argsort(-(quota - shares), kind="stable")
    shares[by_remainder[:leftover]] += 1
    return shares


def stratified_holdout(labels, n_held_out, seed, stream):
    """Split indices into kept and held-out parts with class proportions preserved.

    Parameters
    ----------
    labels : ndarray of int64, shape (N,)
    n_held_out : int
        Size of the held-out part, shared among classes by :func:`allocate`.
    seed : int
        Seed of the split.
    stream : int
        Which random stream of that seed (:data:`TEST_STREAM`, :data:`VAL_STREAM`).

    Returns
    -------
    kept, held_out : ndarray of int64
        Sorted indices into ``labels``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    n_classes = int(labels.max()) + 1
    shares = allocate(np.bincount(labels, minlength=n_classes), n_held_out)
    keys = np.random.default_rng([seed, stream]).random(len(labels))
    order = np.lexsort((keys, labels))
    sorted_labels = labels[order]
    class_starts = np.searchsorted(sorted_labels, np.arange(n_classes))
    rank_in_class = np.arange(len(labels)) - class_starts[sorted_labels]
    held = np.zeros(len(labels), dtype=bool)
    held[order] = rank_in_class < shares[sorted_labels]
    return np.flatnonzero(~held), np.flatnonzero(held)


def assign_splits(labels, scanned_splits, val_size, seed):
    """The split of every image of a folder: ``"train"``, ``"val"`` or ``"test"``.

    Images scanned as ``"test"`` stay test. When the folder has no test
    folder (images scanned as ``"all"``), :data:`TEST_FRACTION` of each class
    is held out as test. The validation hold-out (:func:`resolve_val_size`)
    is then drawn from the remaining training images, stratified.

    Parameters
    ----------
    labels : ndarray of int64, shape (N,)
    scanned_splits : ndarray of str, shape (N,)
        ``"train"``, ``"test"`` or ``"all"`` per image, as
        :func:`featpipe.datasets.scan_image_folder` returns them.
    val_size : None, int or float
        As for :func:`resolve_val_size`.
    seed : int
        Seed of both hold-outs.

    Returns
    -------
    splits : ndarray of str, shape (N,)

    Examples
    --------
    >>> labels = np.repeat(np.arange(2), 10)
    >>> splits = assign_splits(labels, np.full(20, "all"), val_size=2, seed=0)
    >>> [int(np.sum(splits == name)) for name in ("train", "val", "test")]
    [14, 2, 4]
    """
    labels = np.asarray(labels, dtype=np.int64)
    scanned_splits = np.asarray(scanned_splits)
    splits = np.where(scanned_splits == "test", "test", "train").astype("<U5")
    if np.any(scanned_splits == "all"):
        n_test = int(np.floor(TEST_FRACTION * len(labels) + 0.5))
        splits[stratified_holdout(labels, n_test, seed, TEST_STREAM)[1]] = "test"
    train = np.flatnonzero(splits == "train")
    n_val = resolve_val_size(val_size, len(train))
    splits[train[stratified_holdout(labels[train], n_val, seed, VAL_STREAM)[1]]] = "val"
    return splits


def round_robin_by_class(labels):
    """Indices that visit ``labels`` one class at a time: each class's first, then second, ...

    Taking the first k of this order picks examples spread over the
    classes, in their original order within each class.

    Examples
    --------
    >>> round_robin_by_class([0, 0, 0, 1, 2, 2]).tolist()
    [0, 3, 4, 1, 5, 2]
    """
    labels = np.asarray(labels)
    rank_in_class = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rank_in_class[members] = np.arange(len(members))
    return np.argsort(rank_in_class, kind="stable")
