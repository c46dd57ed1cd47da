"""Optimizers for the linear heads: minibatch SGD, gradient descent, L-BFGS, random search.

Each optimizer minimises ``loss(W, X_batch, y_batch) -> (value, dW)`` (a
function of :mod:`featpipe.heads.losses` with its hyper-parameters bound)
starting from ``W``, and returns the trained weights and the loss history:
one value per epoch, the mean of the losses seen during that epoch.

An epoch of SGD visits every example once, in batches of random indices
drawn without replacement. Only one batch of rows is gathered at a time, so
the training matrix is never copied or shuffled as a whole; this matters for
feature matrices of a gigabyte or more.

After every epoch the optimizer calls ``on_epoch(epoch, W)``; when it
returns ``True`` training stops (this is how the heads implement early
stopping and record validation accuracy).
"""

import numpy as np
from scipy.optimize import minimize

from featpipe.errors import ParameterError
from featpipe.heads.blocks import is_block_source, shuffled_batches


def _check_positive(name, value):
    if not np.isfinite(value) or value <= 0:
        raise ParameterError(f"{name} must be a positive number; got {value!r}")


def _batches(X, y, rows, batch_size, rng):
    """Yield (X_batch, y_batch) covering every training row once, in random order.

    A full batch of all of X is X itself (no copy); smaller batches gather
    rows at sorted random indices (sorted for memory locality). A block
    source (:mod:`featpipe.heads.blocks`) is visited block by block in
    random order instead, so only one block is read at a time.
    """
    if batch_size is None or (rows is None and batch_size >= X.shape[0] and not is_block_source(X)):
        yield X, y
        return
    if is_block_source(X):
        if rows is not None:
            X, y = X.select(rows), y[rows]
        yield from shuffled_batches(X, y, batch_size, rng)
        return
    order = rng.permutation(X.shape[0] if rows is None else rows)
    for start in range(0, len(order), batch_size):
        batch = np.sort(order[start:start + batch_size])
        yield X[batch], y[batch]


def minibatch_sgd(loss, W, X, y, *, learning_rate, batch_size=256, n_epochs=20,
                  momentum=0.0, lr_decay=1.0, rng=None, on_epoch=None, rows=None, average=False):
    """Minibatch stochastic gradient descent with optional momentum.

    The update is ``v = momentum * v - lr * dW; W += v`` (momentum 0 is
    plain SGD, ``W -= lr * dW``); after each epoch ``lr *= lr_decay``.

    Parameters
    ----------
    loss : callable
        ``loss(W, X_batch, y_batch) -> (value, dW)``.
    W : ndarray
        Initial weights; updated in place and returned.
    X : ndarray of shape (N, D)
    y : ndarray of shape (N,)
    learning_rate : float
        Step size, > 0.
    batch_size : int or None, default=256
        Examples per step; clipped to N. ``None`` is the full batch: the
        loss gets ``X`` itself (an array or a whole block source) every step.
    n_epochs : int, default=20
        Passes over the data.
    momentum : float in [0, 1), default=0.0
    lr_decay : float in (0, 1], default=1.0
        Factor applied to the learning rate after every epoch.
    rng : numpy.random.Generator or None
        Draws the batch order.
    on_epoch : callable or None
        ``on_epoch(epoch, W) -> bool``; returning True stops training.
    rows : ndarray of int or None
        Train on these rows of ``X`` only (e.g. all but a held-out
        validation part), without copying them out of ``X``.
    average : bool, default=False
        Averaged SGD: from the middle epoch on, keep the running mean of
        the iterates after every step and return it (and show it to
        ``on_epoch``) instead of the last iterate, which removes most of
        the noise of the final steps (Polyak and Juditsky, "Acceleration of
        stochastic approximation by averaging", SIAM J. Control Optim.
        1992).

    Returns
    -------
    W : ndarray
        The last iterate, or the average with ``average=True``.
    loss_history : list of float
        Mean training loss of each epoch (of the iterates, not the average).
    """
    _check_positive("learning_rate", learning_rate)
    if not 0.0 <= momentum < 1.0:
        raise ParameterError(f"momentum must lie in [0, 1); got {momentum!r}")
    if not 0.0 < lr_decay <= 1.0:
        raise ParameterError(f"lr_decay must lie in (0, 1]; got {lr_decay!r}")
    rng = np.random.default_rng(rng)
    n_samples = X.shape[0] if rows is None else len(rows)
    batch_size = None if batch_size is None else int(min(batch_size, n_samples))
    velocity = np.zeros_like(W) if momentum else None
    loss_history = []
    W_average, n_averaged = None, 0
    for epoch in range(n_epochs):
        epoch_loss = 0.0
        if average and W_average is None and epoch >= n_epochs // 2:
            W_average = W.copy()
        for X_batch, y_batch in _batches(X, y, rows, batch_size, rng):
            value, dW = loss(W, X_batch, y_batch)
            epoch_loss += value * len(y_batch)
            if velocity is None:
                dW *= -learning_rate
                W += dW
            else:
                velocity *= momentum
                velocity -= learning_rate * dW
                W += velocity
            if W_average is not None:
                n_averaged += 1
                W_average += (W - W_average) / n_averaged
        loss_history.append(epoch_loss / n_samples)
        learning_rate *= lr_decay
        if on_epoch is not None and on_epoch(epoch, W if W_average is None else W_average):
            break
    return (W if W_average is None else W_average), loss_history


def gradient_descent(loss, W, X, y, *, learning_rate, n_epochs=100, momentum=0.0,
                     lr_decay=1.0, on_epoch=None):
    """Full-batch gradient descent: one step on the whole training set per epoch.

    Parameters
    ----------
    loss, W, X, y, learning_rate, momentum, lr_decay, on_epoch
        As in :func:`minibatch_sgd`.
    n_epochs : int, default=100
        Number of steps.

    Returns
    -------
    W : ndarray
    loss_history : list of float
        Loss at the start of each step.
    """
    return minibatch_sgd(loss, W, X, y, learning_rate=learning_rate, batch_size=None,
                         n_epochs=n_epochs, momentum=momentum, lr_decay=lr_decay,
                         rng=0, on_epoch=on_epoch)


def lbfgs(loss, W, X, y, *, n_epochs=200, memory=20, on_epoch=None):
    """Full-batch L-BFGS (scipy's L-BFGS-B without bounds).

    A quasi-Newton method: it builds a curvature estimate from the last
    ``memory`` gradient differences, so it keeps making progress along the
    flat directions of badly conditioned problems (thousands of correlated
    features) where a first-order step, sized for the steepest direction,
    crawls. Each iteration reads the whole training set once or twice, so it
    suits losses that are smooth: softmax and the squared hinge.

    Parameters
    ----------
    loss, W, X, y, on_epoch
        As in :func:`minibatch_sgd`; ``on_epoch`` is called after every
        iteration.
    n_epochs : int, default=200
        Most iterations.
    memory : int, default=20
        Gradient pairs kept for the curvature estimate.

    Returns
    -------
    W : ndarray
        The last iterate, in the dtype of the initial ``W``.
    loss_history : list of float
        Loss after each iteration.
    """
    shape, dtype = W.shape, W.dtype
    loss_history = []

    def value_and_gradient(w):
        value, dW = loss(w.reshape(shape).astype(dtype), X, y)
        return value, dW.astype(np.float64).ravel()

    def after_iteration(intermediate_result):
        loss_history.append(float(intermediate_result.fun))
        weights = intermediate_result.x.reshape(shape).astype(dtype)
        if on_epoch is not None and on_epoch(len(loss_history) - 1, weights):
            raise StopIteration

    result = minimize(value_and_gradient, W.astype(np.float64).ravel(), jac=True, method="L-BFGS-B",
                      callback=after_iteration, options={"maxiter": n_epochs, "maxcor": memory})
    return result.x.reshape(shape).astype(dtype), loss_history


def random_search(loss, W, X, y, *, n_epochs=100, scale=1e-3, rng=None, on_epoch=None):
    """Random search: draw ``n_epochs`` random weight matrices, keep the best.

    The lecture's first, "really slow" baseline (CS231n, "Optimization"):
    each try is ``W ~ scale * N(0, 1)``, and the one with the lowest loss on
    the whole training set wins.

    Parameters
    ----------
    loss, X, y, on_epoch
        As in :func:`minibatch_sgd`.
    W : ndarray
        Fixes shape and dtype; its values are the first candidate.
    n_epochs : int, default=100
        Number of random candidates.
    scale : float, default=1e-3
        Standard deviation of the candidates' entries.
    rng : numpy.random.Generator or None

    Returns
    -------
    W : ndarray
        The best candidate.
    loss_history : list of float
        Best loss so far after each try.
    """
    _check_positive("scale", scale)
    rng = np.random.default_rng(rng)
    best_W = W.copy()
    best_loss = loss(best_W, X, y)[0]
    loss_history = []
    for epoch in range(n_epochs):
        candidate = (scale * rng.standard_normal(W.shape)).astype(W.dtype)
        value = loss(candidate, X, y)[0]
        if value < best_loss:
            best_W, best_loss = candidate, value
        loss_history.append(best_loss)
        if on_epoch is not None and on_epoch(epoch, best_W):
            break
    return best_W, loss_history
