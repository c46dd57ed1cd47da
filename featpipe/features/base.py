"""The contract every image feature extractor follows.

An extractor is a scikit-learn transformer from a uint8 image batch of shape
(N, H, W, 3) to a float32 feature matrix of shape (N, D). It states D from its
parameters and the image size before it runs (``n_features_out``), so callers
can preallocate the output and plan memory, and it computes a whole batch in
one vectorized call (``_transform_images``); chunking and parallelism are the
caller's business (see :mod:`featpipe.parallel`).
"""

import inspect

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from featpipe.errors import ParameterError


def is_whole_number(value):
    """True for Python and numpy integers, False for bools, floats and everything else."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_images(images, min_size=1):
    """Validate an image batch and bring it to uint8 (N, H, W, 3).

    Parameters
    ----------
    images : array-like
        uint8 or float images. Accepted shapes: (N, H, W, 3) colour,
        (N, H, W, 4) RGBA (alpha dropped), (N, H, W, 1) or (N, H, W) grey
        (stacked to three channels). A single image must be passed as a
        batch of one, ``image[np.newaxis]``. Float images must lie in
        [0, 1] and are scaled to 0-255 and rounded.
    min_size : int, default=1
        Smallest height and width the caller can work with.

    Returns
    -------
    batch : ndarray of uint8, shape (N, H, W, 3)

    Raises
    ------
    ValueError
        For any other shape or dtype, NaN or infinite values, float values
        outside [0, 1], an empty batch, or images smaller than ``min_size``.
    """
    batch = np.asarray(images)
    if batch.ndim == 3:
        batch = batch[..., np.newaxis]
    if batch.ndim != 4 or batch.shape[-1] not in (1, 3, 4):
        raise ValueError(
            "expected an image batch of shape (N, H, W, 3), (N, H, W, 4), "
            f"(N, H, W, 1) or (N, H, W); got shape {batch.shape}"
        )
    if batch.shape[0] == 0:
        raise ValueError("expected at least one image; got an empty batch")
    height, width = batch.shape[1:3]
    if height < min_size or width < min_size:
        raise ValueError(
            f"images of {height}x{width} pixels are too small: this extractor "
            f"needs at least {min_size}x{min_size}"
        )
    if batch.dtype == np.uint8:
        pass
    elif np.issubdtype(batch.dtype, np.floating):
        if not np.all(np.isfinite(batch)):
            raise ValueError("images contain NaN or infinite values")
        if batch.min() < 0 or batch.max() > 1:
            raise ValueError(
                "float images must lie in [0, 1]; got values in "
                f"[{batch.min():g}, {batch.max():g}] (pass uint8 for 0-255 data)"
            )
        batch = np.rint(batch * 255).astype(np.uint8)
    elif batch.dtype == np.bool_:
        batch = batch.astype(np.uint8) * 255
    else:
        raise ValueError(
            f"images must be uint8 (0-255) or float (0-1); got dtype {batch.dtype}"
        )
    if batch.shape[-1] == 4:
        batch = batch[..., :3]
    elif batch.shape[-1] == 1:
        batch = np.repeat(batch, 3, axis=-1)
    return np.ascontiguousarray(batch)


class ImageFeatureExtractor(TransformerMixin, BaseEstimator):
    """Base class: uint8 image batches in, float32 feature rows out.

    Subclasses implement ``n_features_out`` and ``_transform_images``, and
    may override ``_fit_images`` (the default learns nothing) and
    ``min_image_size``. ``fit`` records the image size; ``transform``
    refuses batches of another size, since feature widths depend on it.
    """

    def __setstate__(self, state):
        """Restore a saved extractor; a parameter newer than the saved file takes its default.

        A model file written before a parameter existed (``mirror_invariant``,
        ``n_components``) describes an extractor that behaved as the
        parameter's default does, so the default is what it gets, rather than
        an ``AttributeError`` at its first ``transform``.
        """
        super().__setstate__(state)
        for name, parameter in inspect.signature(type(self).__init__).parameters.items():
            if parameter.default is not inspect.Parameter.empty and name not in self.__dict__:
                setattr(self, name, parameter.default)

    def min_image_size(self):
        """Smallest height and width (pixels) these parameters can handle."""
        return 1

    def n_features_out(self, image_shape):
        """Number of features produced for images of ``image_shape`` (H, W)."""
        raise NotImplementedError

    def _fit_images(self, images, y):
        """Learn from a validated uint8 batch; the default learns nothing."""

    def _transform_images(self, images):
        """Compute float32 (N, D) features of a validated uint8 batch."""
        raise NotImplementedError

    def _with_mirrors_added(self, describe, images):
        """``describe(images)``, plus ``describe`` of their left-right mirrors when ``mirror_invariant`` is set.

        The sum is the same for an image and its mirror, so a linear head on
        it scores both alike: what training on mirrored copies teaches a
        linear model with an L2 penalty (its optimum is mirror-symmetric),
        at one training row per image instead of two.
        """
        features = describe(images)
        if getattr(self, "mirror_invariant", False):
            features += describe(np.ascontiguousarray(images[:, :, ::-1]))
        return features

    def fit(self, X, y=None):
        """Validate the batch, record its image size and learn what is needed.

        Parameters
        ----------
        X : array-like of shape (N, H, W, 3)
            Training images, see :func:`check_images`.
        y : ignored or array-like of shape (N,)
            Labels, unused by unsupervised extractors.

        Returns
        -------
        self : ImageFeatureExtractor
        """
        images = check_images(X, self.min_image_size())
        flag = getattr(self, "mirror_invariant", False)
        if not isinstance(flag, (bool, np.bool_)):
            raise ParameterError(f"mirror_invariant must be True or False; got {flag!r}")
        self._fit_images(images, y)
        self.image_shape_ = tuple(int(side) for side in images.shape[1:3])
        self.n_features_out_ = int(self.n_features_out(self.image_shape_))
        return self

    def transform(self, X):
        """Compute the features of a batch of images.

        Parameters
        ----------
        X : array-like of shape (N, H, W, 3)
            Images of the size seen in ``fit``.

        Returns
        -------
        features : ndarray of float32, shape (N, n_features_out_)
        """
        check_is_fitted(self, "image_shape_")
        images = check_images(X, self.min_image_size())
        if tuple(images.shape[1:3]) != self.image_shape_:
            raise ValueError(
                f"images are {images.shape[1]}x{images.shape[2]} but this "
                f"extractor was fitted on {self.image_shape_[0]}x{self.image_shape_[1]}"
            )
        return self._transform_images(images)

    def get_feature_names_out(self, input_features=None):
        """Names ``<class>0 .. <class>{D-1}`` for the output columns."""
        check_is_fitted(self, "n_features_out_")
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.n_features_out_)], dtype=object)
