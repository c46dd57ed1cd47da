"""Data sets saved as one ``.npz`` file of arrays.

Required keys: ``X_train``, ``y_train``, ``X_test``, ``y_test``. Optional:
``classes`` (class names), and ``X_val`` with ``y_val`` (a validation split
to use instead of holding one out of train). Images may be anything
:func:`featpipe.features.base.check_images` accepts: uint8 or float in
[0, 1], of shape (N, H, W, 3), (N, H, W, 4), (N, H, W, 1) or (N, H, W).
Labels may be of any type (ints, strings): with ``classes``, integer labels
index it and other labels are looked up in it; without, the sorted distinct
training labels become the classes and the labels their indices. The file is
read with ``allow_pickle=False``.
"""

import zipfile

import numpy as np

from ..features.base import check_images
from .core import SPLITS, DatasetError

REQUIRED_KEYS = ("X_train", "y_train", "X_test", "y_test")


def _images(arrays, key, path):
    try:
        return check_images(arrays[key])
    except ValueError as error:
        raise DatasetError(f"{path}: {key}: {error}") from None


def _labels(arrays, key, n_images, path):
    labels = arrays[key]
    if labels.ndim != 1 or len(labels) != n_images:
        raise DatasetError(
            f"{path}: {key} must be one label per image, shape ({n_images},); got shape {labels.shape}"
        )
    return labels


def _encode(labels, key, classes, path):
    """Map labels to indices into ``classes``."""
    if np.issubdtype(labels.dtype, np.integer) and not np.issubdtype(classes.dtype, np.integer):
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DatasetError(
                f"{path}: {key} has labels outside 0..{len(classes) - 1} (the indices of classes)"
            )
        return labels.astype(np.int64)
    try:
        order = np.argsort(classes, kind="stable")
        positions = np.searchsorted(classes, labels, sorter=order).clip(0, len(classes) - 1)
        indices = order[positions]
        unknown = classes[indices] != labels
    except TypeError:
        raise DatasetError(
            f"{path}: {key} holds {labels.dtype} labels, which cannot be matched to {classes.dtype} classes"
        ) from None
    if unknown.any():
        raise DatasetError(f"{path}: {key} has a label that is not a class: {labels[unknown][0].item()!r}")
    return indices.astype(np.int64)


def count_npz_images(path):
    """Images in an ``.npz`` data set, read from its label arrays' headers; ``None`` when unreadable.

    Used to check a load against the memory budget before anything is read.
    """
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for name in ("y_train.npy", "y_val.npy", "y_test.npy"):
                if name in archive.namelist():
                    with archive.open(name) as member:
                        major, _ = np.lib.format.read_magic(member)
                        read_header = (np.lib.format.read_array_header_1_0 if major == 1
                                       else np.lib.format.read_array_header_2_0)
                        shape, _, _ = read_header(member)
                    total += int(np.prod(shape[:1]))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    return total


def read_npz(path):
    """Read an ``.npz`` data set.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    splits : dict
        ``X_train, y_train, X_test, y_test`` and, when the file has them,
        ``X_val, y_val``: images uint8 (N, H, W, 3), labels int64 (N,).
    classes : list of str
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in REQUIRED_KEYS if key not in archive.files]
            if missing:
                raise DatasetError(
                    f"{path} lacks {', '.join(missing)}; an .npz data set needs {', '.join(REQUIRED_KEYS)}"
                )
            if ("X_val" in archive.files) != ("y_val" in archive.files):
                raise DatasetError(f"{path}: X_val and y_val go together; it has only one of them")
            arrays = {key: archive[key] for key in archive.files}
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        reason = " ".join(str(error).split())
        raise DatasetError(f"cannot read {path} as an .npz of arrays: {reason}") from None
    names = [name for name in SPLITS if f"X_{name}" in arrays]
    images = {name: _images(arrays, f"X_{name}", path) for name in names}
    shapes = {batch.shape[1:] for batch in images.values()}
    if len(shapes) > 1:
        raise DatasetError(f"{path}: the splits hold images of different shapes: {sorted(shapes)}")
    labels = {name: _labels(arrays, f"y_{name}", len(images[name]), path) for name in names}
    if "classes" in arrays:
        classes = np.asarray(arrays["classes"]).ravel()
        if len(np.unique(classes)) != len(classes):
            raise DatasetError(f"{path}: classes must be distinct names")
    else:
        classes = np.unique(labels["train"])
    splits = {}
    for name in names:
        splits[f"X_{name}"] = images[name]
        splits[f"y_{name}"] = _encode(labels[name], f"y_{name}", classes, path)
    return splits, [str(name) for name in classes]
