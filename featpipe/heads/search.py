"""Hyper-parameter search for the linear heads: learning rate x regularization on a validation split.

As in the lecture: train one head per (learning rate, reg) pair on the
training split, score it on the validation split, keep the best pair. The
pairs come from a grid, or, with ``n_samples``, from independent log-uniform
draws over the same ranges (Bergstra & Bengio, "Random search for
hyper-parameter optimization", JMLR 2012). Every tried pair is returned with
its validation accuracy, for ``metrics.json`` and the report's heat map.
"""

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_array

from featpipe.errors import ParameterError
from featpipe.heads.blocks import is_block_source
from featpipe.heads.starting_point import largest_eigenvalue, mean_feature_norm

_LEARNING_RATE_FACTORS = (0.3, 1.0, 3.0)
_REG_FACTORS = (1e-5, 1e-4, 1e-3, 1e-2)
_SCALE_SAMPLE = 2000


def default_grid(X_train, step=1.0):
    """The default learning rates and regularization strengths for ``X_train``.

    Both are scaled to the features so that one grid fits standardized and
    unscaled data alike: learning rates are ``step * (0.3, 1, 3) / lambda_max``
    with lambda_max the largest eigenvalue of the rows' second moment (the
    heads' ``learning_rate="auto"`` is ``step / lambda_max``, step 1 for
    Softmax, 0.1 for LinearSVM, 0.03 for the squared hinge), regularization strengths
    ``(1e-5, 1e-4, 1e-3, 1e-2) * mean(x^2)`` (for standardized features,
    where mean(x^2) = 1, exactly those values).

    Returns
    -------
    learning_rates, regs : list of float
    """
    if is_block_source(X_train):
        rows = X_train.take(np.arange(min(_SCALE_SAMPLE, X_train.shape[0])))
    else:
        rows = check_array(X_train, dtype=[np.float32, np.float64])[: _SCALE_SAMPLE]
    mean_sq_norm = mean_feature_norm(rows)
    largest = largest_eigenvalue(rows)
    learning_rates = [step * factor / largest for factor in _LEARNING_RATE_FACTORS]
    regs = [factor * mean_sq_norm / X_train.shape[1] for factor in _REG_FACTORS]
    return learning_rates, regs


def _positive_list(name, values):
    values = [float(v) for v in np.atleast_1d(values)]
    if not values or not all(np.isfinite(v) and v > 0 for v in values):
        raise ParameterError(f"{name} must be a non-empty list of positive numbers; got {values!r}")
    return values


def search_hyperparameters(head, X_train, y_train, X_val, y_val, learning_rates=None, regs=None,
                           n_samples=None, random_state=None):
    """Choose ``learning_rate`` and ``reg`` of a head by validation accuracy.

    Parameters
    ----------
    head : LinearSVM or Softmax (or any estimator with those two parameters)
        Template; it is cloned for every try and not modified.
    X_train, y_train : array-like
        Training split; ``X_train`` may be a block source
        (:mod:`featpipe.heads.blocks`), read block by block.
    X_val, y_val : array-like
        Validation split that scores each try.
    learning_rates, regs : sequence of float or None
        Values to try; ``None`` uses :func:`default_grid` (centred on the
        head's automatic learning rate).
    n_samples : int or None, default=None
        ``None`` tries the full grid ``learning_rates x regs``. An integer
        draws that many pairs instead, each coordinate log-uniform between
        the smallest and largest value of its list.
    random_state : int, Generator or None
        Draws the random pairs.

    Returns
    -------
    best_params : dict
        ``{"learning_rate": ..., "reg": ...}`` of the try with the highest
        validation accuracy (the first one on ties); pass it to
        ``head.set_params(**best_params)`` and refit.
    records : list of dict
        One ``{"learning_rate", "reg", "val_accuracy"}`` per try, in the
        order tried.

    Examples
    --------
    >>> import numpy as np
    >>> from featpipe.heads import Softmax
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 4)); y = (X[:, 0] + X[:, 1] > 0).astype(int)
    >>> best, records = search_hyperparameters(Softmax(random_state=0), X[:200], y[:200],
    ...                                        X[200:], y[200:], regs=[1e-4, 1e-1])
    >>> len(records), sorted(best)
    (6, ['learning_rate', 'reg'])
    """
    auto_step = head._auto_step() if hasattr(head, "_auto_step") else 1.0
    default_rates, default_regs = default_grid(X_train, step=auto_step)
    learning_rates = _positive_list("learning_rates", default_rates if learning_rates is None else learning_rates)
    regs = _positive_list("regs", default_regs if regs is None else regs)
    if n_samples is None:
        pairs = [(rate, reg) for rate in learning_rates for reg in regs]
    else:
        if not (isinstance(n_samples, (int, np.integer)) and n_samples >= 1):
            raise ParameterError(f"n_samples must be a positive integer or None; got {n_samples!r}")
        rng = np.random.default_rng(random_state)
        log_rates = rng.uniform(np.log(min(learning_rates)), np.log(max(learning_rates)), n_samples)
        log_regs = rng.uniform(np.log(min(regs)), np.log(max(regs)), n_samples)
        pairs = list(zip(np.exp(log_rates).tolist(), np.exp(log_regs).tolist()))
    records = []
    for rate, reg in pairs:
        model = clone(head).set_params(learning_rate=rate, reg=reg).fit(X_train, y_train)
        records.append({"learning_rate": rate, "reg": reg,
                        "val_accuracy": float(model.score(X_val, y_val))})
    best = max(records, key=lambda record: record["val_accuracy"])
    return {"learning_rate": best["learning_rate"], "reg": best["reg"]}, records
