"""featpipe's linear classifiers: the multiclass SVM and softmax heads of the lecture.

Both heads are scikit-learn classifiers trained by :mod:`featpipe.heads.optim`
on the losses of :mod:`featpipe.heads.losses`. Inside, the weights are one
array ``W`` of shape (D + 1, C): rows ``0 .. D-1`` are the weights of the
scores ``X @ W + b``, the last row is the bias ``b``. The bias is never
regularized. Outside, they expose scikit-learn's ``coef_`` (C, D) and
``intercept_`` (C,).

Float32 features stay float32 through training (W, gradients and scores are
float32); anything else is trained in float64.

The training they share, over an array or a block source read shard by
shard, is :class:`featpipe.heads.linear_head.LinearHead`.
"""

import numpy as np

from featpipe.errors import ParameterError
from featpipe.heads.linear_head import LinearHead
from featpipe.heads.losses import MULTI_CLASS, softmax_loss, softmax_probabilities, svm_loss

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


class LinearSVM(LinearHead):
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


class Softmax(LinearHead):
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
