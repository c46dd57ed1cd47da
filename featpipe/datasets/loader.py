"""Resolve a ``--data`` value to a source, fingerprint it cheaply, and load it.

A source is ``None``/``"builtin"`` (the built-in set), ``"cifar10"`` (the
official tarball, downloaded once into the cache directory), or a path: a
folder in the ``cifar-10-batches-py`` layout (or holding one), an image
folder, a ``cifar-10-python.tar.gz`` tarball, or an ``.npz`` file.
"""

import hashlib
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import skimage

from featpipe.digests import file_sha256

from . import builtin, cifar10
from .core import (
    SPLITS,
    Dataset,
    DatasetError,
    UnreadableImageWarning,
    check_image_size,
    fingerprint_of,
)
from .images import read_images, resize_batch, scan_image_folder, scan_unlabelled_folder
from .npz import read_npz
from .options import DEFAULT_IMAGE_SIZE, LoadOptions
from .splits import VAL_STREAM, assign_splits, resolve_val_size, stratified_holdout

_KINDS_HINT = "'builtin', 'cifar10', an image folder, a cifar-10-batches-py folder or an .npz file"


def _resolve(data):
    """(kind, path) of a ``--data`` value, checking only that the path exists."""
    if data is None or data == "builtin":
        return "builtin", None
    if data == "cifar10":
        return "cifar10", None
    path = Path(data).expanduser()
    if not path.exists():
        raise DatasetError(f"data set not found: {data} (expected {_KINDS_HINT})")
    path = path.resolve()
    if path.is_dir():
        for folder in (path, path / cifar10.BATCH_FOLDER):
            if (folder / cifar10.TRAIN_BATCHES[0]).is_file():
                return "cifar10-batches", folder
        return "folder", path
    if path.suffix.lower() == ".npz":
        return "npz", path
    if path.name.endswith((".tar.gz", ".tgz")):
        return "cifar10-tarball", path
    raise DatasetError(f"cannot use {path} as a data set (expected {_KINDS_HINT})")


def _name(kind, path):
    prefix = {"cifar10-batches": "cifar10", "cifar10-tarball": "cifar10"}.get(kind, kind)
    return prefix if path is None else f"{prefix}:{path}"


def _listing_digest(root, paths):
    """sha256 over the relative path, size and modification time of each file."""
    digest = hashlib.sha256()
    prefix_length = len(os.path.join(os.fspath(root), ""))
    for path in map(os.fspath, paths):
        try:
            stat = os.stat(path)
        except OSError:  # a dangling link or a link loop: read_images skips it and says why
            stat = os.lstat(path)
        digest.update(f"{path[prefix_length:]}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _content(kind, path):
    """(content digest, number of images or None, folder scan or None) of a source."""
    if kind == "builtin":
        recipe = f"builtin v{builtin.VERSION}, scikit-image {skimage.__version__}"
        return recipe, len(builtin.CLASSES) * (builtin.N_TRAIN_PER_CLASS + builtin.N_TEST_PER_CLASS), None
    if kind == "cifar10":
        return f"md5:{cifar10.CIFAR10_MD5}", cifar10.N_IMAGES, None
    if kind == "cifar10-batches":
        batch_files = [path / name for name in cifar10.BATCH_FILES if (path / name).is_file()]
        return _listing_digest(path, batch_files), None, None
    if kind in ("npz", "cifar10-tarball"):
        return file_sha256(path), None, None
    scan = scan_image_folder(path)
    return _listing_digest(path, scan[0]), len(scan[0]), scan


def describe_source(data=None, options=None, **option_values):
    """Say what ``data`` names and fingerprint it, without decoding any image.

    The fingerprint covers the source's content and the loading parameters,
    and costs a fraction of loading: the built-in recipe version; the
    published md5 of the CIFAR-10 tarball; sha256 of an ``.npz`` or a local
    tarball; or the relative path, size and modification time of every file
    of a folder (about half a second for CIFAR-10's 60,000 JPEGs).

    Parameters
    ----------
    data : None, str or Path
        ``None`` or ``"builtin"``, ``"cifar10"``, or a path (see
        :func:`load_dataset`).
    options : LoadOptions or None
        As for :func:`load_dataset`; only ``image_size``, ``val_size`` and
        ``seed`` matter here.
    **option_values
        Fields of :class:`LoadOptions` to set, as for :func:`load_dataset`.

    Returns
    -------
    source : dict
        ``kind`` (``"builtin"``, ``"cifar10"``, ``"cifar10-batches"``,
        ``"cifar10-tarball"``, ``"folder"`` or ``"npz"``), ``name`` (as
        :attr:`Dataset.name` will be), ``path`` (absolute, or None),
        ``n_images`` (images the source holds, when known without reading
        it: the image files of a folder, 2,000 for the built-in set, 60,000
        for a CIFAR-10 download; None for the other kinds) and
        ``fingerprint``.

    Raises
    ------
    DatasetError
        For a path that does not exist or is no data set, a bad
        ``image_size``, or a folder that cannot be used.

    Examples
    --------
    >>> describe_source()["name"]
    'builtin'
    """
    return _describe(data, _load_options(options, option_values))[0]


def _load_options(options, option_values):
    """``options`` (default ``LoadOptions()``) with ``option_values`` set and the image size resolved."""
    options = replace(options or LoadOptions(), **option_values)
    image_size = DEFAULT_IMAGE_SIZE if options.image_size is None else options.image_size
    return replace(options, image_size=check_image_size(image_size))


def _describe(data, options):
    kind, path = _resolve(data)
    digest, n_images, scan = _content(kind, path)
    source = {
        "kind": kind,
        "name": _name(kind, path),
        "path": None if path is None else str(path),
        "n_images": n_images,
        "fingerprint": fingerprint_of(kind, digest, options.image_size, options.val_size, options.seed),
    }
    return source, scan


def _load_folder(root, scan, options, n_jobs, progress):
    paths, labels, _, scanned_splits = scan
    images, ok, skipped = read_images(paths, options.image_size, strict=options.strict, n_jobs=n_jobs,
                                      progress=progress, max_pixels=options.max_pixels)
    if not ok.any():
        first_path, reason = skipped[0]
        raise DatasetError(
            f"no readable images in {root}: all {len(paths)} failed (first: {first_path}: {reason})"
        )
    labels = labels[ok]
    splits = assign_splits(labels, scanned_splits[ok], options.val_size, options.seed)
    arrays = {}
    for split in SPLITS:
        chosen = splits == split
        arrays[f"X_{split}"], arrays[f"y_{split}"] = images[chosen], labels[chosen]
    return arrays, skipped


def _load_arrays(kind, path, scan, options, n_jobs, progress):
    """({X_train, y_train, X_test, y_test[, X_val, y_val]}, classes, skipped) of a source."""
    if kind == "builtin":
        X_train, y_train, X_test, y_test, classes = builtin.make_builtin(options.image_size, options.seed)
        return {"X_train": X_train, "y_train": y_train, "X_test": X_test, "y_test": y_test}, classes, []
    if kind == "folder":
        arrays, skipped = _load_folder(path, scan, options, n_jobs, progress)
        return arrays, scan[2], skipped
    if kind == "npz":
        arrays, classes = read_npz(path)
    else:
        source = cifar10.fetch_cifar10(options.cache_dir) if kind == "cifar10" else path
        X_train, y_train, X_test, y_test, classes = cifar10.read_cifar10(source)
        arrays = {"X_train": X_train, "y_train": y_train, "X_test": X_test, "y_test": y_test}
    for key in [key for key in arrays if key.startswith("X_")]:
        arrays[key] = resize_batch(arrays[key], options.image_size)
    return arrays, classes, []


def _check_splits(arrays, classes, name):
    train_classes = np.unique(arrays["y_train"])
    if len(arrays["y_train"]) == 0 or len(arrays["y_test"]) == 0:
        empty = "train" if len(arrays["y_train"]) == 0 else "test"
        raise DatasetError(f"{name}: the {empty} split holds no images")
    if len(train_classes) < 2:
        only = classes[train_classes[0]]
        raise DatasetError(f"{name}: train holds only one class ({only}); a classifier needs two")
    for split in ("val", "test"):
        labels = arrays.get(f"y_{split}", np.empty(0, np.int64))
        unknown = np.setdiff1d(np.unique(labels), train_classes)
        if unknown.size:
            names = ", ".join(classes[label] for label in unknown)
            raise DatasetError(f"{name}: the {split} split has classes with no training images: {names}")


def load_dataset(data=None, options=None, *, progress=None, n_jobs=-1, **option_values):
    """Load a data set as uint8 images at one size, with train, validation and test splits.

    Parameters
    ----------
    data : None, str or Path, default=None
        ``None`` or ``"builtin"``: the built-in set
        (:mod:`featpipe.datasets.builtin`). ``"cifar10"``: the official
        CIFAR-10 tarball, downloaded once into ``cache_dir`` with its md5
        checked. A path: a ``cifar-10-batches-py`` folder (or a folder
        holding one), a ``cifar-10-python.tar.gz``, an image folder
        (``ROOT/<class>/<image>`` or ``ROOT/{train,test}/<class>/<image>``,
        see :func:`scan_image_folder`), or an ``.npz`` file
        (:mod:`featpipe.datasets.npz`).
    options : LoadOptions or None, default=None
        Image size (default 32), validation hold-out, seed, strictness and
        download folder (:class:`featpipe.datasets.LoadOptions`); a run's or
        an extract job's options extend it and are passed as they are.
    progress : callable or None
        Called with the number of files decoded after each chunk (image
        folders only); ``describe_source(...)["n_images"]`` is the total.
    n_jobs : int, default=-1
        Decoding threads for image folders; -1 uses every core.
    **option_values
        Fields of :class:`LoadOptions` to set on top of ``options``, e.g.
        ``load_dataset("builtin", image_size=16, seed=1)``.

    Returns
    -------
    dataset : Dataset

    Raises
    ------
    DatasetError
        One line saying what is wrong: a missing path, an empty folder, a
        single class, no readable images, a malformed ``.npz`` or batch, a
        test split with classes train lacks, a bad size, a failed download.

    Warns
    -----
    UnreadableImageWarning
        Once, with the count, when image files were skipped.

    Examples
    --------
    >>> dataset = load_dataset("builtin", image_size=32, seed=0)
    >>> dataset.X_train.shape, dataset.X_val.shape, dataset.X_test.shape
    ((1350, 32, 32, 3), (150, 32, 32, 3), (500, 32, 32, 3))
    """
    options = _load_options(options, option_values)
    source, scan = _describe(data, options)
    kind, path = source["kind"], None if source["path"] is None else Path(source["path"])
    arrays, classes, skipped = _load_arrays(kind, path, scan, options, n_jobs, progress)
    if "X_val" not in arrays:
        n_val = resolve_val_size(options.val_size, len(arrays["y_train"]))
        kept, held = stratified_holdout(arrays["y_train"], n_val, options.seed, VAL_STREAM)
        arrays["X_val"], arrays["y_val"] = arrays["X_train"][held], arrays["y_train"][held]
        arrays["X_train"], arrays["y_train"] = arrays["X_train"][kept], arrays["y_train"][kept]
    _check_splits(arrays, classes, source["name"])
    if skipped:
        first_path, reason = skipped[0]
        warnings.warn(
            UnreadableImageWarning(
                f"skipped {len(skipped)} unreadable image file(s) of {source['n_images']} in {path} "
                f"(first: {first_path}: {reason})"
            ),
            stacklevel=2,
        )
    return Dataset(
        name=source["name"],
        X_train=arrays["X_train"],
        y_train=arrays["y_train"],
        X_val=arrays["X_val"],
        y_val=arrays["y_val"],
        X_test=arrays["X_test"],
        y_test=arrays["y_test"],
        classes=list(classes),
        fingerprint=source["fingerprint"],
        skipped=skipped,
    )


def describe_unlabelled_folder(data, options=None, **option_values):
    """:func:`describe_source` of a flat folder of images without class folders; also its image paths.

    Returns
    -------
    source : dict
        As :func:`describe_source` gives it, of kind ``"unlabelled-folder"``.
    paths : list of str
        The images (:func:`featpipe.datasets.images.scan_unlabelled_folder`).
    """
    options = _load_options(options, option_values)
    path = Path(data).expanduser().resolve()
    paths = scan_unlabelled_folder(path)
    kind = "unlabelled-folder"
    source = {
        "kind": kind,
        "name": _name(kind, path),
        "path": str(path),
        "n_images": len(paths),
        "fingerprint": fingerprint_of(kind, _listing_digest(path, paths), options.image_size, options.val_size,
                                      options.seed),
    }
    return source, paths
