"""featpipe: image features and linear classifiers, fast.

Turns image batches into features (raw pixels, colour histograms, HOG,
k-means visual words) and features into trained linear classifiers (SVM and
softmax heads), through staged, cached pipelines driven by the ``featpipe``
command.
"""

__version__ = "0.1.0"
