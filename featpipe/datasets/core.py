"""What every data-set loader returns, how it fails, and how it is fingerprinted."""

from dataclasses import dataclass, field

import numpy as np

from featpipe.digests import DATASET_CHARS, json_sha256
from featpipe.errors import DatasetError

DECODING_VERSION = 1
"""Bumped whenever decoding or splitting changes, so data set fingerprints (and cached loads) change."""

SPLITS = ("train", "val", "test")
"""The splits of every data set, in the order stores and reports list them."""


class UnreadableImageWarning(UserWarning):
    """Some image files could not be decoded and were skipped."""


@dataclass(eq=False)
class Dataset:
    """Images and labels of one data set, split into train, validation and test.

    Attributes
    ----------
    name : str
        ``"builtin"``, ``"cifar10"``, ``"cifar10:<path>"``, ``"folder:<path>"``
        or ``"npz:<path>"``.
    X_train, X_val, X_test : ndarray of uint8, shape (N, H, W, 3)
        Images, all ``image_size`` x ``image_size``.
    y_train, y_val, y_test : ndarray of int64, shape (N,)
        Labels, indices into ``classes``.
    classes : list of str
        Class names; ``classes[label]`` names a label.
    fingerprint : str
        Hex digest of the source and the loading parameters (see
        :func:`featpipe.datasets.describe_source`); equal fingerprints mean
        equal data sets.
    skipped : list of (str, str)
        ``(path, reason)`` of every image file that could not be read.
    """

    name: str
    X_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    X_val: np.ndarray = field(repr=False)
    y_val: np.ndarray = field(repr=False)
    X_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    classes: list
    fingerprint: str
    skipped: list = field(default_factory=list)

    @property
    def image_size(self):
        """Height (= width) of every image."""
        return int(self.X_train.shape[1])


def check_image_size(image_size):
    """Return ``image_size`` as an int, or raise DatasetError unless it is an integer >= 1."""
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise DatasetError(f"image size must be a whole number of pixels >= 1; got {image_size!r}")
    if image_size < 1:
        raise DatasetError(f"image size must be at least 1 pixel; got {image_size}")
    return int(image_size)


def fingerprint_of(kind, content_digest, image_size, val_size, seed):
    """Hex digest naming a data set: its source kind and content, and how it is loaded.

    Parameters
    ----------
    kind : str
        Source kind (``"builtin"``, ``"folder"``, ...).
    content_digest : str
        A digest of the source's content: a file listing with sizes and
        modification times, the bytes of one file, or a published checksum.
    image_size, val_size, seed
        Loading parameters that change the arrays.

    Returns
    -------
    fingerprint : str
        32 hex digits.
    """
    key = {
        "format": DECODING_VERSION,
        "kind": kind,
        "content": content_digest,
        "image_size": image_size,
        "val_size": val_size,
        "seed": seed,
    }
    return json_sha256(key, DATASET_CHARS)

