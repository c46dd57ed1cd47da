"""CIFAR-10 from its official python tarball: download once with pooch, read the batches.

The tarball (``cifar-10-python.tar.gz``, 163 MB, md5
``c58f30108f718f92721af3b95e74349a``) is fetched from :data:`CIFAR10_URL`
into the cache directory and verified against :data:`CIFAR10_MD5`; a file
that fails the check is not kept. The batches are read straight from the
tarball, or from a ``cifar-10-batches-py`` folder: five training batches of
10,000 images and one test batch, each a pickled dict whose ``data`` is a
uint8 array (10,000, 3072) in channel-major order (1,024 red, then green,
then blue values, row by row) and whose ``labels`` are ints 0-9; class
names come from ``batches.meta``.

The batches are pickles. They are read with an unpickler that builds only
dicts, lists, strings, numbers and numpy arrays, so a tampered file cannot
run code. Tests point :data:`CIFAR10_URL` and :data:`CIFAR10_MD5` at a
local server and a tarball of their own.

Reference: A. Krizhevsky, "Learning Multiple Layers of Features from Tiny
Images", 2009, https://www.cs.toronto.edu/~kriz/cifar.html
"""

import codecs
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pooch

from featpipe.cache import default_cache_dir, prepare_cache_dir

from .core import DatasetError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
"""Where the tarball is downloaded from (tests replace it)."""

CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
"""md5 of the official tarball (tests replace it)."""

CIFAR10_FILENAME = "cifar-10-python.tar.gz"
BATCH_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{number}" for number in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"
BATCH_FILES = TRAIN_BATCHES + (TEST_BATCH, META_FILE)
N_IMAGES = 60000

_SIDE = 32
_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("_codecs", "encode"): codecs.encode,
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; refuses any other global."""

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def _unpickle(blob, name):
    try:
        return _ArrayUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as error:  # any malformed pickle
        raise DatasetError(f"{name} is not a CIFAR-10 python batch: {error}") from None


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(batch, key, name):
    if not isinstance(batch, dict):
        raise DatasetError(f"{name} is not a CIFAR-10 python batch: it holds no dict")
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise DatasetError(f"{name} is not a CIFAR-10 python batch: it has no '{key}' entry")


def _batch_arrays(blob, name):
    """(images uint8 (n, 32, 32, 3), labels int64 (n,)) of one pickled batch."""
    batch = _unpickle(blob, name)
    data = np.asarray(_entry(batch, "data", name))
    labels = np.asarray(_entry(batch, "labels", name), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * _SIDE * _SIDE:
        raise DatasetError(
            f"{name}: expected uint8 data of shape (n, 3072); got {data.dtype} {data.shape}"
        )
    if labels.shape != (len(data),):
        raise DatasetError(f"{name}: {len(data)} images but {labels.size} labels")
    images = data.reshape(-1, 3, _SIDE, _SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _blobs_from_tarball(path):
    blobs = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                folder, name = os.path.split(member.name)
                if member.isfile() and name in BATCH_FILES and os.path.basename(folder) == BATCH_FOLDER:
                    blobs[name] = tar.extractfile(member).read()
    except (OSError, tarfile.TarError, EOFError) as error:
        raise DatasetError(f"cannot read CIFAR-10 tarball {path}: {error}") from None
    return blobs


def _blobs_from_folder(folder):
    return {name: (folder / name).read_bytes() for name in BATCH_FILES if (folder / name).is_file()}


def read_cifar10(source):
    """Read all six CIFAR-10 batches from a tarball or a ``cifar-10-batches-py`` folder.

    Parameters
    ----------
    source : str or Path
        ``cifar-10-python.tar.gz`` or the folder holding ``data_batch_1``
        ... ``data_batch_5``, ``test_batch`` and ``batches.meta``.

    Returns
    -------
    X_train : ndarray of uint8, shape (50000, 32, 32, 3)
    y_train : ndarray of int64, shape (50000,)
    X_test : ndarray of uint8, shape (10000, 32, 32, 3)
    y_test : ndarray of int64, shape (10000,)
    classes : list of str
    """
    source = Path(source)
    blobs = _blobs_from_folder(source) if source.is_dir() else _blobs_from_tarball(source)
    missing = [name for name in BATCH_FILES if name not in blobs]
    if missing:
        raise DatasetError(f"{source} is not a complete CIFAR-10 python set: missing {', '.join(missing)}")
    train = [_batch_arrays(blobs[name], name) for name in TRAIN_BATCHES]
    X_test, y_test = _batch_arrays(blobs[TEST_BATCH], TEST_BATCH)
    meta = _unpickle(blobs[META_FILE], META_FILE)
    classes = [_text(name) for name in _entry(meta, "label_names", META_FILE)]
    X_train = np.concatenate([images for images, _ in train])
    y_train = np.concatenate([labels for _, labels in train])
    for labels, name in ((y_train, "training batches"), (y_test, TEST_BATCH)):
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DatasetError(f"CIFAR-10 {name} have labels outside 0..{len(classes) - 1}")
    return X_train, y_train, X_test, y_test, classes


def fetch_cifar10(cache_dir=None):
    """Download the CIFAR-10 tarball once into ``cache_dir`` and verify its md5.

    Parameters
    ----------
    cache_dir : str, Path or None
        Folder for the tarball; ``None`` for :func:`default_cache_dir`.
        A file already there with the right md5 is reused without network.

    Returns
    -------
    path : Path
        The verified tarball.

    Raises
    ------
    DatasetError
        If the download fails, the folder cannot be written, or the md5 of
        what arrived differs from :data:`CIFAR10_MD5`.
    """
    folder = prepare_cache_dir(Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir())
    try:
        path = pooch.retrieve(
            CIFAR10_URL,
            known_hash=f"md5:{CIFAR10_MD5}",
            fname=CIFAR10_FILENAME,
            path=folder,
            progressbar=False,
        )
    except ValueError as error:
        if "hash" not in str(error).lower():
            raise
        raise DatasetError(
            f"CIFAR-10 download from {CIFAR10_URL} failed its checksum (expected md5 {CIFAR10_MD5}); "
            "the file was not kept"
        ) from None
    except OSError as error:
        reason = " ".join(str(error).split())
        raise DatasetError(
            f"cannot download CIFAR-10 from {CIFAR10_URL} into {folder}: {reason} "
            "(or pass --data with a folder holding cifar-10-batches-py)"
        ) from None
    return Path(path)
