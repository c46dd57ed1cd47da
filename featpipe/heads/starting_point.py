"""Where the linear heads start: the automatic step size and the starting weights.

Both are read off the training data before the first step: the largest
eigenvalue of the features' second moment bounds the curvature of every
loss (so it sizes a safe SGD step), and the ridge fit of one-vs-rest
targets is a starting point close to the squared hinge's optimum.
"""

import numpy as np

from featpipe.heads.blocks import ArrayBlocks, is_block_source
from featpipe.heads.cholesky import cholesky_in_place, cholesky_solve
from featpipe.heads.mirrored_rows import MirroredRows, add_mirrored_gram, fill_lower_triangle

_NORM_SAMPLE = 2000
"""Rows sampled to estimate the feature scale and the largest eigenvalue."""

_GRAM_PANEL = 2048
"""Columns of the Gram matrix that one matrix product fills."""

_SINGLE_PRECISION_WIDTH = 8192
"""Widest Gram matrix kept in float64 for float32 features; wider ones are accumulated and factored in float32.

At 21,800 features float32 halves the matrix (1.9 GB instead of 3.8 GB)
and the factor's time, and the start it gives scored the same validation
accuracy (benchmarks/RESULTS.md, section words-svm-round-3); the optimizer
refines it in any case. Narrower matrices cost little in float64, which
also keeps nearly singular problems (``reg`` near 0) solvable."""

_INIT_SCORE_SCALE = 0.01
"""Typical size of a class score at the random start: small, so every class scores about the same."""


def sample_rows(X, rng):
    """At most 2,000 rows of X (an array or a block source), drawn without replacement by ``rng``, in their order.

    An array and a block source of the same rows give the same sample.
    """
    if X.shape[0] <= _NORM_SAMPLE:
        return np.asarray(X)
    rows = np.sort(rng.choice(X.shape[0], _NORM_SAMPLE, replace=False))
    return X.take(rows) if is_block_source(X) else X[rows]


def mean_feature_norm(rows):
    """Mean of ||x||^2 over the rows, accumulated in float64 (features only, no bias input)."""
    return float(np.einsum("ij,ij->", rows, rows, dtype=np.float64)) / rows.shape[0]


def mean_squared_norm(rows):
    """Mean of ||x||^2 + 1 over the rows; the +1 is the bias input."""
    return mean_feature_norm(rows) + 1.0


def small_random_weights(n_features, n_classes, mean_sq_norm, rng, dtype):
    """The lecture's start: weights (D + 1, C) of tiny Gaussian scores, bias row zero.

    Scaled by ``mean_sq_norm`` (see :func:`mean_squared_norm`) so that the
    scores are about 0.01 whatever the scale of the features.
    """
    W = np.zeros((n_features + 1, n_classes), dtype=dtype)
    W[:-1] = (_INIT_SCORE_SCALE / np.sqrt(mean_sq_norm)) * rng.standard_normal((n_features, n_classes))
    return W


def largest_eigenvalue(rows, n_iter=30):
    """Largest eigenvalue of the second moment [x, 1]^T [x, 1] / n, by power iteration.

    It bounds the curvature of the losses along any direction of W (the
    softmax Hessian is at most half of it per class), so it sets the scale
    of a safe step.
    """
    rows = rows.astype(np.float64)
    vector = np.ones(rows.shape[1] + 1)
    value = 0.0
    for _ in range(n_iter):
        image = rows @ vector[:-1] + vector[-1]
        product = np.append(rows.T @ image, image.sum()) / rows.shape[0]
        value = float(np.linalg.norm(product))
        if value == 0:
            return 1.0
        vector = product / value
    return value


def least_squares_weights(X, y_index, n_classes, reg, target):
    """Ridge fit of the one-vs-rest targets: score ``+target`` for the true class, ``-target`` else.

    Minimises ``mean_i ||x_i W + b - target * t_i||^2 + reg ||W||^2`` (bias
    free) through the normal equations of the centred data; this is the
    squared one-vs-rest hinge with every margin active, so it starts that
    loss close to its optimum.

    The Gram matrix ``X^T X`` and ``X^T T`` are accumulated block of rows by
    block (numpy products fill one D x D upper triangle in place; float64,
    or float32 for float32 features wider than
    :data:`_SINGLE_PRECISION_WIDTH`), and the Cholesky factor overwrites it
    (:mod:`featpipe.heads.cholesky`), so the memory is one D x D matrix
    (330 MB at D = 6,400 in float64) plus one block, whether ``X`` is an
    array or a block source read shard by shard.

    Parameters
    ----------
    X : ndarray of shape (N, D) or RowBlocks
    y_index : ndarray of int, shape (N,)
        Class indices in ``0 .. n_classes - 1``.
    n_classes : int
    reg : float
        Ridge strength (at least 1e-8 is used, so the solve is defined).
    target : float
        Score magnitude aimed at.

    Returns
    -------
    W : ndarray of shape (D + 1, n_classes)
        Weights with the bias as the last row, in the dtype of ``X``.
    """
    source = X if is_block_source(X) else ArrayBlocks(X)
    n_samples, n_features = source.shape
    if isinstance(source, MirroredRows):
        # Sums over the original rows only; the mirrored rows' are their permutations.
        n_original, permutation = source.n_original, source.permutation
        gram, column_sums, (class_sums, mirrored_class_sums) = _row_sums(
            source.rows, [y_index[:n_original], y_index[n_original:]], n_classes, _gram_dtype(source))
        fill_lower_triangle(gram)
        add_mirrored_gram(gram, permutation)
        column_sums += column_sums[permutation]
        class_sums += mirrored_class_sums[permutation]
    else:
        gram, column_sums, (class_sums,) = _row_sums(source, [y_index], n_classes, _gram_dtype(source))
    mean = column_sums / n_samples
    # Centred second moment: gram / n - mean mean^T, a block of columns at a time (no D x D temporary).
    gram *= gram.dtype.type(1.0 / n_samples)
    for start in range(0, n_features, _GRAM_PANEL):
        gram[:, start:start + _GRAM_PANEL] -= np.outer(mean, mean[start:start + _GRAM_PANEL]).astype(gram.dtype)
    gram[np.diag_indices(n_features)] += max(reg, 1e-8)
    # Targets are -target everywhere and +target on the true class.
    class_counts = np.bincount(y_index, minlength=n_classes)
    target_mean = target * (2.0 * class_counts / n_samples - 1.0)
    cross = (2.0 * target / n_samples) * class_sums - target * mean[:, np.newaxis]
    cross -= np.outer(mean, target_mean)
    weights = cholesky_solve(cholesky_in_place(gram), cross)
    return np.vstack([weights, target_mean - mean @ weights]).astype(source.dtype)


def _gram_dtype(source):
    """float32 for float32 features wider than :data:`_SINGLE_PRECISION_WIDTH`, float64 otherwise."""
    wide = source.shape[1] > _SINGLE_PRECISION_WIDTH
    return np.dtype(np.float32) if wide and source.dtype == np.float32 else np.dtype(np.float64)


def _row_sums(source, label_sets, n_classes, gram_dtype):
    """``X^T X`` (upper triangle, in ``gram_dtype``), the column sums, and ``X^T Y`` per label set.

    ``Y`` is the one-hot matrix of each array of ``label_sets`` (class
    indices of the rows of ``source``). Read block by block; each block's
    products are computed in its own dtype (float32 features: single
    precision over at most a block of rows, 4,096 for an array) and added
    to the totals; column and class sums are float64.
    """
    n_features = source.shape[1]
    gram = np.zeros((n_features, n_features), dtype=gram_dtype)
    column_sums = np.zeros(n_features)
    class_sums = np.zeros((n_features, n_classes * len(label_sets)))
    for index in range(source.n_blocks):
        start, stop = source.block_bounds[index:index + 2]
        block = source.read_block(index)
        column_sums += block.sum(axis=0, dtype=np.float64)
        one_hot = np.zeros((stop - start, class_sums.shape[1]), dtype=block.dtype)
        for offset, labels in enumerate(label_sets):
            one_hot[np.arange(stop - start), offset * n_classes + labels[start:stop]] = 1
        class_sums += block.T @ one_hot
        _add_to_gram(gram, block)
    return gram, column_sums, np.hsplit(class_sums, len(label_sets))


def _add_to_gram(gram, rows):
    """Add ``rows^T rows`` to the upper triangle of ``gram`` in place.

    One matrix product per panel of :data:`_GRAM_PANEL` columns fills the
    panel's rows down to its diagonal block (the entries below the diagonal
    inside that block are written too and never read). numpy's BLAS does
    the products: scipy's crashes on large matrices (see
    :mod:`featpipe.heads.cholesky`).
    """
    n_features = rows.shape[1]
    for start in range(0, n_features, _GRAM_PANEL):
        stop = min(n_features, start + _GRAM_PANEL)
        gram[:stop, start:stop] += rows[:, :stop].T @ rows[:, start:stop]
