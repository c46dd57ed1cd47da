"""Where the linear heads start: the automatic step size and the starting weights.

Both are read off the training data before the first step: the largest
eigenvalue of the features' second moment bounds the curvature of every
loss (so it sizes a safe SGD step), and the ridge fit of one-vs-rest
targets is a starting point close to the squared hinge's optimum.
"""

import numpy as np
from scipy.linalg import solve

_NORM_SAMPLE = 2000
"""Rows sampled to estimate the feature scale and the largest eigenvalue."""

_INIT_SCORE_SCALE = 0.01
"""Typical size of a class score at the random start: small, so every class scores about the same."""


def sample_rows(X, rng):
    """At most 2,000 rows of X, drawn without replacement by ``rng``, in their order."""
    if X.shape[0] <= _NORM_SAMPLE:
        return X
    return X[np.sort(rng.choice(X.shape[0], _NORM_SAMPLE, replace=False))]


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
    loss close to its optimum. Costs one D x D Gram matrix and its solve.
    """
    n_samples, n_features = X.shape
    mean = X.mean(axis=0, dtype=np.float64)
    gram = (X.T @ X).astype(np.float64) / n_samples - np.outer(mean, mean)
    gram[np.diag_indices(n_features)] += max(reg, 1e-8)
    targets = np.full((n_samples, n_classes), -target, dtype=X.dtype)
    targets[np.arange(n_samples), y_index] = target
    target_mean = targets.mean(axis=0, dtype=np.float64)
    cross = (X.T @ targets).astype(np.float64) / n_samples - np.outer(mean, target_mean)
    weights = solve(gram, cross, assume_a="pos")
    return np.vstack([weights, target_mean - mean @ weights]).astype(X.dtype)
