"""A feature store read shard by shard: as heads' row blocks, and as a Dask array.

:func:`featpipe.store.open` memory-maps every shard and keeps the maps, which
is convenient for random access, but every page read through a kept map
stays resident (and counts in the process's memory). Code that walks the
whole store - training on more rows than fit in memory, predicting a whole
collection - reads each shard here instead. The first read of a shard in a
process is one plain read into a fresh array, the sha256 of the manifest
checked on those very bytes; later reads (every iteration of a full-batch
optimizer) memory-map the verified file for the time the caller holds the
block, so the rows come straight from the page cache without a copy, and
the pages leave the process's resident set when the block is dropped.
"""

import hashlib
from pathlib import Path

import numpy as np

from featpipe.heads.blocks import RowBlocks
from featpipe.store.format import SHARDS_DIR, StoreError


def _shard_path(store_path, record):
    """The shard file of ``record``, refused unless it lies directly in the store's shards folder."""
    shards = (Path(store_path) / SHARDS_DIR).resolve()
    path = (Path(store_path) / record["file"]).resolve()
    if path.parent != shards:
        raise StoreError(f"store {store_path} names a shard outside its {SHARDS_DIR} folder: {record['file']!r}")
    return path


def read_shard(store_path, record, n_features, verify=True):
    """Read one shard into memory (no memory map), checking its sha256 and shape.

    Parameters
    ----------
    store_path : path-like
        The store folder.
    record : dict
        The shard's entry in the manifest (``file``, ``n_rows``, ``sha256``).
    n_features : int
        Width the manifest promises.
    verify : bool, default=True
        Compare the sha256 of the bytes read with the manifest's.

    Returns
    -------
    features : ndarray of float32, shape (n_rows, n_features)

    Raises
    ------
    StoreError
        When the shard is missing, corrupt, or not the float32 array the
        manifest describes.
    """
    path = _shard_path(store_path, record)
    try:
        with path.open("rb") as file:
            size = path.stat().st_size
            buffer = bytearray(size)
            if file.readinto(buffer) != size:
                raise OSError("the file changed size while it was read")
    except OSError as error:
        raise StoreError(f"shard {path} cannot be read: {error}") from None
    if verify and hashlib.sha256(buffer).hexdigest() != record["sha256"]:
        raise StoreError(f"shard {path} is corrupt: its sha256 does not match the manifest; "
                         "run the same featpipe extract command again to rewrite it")
    expected = (int(record["n_rows"]), int(n_features))
    header = memoryview(buffer)
    try:
        stream = _BufferReader(header)
        version = np.lib.format.read_magic(stream)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(stream)
    except ValueError as error:
        raise StoreError(f"shard {path} is not a .npy array: {error}") from None
    if tuple(shape) != expected or dtype != np.float32 or fortran_order:
        raise StoreError(f"shard {path} holds {dtype} {tuple(shape)}; the manifest says float32 {expected}")
    offset = stream.position
    if size - offset != expected[0] * expected[1] * 4:
        raise StoreError(f"shard {path} is truncated: {size - offset} bytes of data for {expected}")
    return np.frombuffer(buffer, dtype=np.float32, offset=offset).reshape(expected)


def map_shard(store_path, record, n_features):
    """Memory-map one shard already verified in this process, checking its shape (a plain ndarray view).

    Raises
    ------
    StoreError
        When the shard is missing or not the float32 array the manifest describes.
    """
    path = _shard_path(store_path, record)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise StoreError(f"shard {path} cannot be read: {error}") from None
    expected = (int(record["n_rows"]), int(n_features))
    if array.shape != expected or array.dtype != np.float32:
        raise StoreError(f"shard {path} holds {array.dtype} {array.shape}; the manifest says float32 {expected}")
    return np.asarray(array)


class _BufferReader:
    """The ``read`` numpy's header parser needs, over an in-memory buffer."""

    def __init__(self, view):
        self.view = view
        self.position = 0

    def read(self, size):
        chunk = self.view[self.position:self.position + size].tobytes()
        self.position += len(chunk)
        return chunk


class StoreBlocks(RowBlocks):
    """A finished store's features as row blocks for the heads: one block per shard.

    The first :meth:`read_block` of a shard in a process reads it into a
    fresh array and checks its sha256; later reads memory-map it (see the
    module's docstring). Picklable and
    small (paths and the manifest's shard records), so it can be sent to
    the workers of a cluster, which then read the shards themselves.

    Parameters
    ----------
    store : FeatureStore
        As returned by :func:`featpipe.store.open`.
    verify : bool, default=True
        Check each shard's sha256 the first time this process reads it.

    Examples
    --------
    >>> store = featpipe.store.open("cifar-words", verify=False)  # doctest: +SKIP
    >>> train = StoreBlocks(store).select(store.splits == "train")  # doctest: +SKIP
    >>> LinearSVM(optimizer="lbfgs").fit(train, store.labels[store.splits == "train"])  # doctest: +SKIP
    """

    dtype = np.dtype(np.float32)

    def __init__(self, store, verify=True):
        self.path = Path(store.path)
        self.records = [dict(record) for record in store.manifest["shards"]]
        self.n_features = int(store.manifest["n_features"])
        self.block_bounds = np.concatenate([[0], np.cumsum([r["n_rows"] for r in self.records], dtype=np.int64)])
        self.verify = verify
        self._verified = set()

    def __getstate__(self):
        return {**self.__dict__, "_verified": set()}

    def _read_block(self, index):
        if not self.verify or index in self._verified:
            return map_shard(self.path, self.records[index], self.n_features)
        block = read_shard(self.path, self.records[index], self.n_features, verify=True)
        self._verified.add(index)
        return block


def store_to_dask(store, verify=True):
    """The store's features as a lazy ``dask.array``, one block per shard.

    Nothing is read until a block is computed; each block is then read by
    :func:`read_shard` (checksum checked with ``verify``) wherever Dask runs
    the task.

    Returns
    -------
    dask.array.Array of float32, shape (N, D), chunks of one shard's rows
    """
    import dask
    import dask.array as da

    n_features = int(store.manifest["n_features"])
    blocks = [
        da.from_delayed(dask.delayed(read_shard, pure=True)(str(store.path), dict(record), n_features, verify),
                        shape=(int(record["n_rows"]), n_features), dtype=np.float32)
        for record in store.manifest["shards"]
    ]
    if not blocks:
        return da.zeros((0, n_features), dtype=np.float32)
    return da.concatenate(blocks, axis=0)
