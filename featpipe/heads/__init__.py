"""featpipe's own linear heads: multiclass SVM and softmax losses, optimizers, classifiers.

``LinearSVM`` and ``Softmax`` are scikit-learn classifiers trained by SGD on the
losses of :mod:`featpipe.heads.losses`; ``gradient_check`` compares any analytic
gradient with centred finite differences.
"""

from featpipe._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "LinearSVM": "linear",
    "Softmax": "linear",
    "gradient_check": "losses",
})
