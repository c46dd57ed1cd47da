"""Reading a finished feature store.

:func:`open` keeps the shards as they are and memory-maps each one;
``features`` is a :class:`ShardedFeatures`, an (N, D) float32 view that
indexes across shards like an array and becomes one with ``np.asarray``.
One file would need either a final copy of every shard (twice the disk for
a million-image store) or many writers sharing one file across machines
(no atomic shards); a view over the shards needs neither.
"""

from pathlib import Path

import numpy as np

from featpipe.datasets import SPLITS
from featpipe.digests import file_sha256
from featpipe.store.format import (
    MANIFEST_NAME,
    SHARDS_DIR,
    STORE_FORMAT_VERSION,
    StoreError,
    distinct_feature_names,
    load_extractors,
    read_manifest,
)
from featpipe.store.manifest import check_manifest, checked_shard_path


class ShardedFeatures:
    """An (N, D) float32 array made of memory-mapped shards, read on demand.

    Indexing follows numpy for the first axis (an int, a slice, a boolean
    mask or an array of ints), optionally followed by a column index
    (rows and columns are selected independently, ``X[rows][:, columns]``),
    and returns an ndarray holding only the rows asked for. ``np.asarray``
    reads everything.

    Parameters
    ----------
    shards : list of ndarray
        Memory-mapped (n_rows_i, D) float32 arrays, in row order.
    n_features : int
        D, also for a store without rows.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, shards, n_features):
        self.shards = shards
        self.offsets = np.cumsum([0] + [len(shard) for shard in shards])
        self.shape = (int(self.offsets[-1]), int(n_features))

    def __len__(self):
        return self.shape[0]

    def _row_indices(self, rows):
        if isinstance(rows, slice):
            return np.arange(*rows.indices(len(self)))
        rows = np.asarray(rows)
        if rows.dtype == np.bool_:
            if rows.shape != (len(self),):
                raise IndexError(f"boolean index of shape {rows.shape} for {len(self)} rows")
            return np.flatnonzero(rows)
        if not np.issubdtype(rows.dtype, np.integer):
            raise IndexError(f"rows must be indexed by ints, slices or boolean masks; got {rows.dtype}")
        rows = np.where(rows < 0, rows + len(self), rows)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        return rows

    def __getitem__(self, key):
        rows, columns = key if isinstance(key, tuple) else (key, slice(None))
        if isinstance(columns, (int, np.integer)):
            return self[rows, [columns]][..., 0]
        if isinstance(rows, (int, np.integer)):
            return self[np.asarray([rows]), columns][0]
        indices = self._row_indices(rows).ravel()
        width = np.empty((0, self.shape[1]), dtype=np.float32)[:, columns].shape[1]
        out = np.empty((len(indices), width), dtype=np.float32)
        owner = np.searchsorted(self.offsets, indices, side="right") - 1
        order = np.argsort(owner, kind="stable")
        shard_indices, starts = np.unique(owner[order], return_index=True)
        for shard_index, start, stop in zip(shard_indices, starts, [*starts[1:], len(order)]):
            positions = order[start:stop]
            out[positions] = self.shards[shard_index][indices[positions] - self.offsets[shard_index]][:, columns]
        return out

    def __array__(self, dtype=None, copy=None):
        features = self[:]
        return features if dtype is None else features.astype(dtype, copy=False)


class FeatureStore:
    """A finished feature store, opened for reading (see :func:`open`).

    Attributes
    ----------
    path : Path
    manifest : dict
        The parsed ``manifest.json``.
    features : ShardedFeatures
        (N, D) float32 view of every stored row.
    labels : ndarray of int64, shape (N,)
    splits : ndarray of str, shape (N,)
        ``"train"``, ``"val"`` or ``"test"`` per row.
    classes : list of str
    paths : list of str
        Source of each row (a file path, or ``<split>/<index>`` for
        in-memory data sets).
    feature_names : list of str
        Extractor names, in column order; ``feature_widths`` gives each width.
    skipped : list of dict
        ``{"path", "reason"}`` of every image that could not be read.
    """

    def __init__(self, path, manifest, shards):
        self.path = Path(path)
        self.manifest = manifest
        self.features = ShardedFeatures(shards, manifest["n_features"])
        self.labels = np.asarray(manifest["labels"], dtype=np.int64)
        self.splits = np.asarray(manifest["splits"], dtype=str)
        self.classes = list(manifest["classes"])
        self.paths = list(manifest["paths"])
        self.feature_names = [block["name"] for block in manifest["features"]]
        self.feature_widths = dict(zip(distinct_feature_names(self.feature_names),
                                       (block["width"] for block in manifest["features"])))
        self.skipped = list(manifest["skipped"])

    def __len__(self):
        return len(self.labels)

    def __str__(self):
        widths = " + ".join(f"{name} {width}" for name, width in self.feature_widths.items())
        counts = ", ".join(f"{np.count_nonzero(self.splits == name)} {name}" for name in SPLITS)
        return (f"{self.path}: {len(self)} images x {self.features.shape[1]} features ({widths}); {counts}; "
                f"{len(self.skipped)} unreadable image(s) skipped")

    def split(self, name):
        """Features (in memory, float32) and labels of split ``name``."""
        mask = self.splits == name
        return self.features[mask], self.labels[mask]

    def load_extractors(self):
        """The fitted extractors as a list of ``(name, extractor)``."""
        return load_extractors(self.path)

    def to_dask(self, verify=True):
        """The features as a lazy ``dask.array``, one block per shard, checksums checked as blocks are read.

        Examples
        --------
        >>> X = featpipe.store.open("cifar-hog").to_dask()  # doctest: +SKIP
        >>> X.mean(axis=0).compute()  # doctest: +SKIP
        """
        from featpipe.store.shards import store_to_dask

        return store_to_dask(self, verify=verify)

    def blocks(self, split=None, verify=True):
        """The features (of split ``split``, or all) as row blocks read shard by shard, for the heads.

        See :class:`featpipe.store.shards.StoreBlocks`; pair it with
        ``labels[splits == split]``.
        """
        from featpipe.store.shards import StoreBlocks

        blocks = StoreBlocks(self, verify=verify)
        return blocks if split is None else blocks.select(self.splits == split)


def is_store(path):
    """Whether ``path`` is a folder holding a feature store's manifest (finished or not)."""
    return (Path(path) / MANIFEST_NAME).is_file()


def open(path, verify=True):  # noqa: A001 - the reader API is featpipe.store.open
    """Open a finished feature store for reading.

    Parameters
    ----------
    path : path-like
        The store folder written by ``featpipe extract``.
    verify : bool, default=True
        Check every shard's sha256 against the manifest (reads each shard
        once); shapes are always checked.

    Returns
    -------
    store : FeatureStore

    Raises
    ------
    StoreError
        When the folder is not a store, its job has not finished, or a
        shard is missing, has the wrong shape or fails its checksum.

    Examples
    --------
    >>> store = featpipe.store.open("cifar-hog")  # doctest: +SKIP
    >>> X_train, y_train = store.split("train")  # doctest: +SKIP
    """
    path = Path(path)
    manifest = read_manifest(path)
    if manifest is None:
        raise StoreError(f"{path} is not a feature store: it has no {MANIFEST_NAME}")
    if not isinstance(manifest, dict):
        raise StoreError(f"manifest of store {path} is invalid: not a JSON object")
    if manifest.get("format") != STORE_FORMAT_VERSION:
        raise StoreError(f"{path} is a feature store of format {manifest.get('format')}; "
                         f"this featpipe reads format {STORE_FORMAT_VERSION}")
    if not manifest.get("complete"):
        raise StoreError(f"feature store {path} is unfinished: its job was interrupted; "
                         "run the same featpipe extract command again to finish it")
    check_manifest(path, manifest, SHARDS_DIR, StoreError)
    shards = []
    for index, shard in enumerate(manifest["shards"]):
        shard_path = checked_shard_path(path, SHARDS_DIR, index, shard["file"], StoreError)
        try:
            array = np.load(shard_path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise StoreError(f"shard {shard_path} of store {path} cannot be read: {error}") from None
        expected = (shard["n_rows"], manifest["n_features"])
        if array.shape != expected or array.dtype != np.float32:
            raise StoreError(f"shard {shard_path} holds {array.dtype} {array.shape}; the manifest "
                             f"says float32 {expected}")
        if verify and file_sha256(shard_path) != shard["sha256"]:
            raise StoreError(f"shard {shard_path} is corrupt: its sha256 does not match the manifest; "
                             "run the same featpipe extract command again to rewrite it")
        shards.append(array)
    return FeatureStore(path, manifest, shards)
