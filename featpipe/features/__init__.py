"""Image feature extractors: raw pixels, colour histograms, HOG and k-means visual words.

Every extractor is a scikit-learn transformer subclassing
:class:`featpipe.features.base.ImageFeatureExtractor`: uint8 images (N, H, W, 3) in, float32
features (N, D) out, with the width known before it runs (``n_features_out``). The pictures
of what they see are in :mod:`featpipe.features.plotting`.
"""

from featpipe._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "HOG": "hog",
    "ColorHistogram": "color",
    "ImageFeatureExtractor": "base",
    "KMeansWords": "words",
    "RawPixels": "raw",
    "check_images": "base",
})
