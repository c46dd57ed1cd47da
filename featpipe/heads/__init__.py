"""featpipe's own linear heads: multiclass SVM and softmax losses, optimizers, classifiers.

``LinearSVM`` and ``Softmax`` are scikit-learn classifiers trained by SGD on the
losses of :mod:`featpipe.heads.losses`; ``gradient_check`` compares any analytic
gradient with centred finite differences.
"""

from featpipe.heads.linear import LinearSVM, Softmax
from featpipe.heads.losses import gradient_check

__all__ = ["LinearSVM", "Softmax", "gradient_check"]
