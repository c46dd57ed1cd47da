"""Mirrored training rows as a column permutation, never materialized.

When a feature extractor maps a left-right mirrored image to a fixed
permutation ``P`` of the image's own features (the flip-closed patch
dictionary of :class:`featpipe.features.patches.SoftThresholdPatches`),
the training matrix of the images and their mirrors is ``[X; X[:, P]]``.
:class:`MirroredRows` is that matrix as a block source holding only ``X``
and ``P``, and the heads use the permutation directly instead of reading
permuted rows:

- the data loss of the mirrored rows is the loss of ``X`` under the
  permuted weights: ``X[:, P] @ W = X @ W[P^-1]``, and its gradient comes
  back through the same permutation (:meth:`MirroredRows.map_reduce_loss`);
- the Gram matrix of the mirrored rows is the original rows' with rows and
  columns permuted, ``P^T (X^T X) P`` (:func:`add_mirrored_gram`), so the
  least-squares start reads N rows, not 2N.

Half the memory of the materialized rows, and half the Gram matrix's
arithmetic; the result equals training on the materialized rows up to
float rounding.

When every mirrored row carries its original's label, the loss is convex
and the penalty is L2, the mirror maps the training problem onto itself, so
its optimum is mirror-symmetric (``W[P] = W``), and so is every iterate of
a full-batch optimizer started from a symmetric point (the least-squares
start). The heads then train on :meth:`MirroredRows.symmetric_rows`: the N
originals in orthonormal coordinates of the symmetric weights, half as wide
(``(x_j + x_P[j]) / sqrt 2`` per column pair). The same iterates, a
quarter of the arithmetic per loss and an eighth of the Gram matrix's.
"""

import numpy as np

from featpipe.heads.blocks import DEFAULT_BLOCK_ROWS, ArrayBlocks, RowBlocks, is_block_source

_PAIR_COLUMNS = 256
"""Column pairs of the Gram matrix symmetrized at a time by :func:`add_mirrored_gram`."""


class MirroredRows(RowBlocks):
    """The rows ``[X; X[:, permutation]]`` of a block source, holding only ``X``.

    Parameters
    ----------
    rows : ndarray of shape (N, D) or RowBlocks
        The original rows.
    permutation : array-like of int, shape (D,)
        Column permutation giving a mirrored row: ``mirror = row[permutation]``.
        It must be its own inverse (mirroring twice is the identity).
    block_rows : int, default=4096
        Rows per block when ``rows`` is an array.

    Examples
    --------
    >>> import numpy as np
    >>> rows = np.arange(6.0).reshape(2, 3)
    >>> mirrored = MirroredRows(rows, [2, 1, 0])
    >>> np.asarray(mirrored).tolist()
    [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [2.0, 1.0, 0.0], [5.0, 4.0, 3.0]]
    """

    can_map_reduce = True
    """The summed loss is computed here, from the original blocks only."""

    def __init__(self, rows, permutation, block_rows=DEFAULT_BLOCK_ROWS):
        self.rows = rows if is_block_source(rows) else ArrayBlocks(rows, block_rows)
        self.permutation = np.asarray(permutation, dtype=np.intp)
        n_features = self.rows.shape[1]
        if self.permutation.shape != (n_features,) or not np.array_equal(
                np.sort(self.permutation), np.arange(n_features)):
            raise ValueError(f"permutation must be a permutation of the {n_features} columns")
        if not np.array_equal(self.permutation[self.permutation], np.arange(n_features)):
            raise ValueError("permutation must be its own inverse (a mirror)")
        self.n_features = n_features
        self.dtype = self.rows.dtype
        bounds = self.rows.block_bounds
        self.block_bounds = np.concatenate([bounds, bounds[1:] + bounds[-1]])

    @property
    def n_original(self):
        """N, the number of original rows (the mirrored ones follow them)."""
        return int(self.rows.shape[0])

    def repeats_labels(self, y):
        """Whether ``y`` gives every mirrored row the label of its original."""
        y = np.asarray(y)
        return len(y) == 2 * self.n_original and np.array_equal(y[:self.n_original], y[self.n_original:])

    def symmetric_rows(self):
        """The originals in the mirror-symmetric coordinates: (N, D') float array, D' = pairs + fixed columns.

        Column ``i`` is ``(x_j + x_P[j]) / sqrt(2)`` for a column pair
        ``j < P[j]`` and ``x_j`` for a column that is its own mirror
        (:func:`symmetric_columns` lists the ``j``). A mirrored row has
        the same coordinates as its original, and the map is orthonormal on
        mirror-symmetric weights, so a linear model with an L2 penalty
        trained on these N rows is the one trained on the 2N rows, reached
        in a space of half the width (:meth:`expand_weights`).
        """
        firsts = symmetric_columns(self.permutation)
        paired = self.permutation[firsts] != firsts
        scale = np.where(paired, np.sqrt(0.5), 1.0).astype(self.dtype)
        rows = np.empty((self.n_original, len(firsts)), dtype=self.dtype)
        for index in range(self.rows.n_blocks):
            start, stop = self.rows.block_bounds[index:index + 2]
            block = self.rows.read_block(index)
            np.add(block[:, firsts], block[:, self.permutation[firsts]] * paired.astype(self.dtype),
                   out=rows[start:stop])
            rows[start:stop] *= scale
        return rows

    def expand_weights(self, weights):
        """Weights (D' + 1, C) of :meth:`symmetric_rows` as the mirror-symmetric weights (D + 1, C) of the rows."""
        firsts = symmetric_columns(self.permutation)
        paired = self.permutation[firsts] != firsts
        scaled = weights[:-1] * np.where(paired, np.sqrt(0.5), 1.0).astype(weights.dtype)[:, np.newaxis]
        expanded = np.empty((self.n_features + 1, weights.shape[1]), dtype=weights.dtype)
        expanded[firsts] = scaled
        expanded[self.permutation[firsts]] = scaled
        expanded[-1] = weights[-1]
        return expanded

    def _read_block(self, index):
        n_original_blocks = self.rows.n_blocks
        if index < n_original_blocks:
            return self.rows.read_block(index)
        return np.take(self.rows.read_block(index - n_original_blocks), self.permutation, axis=1)

    def scaled(self, mean, scale):
        """Standardized rows; still a permutation when ``mean`` and ``scale`` are mirror-symmetric."""
        if np.array_equal(mean, mean[self.permutation]) and np.array_equal(scale, scale[self.permutation]):
            return MirroredRows(self.rows.scaled(mean, scale), self.permutation)
        return super().scaled(mean, scale)

    def summed_loss(self, data_loss, W, y):
        """Sum of every row's data loss, the mirrors by permuted weights (:meth:`map_reduce_loss`)."""
        return self.map_reduce_loss(data_loss, W, y)

    def map_reduce_loss(self, data_loss, W, y, mask=None):
        """Sum over every selected row of its data loss, the mirrored rows by permuted weights.

        Each original block is read once and scored twice: with ``W`` for
        its own labels and with ``W`` permuted for its mirrors' labels.

        Parameters
        ----------
        data_loss : callable
            ``data_loss(W, X_block, y_block) -> (mean loss, dW)``.
        W : ndarray of shape (D + 1, C)
            Weights, the bias as the last row.
        y : ndarray of shape (rows selected,)
            Labels of the selected rows, originals first.
        mask : ndarray of bool of shape (2N,) or None
            Rows taking part (``None``: all).

        Returns
        -------
        total : float
            Sum of the rows' losses (not divided by their number).
        gradient : ndarray of float64, shape of ``W``
        """
        n_rows = self.n_original
        mask = np.ones(2 * n_rows, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        label_of = np.full(2 * n_rows, -1, dtype=np.int64)
        label_of[mask] = y
        weight_rows = np.append(self.permutation, len(self.permutation))  # the bias row stays last
        mirrored_W = W[weight_rows]
        total, gradient, mirrored_gradient = 0.0, np.zeros(W.shape), np.zeros(W.shape)
        for index in range(self.rows.n_blocks):
            start, stop = self.rows.block_bounds[index:index + 2]
            halves = ((mask[start:stop], label_of[start:stop], W, gradient),
                      (mask[n_rows + start:n_rows + stop], label_of[n_rows + start:n_rows + stop], mirrored_W,
                       mirrored_gradient))
            if not any(selected.any() for selected, *_ in halves):
                continue
            block = self.rows.read_block(index)
            for selected, labels, weights, sums in halves:
                count = int(np.count_nonzero(selected))
                if count == 0:
                    continue
                rows = block if count == len(block) else block[selected]
                value, block_gradient = data_loss(weights, rows, labels[selected])
                total += value * count
                sums += count * block_gradient.astype(np.float64)
        return total, gradient + mirrored_gradient[weight_rows]


def symmetric_columns(permutation):
    """The first column of every mirror pair (``j <= P[j]``), in order: one per symmetric coordinate."""
    return np.flatnonzero(np.arange(len(permutation)) <= permutation)


def add_mirrored_gram(gram, permutation):
    """Add ``gram[P][:, P]`` to the symmetric matrix ``gram`` in place, for an involution ``P``.

    The Gram matrix of the mirrored rows is the original rows' with rows and
    columns permuted, so this turns ``X^T X`` into ``[X; X P]^T [X; X P]``.
    Columns are processed in sets closed under ``P``: a column pair
    ``(j, P[j])`` reads only its own two columns, so the update needs no
    second D x D matrix.

    Parameters
    ----------
    gram : ndarray of shape (D, D)
        Full symmetric matrix (both triangles), updated in place.
    permutation : ndarray of int, shape (D,)
        Its own inverse.
    """
    first_of_pair = symmetric_columns(permutation)
    for start in range(0, len(first_of_pair), _PAIR_COLUMNS):
        firsts = first_of_pair[start:start + _PAIR_COLUMNS]
        columns = np.unique(np.concatenate([firsts, permutation[firsts]]))
        mirrored = gram[np.ix_(permutation, permutation[columns])]
        gram[:, columns] += mirrored


def fill_lower_triangle(gram, rows_per_step=1024):
    """Copy the upper triangle of the square ``gram`` into its lower triangle, in place."""
    for start in range(0, len(gram), rows_per_step):
        stop = min(start + rows_per_step, len(gram))
        gram[start:stop, :start] = gram[:start, start:stop].T
        block = gram[start:stop, start:stop]
        block[np.tril_indices(stop - start, -1)] = block.T[np.tril_indices(stop - start, -1)]
