"""The training and prediction the SVM and softmax heads share: validation, starts, optimizers, scores.

:class:`LinearHead` turns ``fit(X, y)`` into an optimizer run on the loss a
subclass names (:mod:`featpipe.heads.linear`), over an (N, D) array or a
block source (:mod:`featpipe.heads.blocks`, e.g. a feature store read shard
by shard): full-batch losses become sums over blocks, SGD epochs visit the
blocks in a seeded order, and the least-squares start accumulates its Gram
matrix block by block, so the matrix is never held whole. Inside, the
weights are one array ``W`` of shape (D + 1, C) whose last row is the bias.
"""

from functools import partial

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, check_X_y, column_or_1d, validate_data

from featpipe.errors import ParameterError
from featpipe.heads.blocks import ArrayBlocks, full_batch_loss, is_block_source, predict_by_blocks
from featpipe.heads.losses import PENALTIES, accuracy, penalty_value_and_grad
from featpipe.heads.mirrored_rows import MirroredRows
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


class LinearHead(ClassifierMixin, BaseEstimator):
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
        if is_block_source(X):
            if X.dtype not in (np.float32, np.float64):
                raise ValueError(f"a block source must hold float32 or float64 rows; got {X.dtype}")
            y = column_or_1d(y)
            check_consistent_length(np.empty((X.shape[0], 0)), y)
            self.n_features_in_ = X.shape[1]
        else:
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
        X : array-like of shape (N, D) or RowBlocks
            Features; float32 stays float32, anything else becomes float64.
            A block source (:mod:`featpipe.heads.blocks`) is read one block
            of rows at a time and never loaded whole.
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
            X_val, y_val = (X.take(held) if is_block_source(X) else X[held]), y_index[held]
        sample = sample_rows(X, rng)
        mean_sq_norm = mean_squared_norm(sample)
        n_classes = len(self.classes_)
        expand = None
        if self._trains_mirror_symmetric(X, y_index, train_rows):
            # The same iterates in the mirror-symmetric coordinates: N rows, half the width.
            expand = X.expand_weights
            X, y_index = X.symmetric_rows(), y_index[:X.n_original]
        if self.init == "least_squares":
            source, labels = _training_rows(X, y_index, train_rows)
            W = least_squares_weights(source, labels, n_classes, self.reg, self._target_score())
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
            if expand is not None:
                W = expand(W)
            val_accuracy = accuracy(W, X_val, y_val)
            self.val_accuracy_history_.append(val_accuracy)
            if val_accuracy > best["accuracy"]:
                best.update(accuracy=val_accuracy, W=W.copy(), epochs_since=0)
            else:
                best["epochs_since"] += 1
            return bool(self.early_stopping) and best["epochs_since"] >= self.n_iter_no_change

        if self.optimizer == "sgd":
            W, history = minibatch_sgd(
                self._loss, W, X, y_index, learning_rate=learning_rate, batch_size=self.batch_size,
                n_epochs=self.n_epochs, momentum=self.momentum, lr_decay=self.lr_decay,
                rng=rng, on_epoch=on_epoch, rows=train_rows, average=self.average)
        else:
            X, y_index = _training_rows(X, y_index, train_rows)
            W, history = self._fit_full_batch(W, X, y_index, learning_rate, mean_sq_norm, rng, on_epoch)
        if expand is not None:
            W = expand(W)
        if self.early_stopping and best["W"] is not None:
            W = best["W"]
        self.loss_history_ = [float(value) for value in history]
        self.n_iter_ = len(history)
        self.coef_ = np.ascontiguousarray(W[:-1].T)
        self.intercept_ = W[-1].copy()
        return self

    def _trains_mirror_symmetric(self, X, y_index, train_rows):
        """Whether training on ``X`` may use its mirror-symmetric coordinates (see :mod:`featpipe.heads.mirrored_rows`).

        Exact when the rows are :class:`MirroredRows` whose mirrors repeat
        their labels, no row is held out, the penalty is L2, the start is
        symmetric (least squares) and the optimizer is full-batch.
        """
        return (isinstance(X, MirroredRows) and train_rows is None and self.penalty == "l2"
                and self.init == "least_squares" and self.optimizer in ("lbfgs", "gd")
                and X.repeats_labels(y_index))

    def _fit_full_batch(self, W, X, y_index, learning_rate, mean_sq_norm, rng, on_epoch):
        """Full-batch training ("gd", "lbfgs" or "random"); held-out rows were already removed.

        An array is trained as blocks of rows too (:class:`ArrayBlocks`, views):
        one loss engine, whether the rows are in memory or in a store.
        """
        if not is_block_source(X):
            X = ArrayBlocks(X)
        loss = full_batch_loss(partial(self._loss, reg=0.0), self._penalty)
        if self.optimizer == "lbfgs":
            return lbfgs(loss, W, X, y_index, n_epochs=self.n_epochs, on_epoch=on_epoch)
        if self.optimizer == "gd":
            return gradient_descent(
                loss, W, X, y_index, learning_rate=learning_rate, n_epochs=self.n_epochs,
                momentum=self.momentum, lr_decay=self.lr_decay, on_epoch=on_epoch)
        return random_search(
            loss, W, X, y_index, n_epochs=self.n_epochs,
            scale=1.0 / np.sqrt(mean_sq_norm), rng=rng, on_epoch=on_epoch)

    def _penalty(self, W):
        """``reg * R(W)`` and its gradient, zero on the bias row (the last row of ``W``)."""
        gradient = np.zeros_like(W)
        if self.reg == 0:
            return 0.0, gradient
        value, gradient[:-1] = penalty_value_and_grad(W[:-1], self.reg, self.penalty, self.l1_ratio)
        return value, gradient

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
        if is_block_source(X):
            if X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                                 f"{self.n_features_in_} features as input")
            return predict_by_blocks(self._scores, X).reshape(-1, len(self.classes_))
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


def _training_rows(X, y_index, rows):
    """Rows ``rows`` of X (all with ``None``) and their labels; a block source stays one."""
    if rows is None:
        return X, y_index
    return (X.select(rows) if is_block_source(X) else X[rows]), y_index[rows]
