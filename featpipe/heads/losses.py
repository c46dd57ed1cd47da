"""Loss functions of the linear heads: multiclass SVM and softmax, with their gradients.

Every loss is a pure function ``loss(W, X, y, ...) -> (value, dW)`` on weights
``W`` of shape (D, C) or (D + 1, C), features ``X`` of shape (N, D) and integer
labels ``y`` in ``0 .. C-1`` of shape (N,). The full loss is the mean data loss
plus the penalty, ``L = 1/N sum_i L_i + reg * R(W)``, as in the lecture notes
of CS231n ("Linear classification").

The bias
--------
When ``W`` has one row more than ``X`` has columns, that last row is the bias
``b`` and the scores are ``X @ W[:-1] + W[-1]``. This is the lecture's "bias
trick" (a column of ones appended to ``X``) without building the column: ``X``
is never copied. The bias row is **never regularized**; its gradient is the
last row of ``dW``. With ``W`` of shape (D, C) there is no bias, and if ``X``
already carries a column of ones, that row of ``W`` is regularized like any
other, exactly as in the lecture.

All arithmetic keeps the dtype of ``W`` and ``X`` (float32 stays float32);
the returned loss is a Python float accumulated in float64.
"""

import numpy as np

PENALTIES = ("l2", "l1", "elasticnet")
"""Names accepted by the ``penalty`` argument."""

MULTI_CLASS = ("weston_watkins", "ovr")
"""Names accepted by the ``multi_class`` argument of :func:`svm_loss`."""


def _scores(W, X):
    """Class scores (N, C) and whether the last row of W is a bias."""
    n_features = X.shape[1]
    if W.ndim != 2 or W.shape[0] not in (n_features, n_features + 1):
        raise ValueError(
            f"W must have shape (D, C) or (D + 1, C) with D = X.shape[1] = {n_features}; "
            f"got W of shape {W.shape}"
        )
    if W.shape[0] == n_features:
        return X @ W, False
    scores = X @ W[:n_features]
    scores += W[n_features]
    return scores, True


def accuracy(W, X, y):
    """Fraction of the rows of ``X`` whose highest class score under ``W`` is their label in ``y``."""
    return float(np.mean(np.argmax(_scores(W, X)[0], axis=1) == y))


def _backward(W, X, dscores, has_bias):
    """dW from the gradient of the data loss with respect to the scores."""
    n_features = X.shape[1]
    dW = np.empty_like(W, dtype=np.result_type(W, X))
    np.matmul(X.T, dscores, out=dW[:n_features])
    if has_bias:
        dW[n_features] = dscores.sum(axis=0)
    return dW


def penalty_value_and_grad(W, reg, penalty="l2", l1_ratio=0.5):
    """Regularization ``reg * R(W)`` and its gradient.

    Parameters
    ----------
    W : ndarray of shape (D, C)
        Weights to regularize (without the bias row).
    reg : float
        Regularization strength lambda, >= 0.
    penalty : {"l2", "l1", "elasticnet"}, default="l2"
        ``"l2"``: R = sum W^2; ``"l1"``: R = sum |W|; ``"elasticnet"``:
        R = l1_ratio * sum |W| + (1 - l1_ratio) * sum W^2.
    l1_ratio : float in [0, 1], default=0.5
        Mixing parameter of the elastic net.

    Returns
    -------
    value : float
    grad : ndarray, same shape and dtype as ``W``
        The (sub)gradient; ``sign(0) = 0`` for the L1 term.
    """
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}; got {penalty!r}")
    if penalty == "l2":
        l1_weight, l2_weight = 0.0, reg
    elif penalty == "l1":
        l1_weight, l2_weight = reg, 0.0
    else:
        if not 0.0 <= l1_ratio <= 1.0:
            raise ValueError(f"l1_ratio must lie in [0, 1]; got {l1_ratio!r}")
        l1_weight, l2_weight = reg * l1_ratio, reg * (1.0 - l1_ratio)
    value = 0.0
    grad = np.zeros_like(W)
    if l2_weight:
        value += l2_weight * float(np.dot(W.ravel(), W.ravel()))
        grad += (2.0 * l2_weight) * W
    if l1_weight:
        value += l1_weight * float(np.abs(W).sum(dtype=np.float64))
        grad += l1_weight * np.sign(W)
    return value, grad


def _add_penalty(loss, dW, W, n_features, reg, penalty, l1_ratio):
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}; got {penalty!r}")
    if reg == 0:
        return loss
    value, grad = penalty_value_and_grad(W[:n_features], reg, penalty, l1_ratio)
    dW[:n_features] += grad
    return loss + value


def svm_loss(W, X, y, reg=0.0, delta=1.0, squared=False, penalty="l2", l1_ratio=0.5,
             multi_class="weston_watkins"):
    """Multiclass SVM loss and its gradient: Weston-Watkins or one-vs-rest.

    Weston-Watkins (the lecture's): ``L_i = sum_{j != y_i} max(0, s_j -
    s_{y_i} + delta)``. One-vs-rest: ``L_i = sum_j max(0, delta - t_ij s_j)``
    with ``t_ij = +1`` for the true class and -1 for the others, C binary
    SVMs sharing one loss (Coates et al. 2011 train their L2-SVM this way).
    With ``squared=True`` each hinge is squared (the L2-SVM). The data loss
    is the mean over examples; the penalty ``reg * R(W)`` is added.

    Parameters
    ----------
    W : ndarray of shape (D, C) or (D + 1, C)
        Weights; an extra last row is the bias, which is not regularized.
    X : ndarray of shape (N, D)
    y : ndarray of int, shape (N,)
        Class indices in ``0 .. C-1``.
    reg : float, default=0.0
        Regularization strength lambda.
    delta : float, default=1.0
        Margin.
    squared : bool, default=False
        Square each hinge term.
    penalty : {"l2", "l1", "elasticnet"}, default="l2"
        See :func:`penalty_value_and_grad`.
    l1_ratio : float, default=0.5
        Elastic-net mixing parameter.
    multi_class : {"weston_watkins", "ovr"}, default="weston_watkins"
        Margins between classes, or of each class against the rest.

    Returns
    -------
    loss : float
    dW : ndarray, same shape as ``W``

    References
    ----------
    J. Weston and C. Watkins, "Support vector machines for multi-class
    pattern recognition", ESANN 1999.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.zeros((3, 4)); X = np.ones((5, 3)); y = np.array([0, 1, 2, 3, 0])
    >>> svm_loss(W, X, y)[0]  # (C - 1) * delta with W = 0
    3.0
    """
    if multi_class not in MULTI_CLASS:
        raise ValueError(f"multi_class must be one of {MULTI_CLASS}; got {multi_class!r}")
    n_samples, n_features = X.shape
    scores, has_bias = _scores(W, X)
    rows = np.arange(n_samples)
    margins = scores
    if multi_class == "ovr":
        # delta - t * s, with t = -1 everywhere but the true class (t = +1).
        margins[rows, y] *= -1
        margins += delta
    else:
        margins -= scores[rows, y][:, np.newaxis]
        margins += delta
        margins[rows, y] = 0.0
    np.maximum(margins, 0.0, out=margins)
    if squared:
        loss = float(np.dot(margins.ravel(), margins.ravel())) / n_samples
        dscores = margins
        dscores *= 2.0 / n_samples
    else:
        loss = float(margins.sum(dtype=np.float64)) / n_samples
        dscores = (margins > 0).astype(margins.dtype)
        dscores *= 1.0 / n_samples
    if multi_class == "ovr":
        dscores[rows, y] *= -1
    else:
        dscores[rows, y] = -dscores.sum(axis=1)
    dW = _backward(W, X, dscores, has_bias)
    loss = _add_penalty(loss, dW, W, n_features, reg, penalty, l1_ratio)
    return loss, dW


def softmax_probabilities(scores):
    """Row-wise softmax of ``scores`` (N, C), stable for scores of any size."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def softmax_loss(W, X, y, reg=0.0, penalty="l2", l1_ratio=0.5):
    """Softmax (multinomial logistic, cross-entropy) loss and its gradient.

    ``L_i = -log(exp(s_{y_i}) / sum_j exp(s_j))``, computed as
    ``logsumexp(s) - s_{y_i}`` after subtracting the row maximum, so no
    score, however large, overflows and no probability is taken log of 0.
    The data loss is the mean over examples; the penalty ``reg * R(W)`` is
    added.

    Parameters
    ----------
    W : ndarray of shape (D, C) or (D + 1, C)
        Weights; an extra last row is the bias, which is not regularized.
    X : ndarray of shape (N, D)
    y : ndarray of int, shape (N,)
        Class indices in ``0 .. C-1``.
    reg : float, default=0.0
        Regularization strength lambda.
    penalty : {"l2", "l1", "elasticnet"}, default="l2"
        See :func:`penalty_value_and_grad`.
    l1_ratio : float, default=0.5
        Elastic-net mixing parameter.

    Returns
    -------
    loss : float
    dW : ndarray, same shape as ``W``

    Examples
    --------
    >>> import numpy as np
    >>> W = np.zeros((3, 4)); X = np.ones((5, 3)); y = np.array([0, 1, 2, 3, 0])
    >>> round(softmax_loss(W, X, y)[0], 6) == round(float(np.log(4)), 6)
    True
    """
    n_samples, n_features = X.shape
    scores, has_bias = _scores(W, X)
    rows = np.arange(n_samples)
    scores -= scores.max(axis=1, keepdims=True)
    correct = scores[rows, y]
    np.exp(scores, out=scores)
    row_sums = scores.sum(axis=1)
    loss = float((np.log(row_sums) - correct).sum(dtype=np.float64)) / n_samples
    dscores = scores
    dscores /= (row_sums * n_samples)[:, np.newaxis]
    dscores[rows, y] -= 1.0 / n_samples
    dW = _backward(W, X, dscores, has_bias)
    loss = _add_penalty(loss, dW, W, n_features, reg, penalty, l1_ratio)
    return loss, dW


def gradient_check(f, W, h=1e-5, n_checks=None, random_state=None):
    """Compare an analytic gradient with centred finite differences.

    For each checked entry, ``(f(W + h e) - f(W - h e)) / (2 h)`` is compared
    with the analytic ``dW`` returned by ``f(W)``, as the lecture recommends
    before trusting any hand-written gradient. Use float64 weights and data:
    float32 rounding swamps a difference quotient.

    Parameters
    ----------
    f : callable
        ``f(W) -> (loss, dW)``, e.g. ``lambda W: svm_loss(W, X, y, reg=0.1)``.
    W : ndarray
        Point at which to check; not modified.
    h : float, default=1e-5
        Step of the finite difference.
    n_checks : int or None, default=None
        Check this many randomly chosen entries; ``None`` checks all.
    random_state : int, Generator or None, default=None
        Chooses the entries when ``n_checks`` is given.

    Returns
    -------
    max_relative_error : float
        Largest ``|analytic - numeric| / max(|analytic| + |numeric|, 1e-12)``
        over the checked entries; below about 1e-7 the gradient is right
        (near a kink of the hinge or of |w| it can be larger).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 5)); y = rng.integers(0, 3, size=20)
    >>> W = rng.normal(size=(6, 3))
    >>> gradient_check(lambda w: softmax_loss(w, X, y, reg=0.1), W) < 1e-7
    True
    """
    W = np.array(W, dtype=np.float64 if W.dtype.itemsize < 8 else W.dtype)
    analytic = np.asarray(f(W)[1])
    if analytic.shape != W.shape:
        raise ValueError(f"f returned a gradient of shape {analytic.shape} for W of shape {W.shape}")
    if n_checks is None:
        entries = np.arange(W.size)
    else:
        rng = np.random.default_rng(random_state)
        entries = rng.choice(W.size, size=min(n_checks, W.size), replace=False)
    flat = W.reshape(-1)
    worst = 0.0
    for entry in entries:
        original = flat[entry]
        flat[entry] = original + h
        loss_plus = f(W)[0]
        flat[entry] = original - h
        loss_minus = f(W)[0]
        flat[entry] = original
        numeric = (loss_plus - loss_minus) / (2.0 * h)
        exact = analytic.reshape(-1)[entry]
        error = abs(exact - numeric) / max(abs(exact) + abs(numeric), 1e-12)
        worst = max(worst, error)
    return float(worst)
