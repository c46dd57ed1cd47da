"""featpipe's linear classifiers: the multiclass SVM and softmax heads of the lecture.

Both heads are scikit-learn classifiers trained by :mod:`featpipe.heads.optim`
on the losses of :mod:`featpipe.heads.losses`. Inside, the weights are one
array ``W`` of shape (D + 1, C): rows ``0 .. D-1`` are the weights of the
scores ``X @ W + b``, the last row is the bias ``b``. The bias is never
regularized. Outside, they expose scikit-learn's ``coef_`` (C, D) and
``intercept_`` (C,).

Float32 features stay float32 through training (W, gradients and scores are
float32); anything else is trained in float64.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data

from featpipe.errors import ParameterError
from featpipe.heads.losses import MULTI_CLASS, PENALTIES, softmax_loss, softmax_probabilities, svm_loss
from featpipe.heads.optim import gradient_descent, lbfgs, minibatch_sgd, random_search
from featpipe.heads.starting_point import (
    largest_eigenvalue,
    least_squares_weights,
    mean_squared_norm,
    sample_rows,
    small_random_weights,
)

OPTIMIZERS = ("sgd", "gd", "lbfgs", "random")
"""Names accepted by the ``optimizer`` parameter."""

INITS = ("random", "least_squares")
"""Names accepted by the ``init`` parameter."""

_VALIDATION_FRACTION = 0.1


class _LinearHead(ClassifierMixin, BaseEstimator):
    """Shared fitting and prediction of the SVM and softmax heads."""

    def _loss(self, W, X, y):
        raise NotImplementedError

    def _expected_initial_loss(self, n_classes):
        raise NotImplementedError

    def _auto_step(self):
        """Step of ``learning_rate="auto"`` in units of 1 / largest eigenvalue of E[x x^T]."""
        raise NotImplementedError

    def _target_score(self):
        """Score magnitude the least-squares start aims at (+ true class, - others)."""
        return 1.0

    def _check_params(self):
        if not (self.learning_rate == "auto" or (np.isscalar(self.learning_rate)
                                                 and np.isfinite(self.learning_rate)
                                                 and self.learning_rate > 0)):
            raise ParameterError(f"learning_rate must be 'auto' or a positive number; got {self.learning_rate!r}")
        if not (np.isfinite(self.reg) and self.reg >= 0):
            raise ParameterError(f"reg must be a non-negative number; got {self.reg!r}")
        if self.penalty not in PENALTIES:
            raise ParameterError(f"penalty must be one of {PENALTIES}; got {self.penalty!r}")
        if not 0.0 <= self.l1_ratio <= 1.0:
            raise ParameterError(f"l1_ratio must lie in [0, 1]; got {self.l1_ratio!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ParameterError(f"optimizer must be one of {OPTIMIZERS}; got {self.optimizer!r}")
        if self.init not in INITS:
            raise ParameterError(f"init must be one of {INITS}; got {self.init!r}")
        if self.optimizer == "lbfgs" and self.penalty != "l2":
            raise ParameterError(
                f'optimizer="lbfgs" needs a differentiable penalty ("l2"); got penalty={self.penalty!r}'
            )
        for name in ("batch_size", "n_epochs", "n_iter_no_change"):
            value = getattr(self, name)
            if not (isinstance(value, (int, np.integer)) and value >= 1):
                raise ParameterError(f"{name} must be a positive integer; got {value!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ParameterError(f"momentum must lie in [0, 1); got {self.momentum!r}")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ParameterError(f"lr_decay must lie in (0, 1]; got {self.lr_decay!r}")

    def _validate_training_data(self, X, y, X_val, y_val):
        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64], order="C")
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in y; "
                f"got 1 class ({self.classes_[0]!r})"
            )
        if (X_val is None) != (y_val is None):
            raise ValueError("pass both X_val and y_val, or neither")
        if X_val is not None:
            X_val = validate_data(self, X_val, dtype=X.dtype, order="C", reset=False)
            y_val = np.asarray(y_val).ravel()
            if y_val.shape[0] != X_val.shape[0]:
                raise ValueError(
                    f"X_val and y_val disagree: {X_val.shape[0]} rows in X_val, {y_val.shape[0]} labels"
                )
            unknown = np.setdiff1d(y_val, self.classes_)
            if unknown.size:
                raise ValueError(f"y_val holds labels not seen in y: {unknown[:5].tolist()}")
            y_val = np.searchsorted(self.classes_, y_val)
        return X, y_index, X_val, y_val

    def fit(self, X, y, X_val=None, y_val=None):
        """Train the head.

        Parameters
        ----------
        X : array-like of shape (N, D)
            Features; float32 stays float32, anything else becomes float64.
        y : array-like of shape (N,)
            Labels of any type (ints, strings...), at least two classes.
        X_val, y_val : array-like, optional
            Validation data: its accuracy is recorded after every epoch in
            ``val_accuracy_history_`` and drives early stopping.

        Returns
        -------
        self
        """
        self._check_params()
        X, y_index, X_val, y_val = self._validate_training_data(X, y, X_val, y_val)
        rng = np.random.default_rng(self.random_state)
        train_rows = None
        if self.early_stopping and X_val is None:
            order = rng.permutation(X.shape[0])
            n_held = max(1, int(round(_VALIDATION_FRACTION * X.shape[0])))
            held, train_rows = np.sort(order[:n_held]), np.sort(order[n_held:])
            X_val, y_val = X[held], y_index[held]
        sample = sample_rows(X, rng)
        mean_sq_norm = mean_squared_norm(sample)
        n_classes = len(self.classes_)
        if self.init == "least_squares":
            rows = slice(None) if train_rows is None else train_rows
            W = least_squares_weights(X[rows], y_index[rows], n_classes, self.reg, self._target_score())
        else:
            W = small_random_weights(X.shape[1], n_classes, mean_sq_norm, rng, X.dtype)
        learning_rate = None  # L-BFGS and random search take no step size
        if self.optimizer in ("sgd", "gd"):
            learning_rate = (self._auto_step() / largest_eigenvalue(sample) if self.learning_rate == "auto"
                             else float(self.learning_rate))

        self.val_accuracy_history_ = []
        best = {"accuracy": -1.0, "W": None, "epochs_since": 0}

        def on_epoch(epoch, W):
            if X_val is None:
                return False
            accuracy = float(np.mean(np.argmax(X_val @ W[:-1] + W[-1], axis=1) == y_val))
            self.val_accuracy_history_.append(accuracy)
            if accuracy > best["accuracy"]:
                best.update(accuracy=accuracy, W=W.copy(), epochs_since=0)
            else:
                best["epochs_since"] += 1
            return bool(self.early_stopping) and best["epochs_since"] >= self.n_iter_no_change

        if self.optimizer == "sgd":
            W, history = minibatch_sgd(
                self._loss, W, X, y_index, learning_rate=learning_rate, batch_size=self.batch_size,
                n_epochs=self.n_epochs, momentum=self.momentum, lr_decay=self.lr_decay,
                rng=rng, on_epoch=on_epoch, rows=train_rows, average=self.average)
        else:
            if train_rows is not None:
                X, y_index = X[train_rows], y_index[train_rows]
            W, history = self._fit_full_batch(W, X, y_index, learning_rate, mean_sq_norm, rng, on_epoch)
        if self.early_stopping and best["W"] is not None:
            W = best["W"]
        self.loss_history_ = [float(value) for value in history]
        self.n_iter_ = len(history)
        self.coef_ = np.ascontiguousarray(W[:-1].T)
        self.intercept_ = W[-1].copy()
        return self

    def _fit_full_batch(self, W, X, y_index, learning_rate, mean_sq_norm, rng, on_epoch):
        """Full-batch training ("gd", "lbfgs" or "random"); held-out rows were already removed."""
        if self.optimizer == "lbfgs":
            return lbfgs(self._loss, W, X, y_index, n_epochs=self.n_epochs, on_epoch=on_epoch)
        if self.optimizer == "gd":
            return gradient_descent(
                self._loss, W, X, y_index, learning_rate=learning_rate, n_epochs=self.n_epochs,
                momentum=self.momentum, lr_decay=self.lr_decay, on_epoch=on_epoch)
        return random_search(
            self._loss, W, X, y_index, n_epochs=self.n_epochs,
            scale=1.0 / np.sqrt(mean_sq_norm), rng=rng, on_epoch=on_epoch)

    def decision_function(self, X):
        """Class scores ``X @ coef_.T + intercept_``.

        Returns
        -------
        scores : ndarray of shape (N, C), or (N,) with two classes
            With two classes, the score of ``classes_[1]`` minus that of
            ``classes_[0]`` (scikit-learn's convention).
        """
        scores = self._scores(X)
        if scores.shape[1] == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

    def _scores(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return X @ self.coef_.T + self.intercept_

    def predict(self, X):
        """Predicted labels, ``classes_[argmax of the scores]``."""
        scores = self._scores(X)
        return self.classes_[np.argmax(scores, axis=1)]

    def sanity_check(self, X, y):
        """The lecture's first sanity check: the loss at small random weights.

        With weights of tiny scores and no regularization, every class scores
        about the same, so the softmax loss is close to log(C) and the SVM
        loss close to (C - 1) * delta. A value far off means a bug in the
        loss or in the data.

        Returns
        -------
        initial_loss : float
            Loss of this head's data term at its initial weights.
        expected_loss : float
            log(C) (softmax) or (C - 1) * delta (SVM).
        """
        X, y = check_X_y(X, y, dtype=[np.float32, np.float64])
        classes, y_index = np.unique(y, return_inverse=True)
        rng = np.random.default_rng(self.random_state)
        W = small_random_weights(X.shape[1], len(classes), mean_squared_norm(sample_rows(X, rng)), rng, X.dtype)
        initial_loss = self._loss(W, X, y_index, reg=0.0)[0]
        return initial_loss, self._expected_initial_loss(len(classes))


_COMMON_DOC = """
    Parameters
    ----------
    learning_rate : float or "auto", default="auto"
        SGD step size. ``"auto"`` uses ``step / lambda_max`` with step =
        {auto}, where lambda_max is the largest eigenvalue of the second
        moment matrix of the training rows (with the bias input 1),
        estimated by power iteration on up to 2,000 rows; it bounds the
        curvature of the loss, so the step suits any feature scale and
        correlation (on CIFAR-10: about 3e-7 for mean-subtracted raw
        pixels on the 0-255 scale, the lecture's order, 1.2e-3 for
        standardized raw pixels, 0.03 for standardized HOG + colour).
        Not used by ``optimizer="lbfgs"`` or ``"random"``.
    reg : float, default=1e-4
        Regularization strength lambda in ``L = mean_i L_i + lambda R(W)``.
        The bias is never regularized.
    penalty : {"l2", "l1", "elasticnet"}, default="l2"
        R(W) = sum W^2, sum |W|, or ``l1_ratio * sum|W| + (1 - l1_ratio) * sum W^2``.
    l1_ratio : float, default=0.5
        Elastic-net mixing parameter.
{extra}    batch_size : int, default=256
        Examples per SGD step (``optimizer="sgd"``).
    n_epochs : int, default=20
        Passes over the training data (steps for "gd", iterations for
        "lbfgs", tries for "random").
    optimizer : {"sgd", "gd", "lbfgs", "random"}, default="sgd"
        Minibatch SGD, full-batch gradient descent, full-batch L-BFGS
        (for smooth losses: softmax and the squared hinge; penalty "l2"
        only), or random search.
    momentum : float, default=0.9
        Momentum of SGD and GD (0 for plain steps).
    lr_decay : float, default=0.9
        Learning rate factor applied after every epoch.
    early_stopping : bool, default=False
        Stop when validation accuracy has not improved for
        ``n_iter_no_change`` epochs and keep the best epoch's weights. Uses
        ``X_val, y_val`` from ``fit`` if given, else holds out 10% of the
        training rows.
    n_iter_no_change : int, default=5
        Patience of early stopping, in epochs.
    average : bool, default=True
        Averaged SGD: return the mean of the iterates of the second half
        of training instead of the last one (less noise at the end).
    init : {"random", "least_squares"}, default="random"
        Starting weights: tiny random scores (the lecture's), or the ridge
        fit of one-vs-rest targets (+margin for the true class, -margin for
        the others, same ``reg``), which is the optimum of the squared
        one-vs-rest hinge when every margin is active. It costs one D x D
        Gram matrix (10 s for 49,000 x 6,400) and saves most L-BFGS
        iterations on wide, correlated features.
    random_state : int, Generator or None, default=None
        Seeds the initial weights, batch order, held-out split and random search.

    Attributes
    ----------
    coef_ : ndarray of shape (C, D)
    intercept_ : ndarray of shape (C,)
    classes_ : ndarray of shape (C,)
    loss_history_ : list of float
        Mean training loss (data + penalty) of each epoch.
    val_accuracy_history_ : list of float
        Validation accuracy after each epoch; empty without validation data.
    n_iter_ : int
        Epochs actually run.
    n_features_in_ : int
"""


class LinearSVM(_LinearHead):
    __doc__ = """Multiclass linear SVM (hinge or squared hinge) trained by SGD.

    Minimises the mean multiclass SVM loss of
    :func:`featpipe.heads.losses.svm_loss` plus ``reg * R(W)``.
""" + _COMMON_DOC.replace("{auto}", "0.1 (0.03 with ``squared=True``)").replace("{extra}", """    delta : float, default=1.0
        Margin of the hinge.
    squared : bool, default=False
        Squared hinge (L2-SVM, the loss of Coates et al. 2011).
    multi_class : {"weston_watkins", "ovr"}, default="weston_watkins"
        The lecture's multiclass hinge (each wrong class against the true
        one), or one-vs-rest (C binary SVMs trained together; what Coates et
        al. 2011 use on their k-means features).
""") + """
    Examples
    --------
    >>> import numpy as np
    >>> from featpipe.heads import LinearSVM
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5)).astype(np.float32); y = (X[:, 0] > 0).astype(int)
    >>> LinearSVM(random_state=0).fit(X, y).score(X, y) > 0.95
    True
    """

    def __init__(self, learning_rate="auto", reg=1e-4, penalty="l2", l1_ratio=0.5, delta=1.0,
                 squared=False, multi_class="weston_watkins", batch_size=256, n_epochs=20, optimizer="sgd",
                 momentum=0.9, lr_decay=0.9, early_stopping=False, n_iter_no_change=5, average=True,
                 init="random", random_state=None):
        self.learning_rate = learning_rate
        self.reg = reg
        self.penalty = penalty
        self.l1_ratio = l1_ratio
        self.delta = delta
        self.squared = squared
        self.multi_class = multi_class
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.optimizer = optimizer
        self.momentum = momentum
        self.lr_decay = lr_decay
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.average = average
        self.init = init
        self.random_state = random_state

    def _check_params(self):
        super()._check_params()
        if not (np.isfinite(self.delta) and self.delta > 0):
            raise ParameterError(f"delta must be a positive number; got {self.delta!r}")
        if self.multi_class not in MULTI_CLASS:
            raise ParameterError(f"multi_class must be one of {MULTI_CLASS}; got {self.multi_class!r}")

    def _loss(self, W, X, y, reg=None):
        return svm_loss(W, X, y, reg=self.reg if reg is None else reg, delta=self.delta,
                        squared=self.squared, penalty=self.penalty, l1_ratio=self.l1_ratio,
                        multi_class=self.multi_class)

    def _auto_step(self):
        # Hinge subgradients keep their size near the optimum, so the SVM
        # needs smaller steps than softmax; the squared hinge, whose gradient
        # grows with the margin violation, smaller still (tuned on
        # standardized CIFAR-10 HOG + colour features and raw pixels).
        return 0.03 if self.squared else 0.1

    def _target_score(self):
        return self.delta

    def _expected_initial_loss(self, n_classes):
        margin_term = self.delta ** 2 if self.squared else self.delta
        return (n_classes if self.multi_class == "ovr" else n_classes - 1) * margin_term


class Softmax(_LinearHead):
    __doc__ = """Softmax (multinomial logistic regression) classifier trained by SGD.

    Minimises the mean cross-entropy of
    :func:`featpipe.heads.losses.softmax_loss` plus ``reg * R(W)``.
""" + _COMMON_DOC.replace("{auto}", "1").replace("{extra}", "") + """
    Examples
    --------
    >>> import numpy as np
    >>> from featpipe.heads import Softmax
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5)).astype(np.float32); y = (X[:, 0] > 0).astype(int)
    >>> Softmax(random_state=0).fit(X, y).predict_proba(X[:2]).sum(axis=1).round(6).tolist()
    [1.0, 1.0]
    """

    def __init__(self, learning_rate="auto", reg=1e-4, penalty="l2", l1_ratio=0.5, batch_size=256,
                 n_epochs=20, optimizer="sgd", momentum=0.9, lr_decay=0.9, early_stopping=False,
                 n_iter_no_change=5, average=True, init="random", random_state=None):
        self.learning_rate = learning_rate
        self.reg = reg
        self.penalty = penalty
        self.l1_ratio = l1_ratio
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.optimizer = optimizer
        self.momentum = momentum
        self.lr_decay = lr_decay
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.average = average
        self.init = init
        self.random_state = random_state

    def _loss(self, W, X, y, reg=None):
        return softmax_loss(W, X, y, reg=self.reg if reg is None else reg,
                            penalty=self.penalty, l1_ratio=self.l1_ratio)

    def _auto_step(self):
        return 1.0

    def _expected_initial_loss(self, n_classes):
        return float(np.log(n_classes))

    def predict_proba(self, X):
        """Class probabilities, the softmax of the scores; shape (N, C)."""
        return softmax_probabilities(self._scores(X))

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, computed stably."""
        scores = self._scores(X)
        shifted = scores - scores.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
