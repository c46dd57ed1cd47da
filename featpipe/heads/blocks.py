"""Row blocks: a training matrix read one block of rows at a time.

The heads train on an (N, D) array, or on a *block source*: any object that
reads its rows in blocks, so that a matrix larger than memory (the shards of
a feature store) is never held whole. Every full-batch quantity the heads
need is a sum over rows, so it is a sum over blocks:

- the data loss and its gradient (:func:`full_batch_loss`); the penalty is
  added once, after the sum;
- the least-squares start's Gram matrix ``X^T X`` and ``X^T Y``
  (:func:`featpipe.heads.starting_point.least_squares_weights`);
- an SGD epoch visits the blocks in a seeded random order and the rows of
  each block in a random order (:func:`shuffled_batches`).

Labels stay one in-memory array beside the source (``fit(source, y)``, as
scikit-learn estimators take ``fit(X, y)``): they cost 8 bytes a row against
thousands for the features, and the heads need all of them up front (the
classes, the held-out split).

A block source subclasses :class:`RowBlocks` and implements ``block_bounds``
(row offsets, ``n_blocks + 1`` of them) and ``_read_block(index)``; a
source with ``can_map_reduce = True`` also implements
``map_reduce_loss(data_loss, W, y, mask=None)``, which returns the summed
data loss and gradient computed elsewhere (on the workers of a Dask
cluster, where the blocks are read).

One engine: the heads train an in-memory array through the same block sums
(:class:`ArrayBlocks`), and :meth:`RowBlocks.in_memory` loads a source into
an array *with the source's block boundaries*, so training in memory and
training streamed from a store take the same sums in the same order and
follow the same optimizer path. A standardized source
(:class:`ScaledBlocks`) never standardizes its rows for the loss: it folds
the scaler into the weights, ``((x - mu) / sigma) W + b = x (W / sigma) +
(b - (mu / sigma) W)``, sums the raw blocks' losses at the folded weights,
and maps the summed gradient back once per evaluation.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from featpipe.parallel import blas_threads

DEFAULT_BLOCK_ROWS = 4096
"""Rows per block when an in-memory array is read as blocks."""


def is_block_source(X):
    """Whether ``X`` is a block source rather than an array-like."""
    return isinstance(X, RowBlocks)


class RowBlocks:
    """Base of the block sources: an (N, D) matrix read block of rows by block.

    Subclasses set ``block_bounds`` (int64 array of ``n_blocks + 1`` row
    offsets, starting at 0), ``n_features`` and ``dtype``, and implement
    ``_read_block(index)``, which returns the rows of block ``index`` as an
    ndarray of shape (rows in the block, D).
    """

    ndim = 2
    can_map_reduce = False
    """True for sources whose ``map_reduce_loss(data_loss, W, y)`` sums block losses elsewhere."""

    @property
    def n_blocks(self):
        """Number of blocks."""
        return len(self.block_bounds) - 1

    @property
    def shape(self):
        """(N, D), like an array's."""
        return int(self.block_bounds[-1]), int(self.n_features)

    def __len__(self):
        return self.shape[0]

    def read_block(self, index):
        """The rows of block ``index`` as an ndarray (a fresh read each call)."""
        block = self._read_block(index)
        expected = (int(self.block_bounds[index + 1] - self.block_bounds[index]), self.shape[1])
        if block.shape != expected:
            raise ValueError(f"block {index} holds {block.shape} values; expected {expected}")
        return block

    def take(self, rows):
        """Rows at the sorted indices ``rows``, gathered block by block into one array."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        owners = np.searchsorted(self.block_bounds, rows, side="right") - 1
        for index in np.unique(owners):
            wanted = owners == index
            out[wanted] = self.read_block(index)[rows[wanted] - self.block_bounds[index]]
        return out

    def select(self, rows):
        """A source of only the rows ``rows`` (sorted int indices or a boolean mask), in order."""
        mask = np.zeros(self.shape[0], dtype=bool)
        mask[rows] = True
        return SelectedRows(self, mask)

    def scaled(self, mean, scale):
        """This source standardized, ``(x - mean) / scale`` block by block (see :class:`ScaledBlocks`)."""
        return ScaledBlocks(self, mean, scale)

    def in_memory(self):
        """Every row read into one array, kept as blocks with this source's boundaries (:class:`ArrayBlocks`)."""
        return ArrayBlocks(np.asarray(self), block_bounds=self.block_bounds)

    def summed_loss(self, data_loss, W, y):
        """Sum over blocks of ``rows * data_loss(W, block, labels)``: (float64 value, float64 gradient)."""
        return sum_block_losses(data_loss, W, self, y)

    def __array__(self, dtype=None, copy=None):
        array = np.empty(self.shape, dtype=self.dtype)
        for index in range(self.n_blocks):
            start, stop = self.block_bounds[index:index + 2]
            if stop > start:
                array[start:stop] = self.read_block(index)
        return array if dtype is None else array.astype(dtype, copy=False)


class ArrayBlocks(RowBlocks):
    """An in-memory (N, D) array read as blocks of ``block_rows`` rows (views, no copy).

    Parameters
    ----------
    X : ndarray of shape (N, D)
    block_rows : int, default=4096
    block_bounds : array-like of int or None
        Row offsets of the blocks (``n_blocks + 1`` of them, from 0 to N),
        instead of ``block_rows``: the boundaries of another source, so
        that sums over blocks run as they run over that source.

    Examples
    --------
    >>> import numpy as np
    >>> blocks = ArrayBlocks(np.arange(10.0).reshape(5, 2), block_rows=2)
    >>> blocks.n_blocks, blocks.read_block(2).tolist()
    (3, [[8.0, 9.0]])
    """

    def __init__(self, X, block_rows=DEFAULT_BLOCK_ROWS, block_bounds=None):
        self.X = X
        self.n_features = X.shape[1]
        self.dtype = X.dtype
        if block_bounds is not None:
            self.block_bounds = np.asarray(block_bounds, dtype=np.int64)
            bounds = self.block_bounds
            if bounds[0] != 0 or bounds[-1] != X.shape[0] or np.any(np.diff(bounds) < 0):
                raise ValueError(f"block_bounds must rise from 0 to {X.shape[0]} rows")
        elif X.shape[0] == 0:
            self.block_bounds = np.zeros(1, dtype=np.int64)
        else:
            self.block_bounds = np.append(np.arange(0, X.shape[0], max(1, int(block_rows))), X.shape[0])

    def _read_block(self, index):
        return self.X[self.block_bounds[index]:self.block_bounds[index + 1]]


class SelectedRows(RowBlocks):
    """The rows of ``parent`` where ``mask`` is True, block by block of the parent."""

    def __init__(self, parent, mask):
        self.parent = parent
        self.mask = mask
        self.n_features = parent.n_features
        self.dtype = parent.dtype
        counts = [np.count_nonzero(mask[start:stop])
                  for start, stop in zip(parent.block_bounds[:-1], parent.block_bounds[1:])]
        self.block_bounds = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])

    def _read_block(self, index):
        if self.block_bounds[index + 1] == self.block_bounds[index]:
            return np.empty((0, self.n_features), dtype=self.dtype)
        start, stop = self.parent.block_bounds[index:index + 2]
        return self.parent.read_block(index)[self.mask[start:stop]]

    @property
    def can_map_reduce(self):
        """Whether the parent computes summed losses remotely."""
        return self.parent.can_map_reduce

    def summed_loss(self, data_loss, W, y):
        """The parent's remote reduction over this source's rows when it has one, else the local sum."""
        if self.parent.can_map_reduce:
            return self.parent.map_reduce_loss(data_loss, W, y, mask=self.mask)
        return super().summed_loss(data_loss, W, y)


class ScaledBlocks(RowBlocks):
    """The blocks of ``parent`` standardized, ``(x - mean) / scale``, with the scaler folded into the loss.

    Reading a block (:meth:`read_block`: predictions, samples, the
    least-squares start, SGD) gives standardized float32 copies. The
    full-batch loss (:meth:`summed_loss`) never standardizes a row: it
    evaluates the parent's raw blocks at the folded weights ``W' = [V /
    scale; b - (mean / scale) V]`` (``W = [V; b]``), which give the same
    scores, and maps the summed gradient back, ``dV = dV' / scale -
    (mean / scale) db'^T`` and ``db = db'``, once per evaluation. So an
    evaluation reads each raw block once and does no per-row arithmetic
    besides the loss itself, and a remote parent (a Dask cluster) only
    ever sees raw blocks and folded weights.

    Parameters
    ----------
    parent : RowBlocks
    mean, scale : ndarray of shape (D,)
        A fitted ``StandardScaler``'s ``mean_`` and ``scale_``.
    """

    def __init__(self, parent, mean, scale):
        self.parent = parent
        self.mean = np.asarray(mean, dtype=parent.dtype)
        self.scale = np.asarray(scale, dtype=parent.dtype)
        self.n_features = parent.n_features
        self.dtype = parent.dtype
        self.block_bounds = parent.block_bounds

    def _read_block(self, index):
        block = np.subtract(self.parent.read_block(index), self.mean, dtype=self.dtype)
        block /= self.scale
        return block

    def select(self, rows):
        """The standardized rows ``rows``: the parent's selection, standardized (the fold stays on top)."""
        return ScaledBlocks(self.parent.select(rows), self.mean, self.scale)

    def in_memory(self):
        """The parent's rows loaded into memory (raw), standardized on the fly as here."""
        return ScaledBlocks(self.parent.in_memory(), self.mean, self.scale)

    def summed_loss(self, data_loss, W, y):
        """The parent's summed loss at the folded weights, its gradient mapped back to ``W``."""
        if W.shape[0] != self.n_features + 1:  # no bias row to absorb the mean: standardize the rows
            return super().summed_loss(data_loss, W, y)
        inverse_scale = 1.0 / self.scale.astype(np.float64)
        shift = self.mean.astype(np.float64) * inverse_scale
        weights = W[:-1].astype(np.float64)
        folded = np.empty_like(W)
        folded[:-1] = weights * inverse_scale[:, np.newaxis]
        folded[-1] = W[-1] - shift @ weights
        total, folded_gradient = self.parent.summed_loss(data_loss, folded, y)
        gradient = np.empty_like(folded_gradient)
        gradient[:-1] = folded_gradient[:-1] * inverse_scale[:, np.newaxis]
        gradient[:-1] -= np.outer(shift, folded_gradient[-1])
        gradient[-1] = folded_gradient[-1]
        return total, gradient


def fit_scaler_by_blocks(scaler, source):
    """Fit a scikit-learn scaler with ``partial_fit`` on each non-empty block of ``source``; return it."""
    for index in range(source.n_blocks):
        if source.block_bounds[index + 1] > source.block_bounds[index]:
            scaler.partial_fit(source.read_block(index))
    return scaler


def full_batch_loss(data_loss, penalty):
    """The full-batch loss over a block source, from a block loss and a penalty.

    Parameters
    ----------
    data_loss : callable
        ``data_loss(W, X_block, y_block) -> (mean loss over the block, dW)``
        without penalty (a loss of :mod:`featpipe.heads.losses` with
        ``reg=0``).
    penalty : callable
        ``penalty(W) -> (value, dW)`` of the whole penalty (bias row zero).

    Returns
    -------
    loss : callable
        ``loss(W, source, y) -> (value, dW)``: the mean data loss over every
        row of ``source`` (labels ``y``) plus the penalty, the same value an
        in-memory loss gives on the whole matrix. The source sums its
        blocks (:meth:`RowBlocks.summed_loss`): here one block at a time,
        on a cluster for a source that can map-reduce, at folded weights
        for a standardized source.
    """

    def loss(W, source, y):
        total, gradient = source.summed_loss(data_loss, W, y)
        n_rows = max(source.shape[0], 1)
        value, penalty_gradient = penalty(W)
        gradient = (gradient / n_rows).astype(W.dtype)
        gradient += penalty_gradient
        return total / n_rows + value, gradient

    return loss


def block_losses(data_loss, W, source, y, blocks, first_row=0, n_threads=1):
    """``(rows, mean loss, gradient)`` of each of ``blocks`` of ``source``, in order, each by one BLAS thread.

    Every block's float32 products run on a single BLAS thread, whichever
    thread or machine computes them, so a block's loss and gradient are the
    same bits here, in a pool of ``n_threads`` threads (one block each,
    BLAS and file reads release the GIL) and on a Dask worker: summed in
    block order (:func:`add_block_losses`), local and distributed training
    take identical steps. At most ``n_threads`` blocks are in memory at
    once. Returns an iterator; ``y`` holds the labels from row
    ``first_row`` on.
    """
    def one_block(index):
        start, stop = source.block_bounds[index:index + 2]
        value, gradient = data_loss(W, source.read_block(index), y[start - first_row:stop - first_row])
        return stop - start, value, gradient

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=max(1, n_threads)) as pool:
        yield from pool.map(one_block, blocks)


def add_block_losses(per_block, shape):
    """Sum ``rows * loss`` and ``rows * gradient`` over ``(rows, loss, gradient)`` triples, in their order.

    Returns (float64 value, float64 gradient of ``shape``), not yet divided by N.
    """
    total, gradient = 0.0, np.zeros(shape, dtype=np.float64)
    for rows, value, block_gradient in per_block:
        total += value * rows
        gradient += rows * block_gradient.astype(np.float64)
    return total, gradient


def non_empty_blocks(block_bounds):
    """Indices of the blocks that hold at least one row."""
    return [index for index in range(len(block_bounds) - 1) if block_bounds[index + 1] > block_bounds[index]]


def sum_block_losses(data_loss, W, source, y):
    """Sum over every block of ``rows * data_loss``: (float64 value, float64 gradient), not yet divided by N.

    The blocks are computed by as many threads as the BLAS may use, each
    with one BLAS thread (:func:`block_losses`), and added in block order.
    """
    per_block = block_losses(data_loss, W, source, y, non_empty_blocks(source.block_bounds),
                             n_threads=blas_threads())
    return add_block_losses(per_block, W.shape)


def shuffled_batches(source, y, batch_size, rng):
    """Yield (X_batch, y_batch) covering every row once: blocks in random order, rows shuffled within.

    One block is in memory at a time. A batch never spans two blocks, so the
    last batch of a block may be smaller than ``batch_size``.
    """
    for index in rng.permutation(source.n_blocks):
        start, stop = source.block_bounds[index:index + 2]
        if stop == start:
            continue
        block, labels = source.read_block(index), y[start:stop]
        order = rng.permutation(stop - start)
        for first in range(0, len(order), batch_size):
            batch = np.sort(order[first:first + batch_size])
            yield block[batch], labels[batch]


def predict_by_blocks(predict, source):
    """``predict`` (any function of an array of rows) applied to each non-empty block, concatenated."""
    parts = [np.asarray(predict(source.read_block(index))) for index in range(source.n_blocks)
             if source.block_bounds[index + 1] > source.block_bounds[index]]
    return np.concatenate(parts) if parts else np.empty(0)
