"""Raw pixels as features: the baseline every comparison starts from."""

import numpy as np
from skimage.transform import resize

from featpipe.errors import ParameterError
from featpipe.features.base import ImageFeatureExtractor, is_whole_number


class RawPixels(ImageFeatureExtractor):
    """Flattened pixel values, optionally after resizing every image.

    Parameters
    ----------
    image_size : int, (int, int) or None, default=None
        Resize every image to (rows, cols) first (an int means square),
        with :func:`skimage.transform.resize`: bilinear, with Gaussian
        anti-aliasing when shrinking. ``None`` keeps the images as they are.

    Notes
    -----
    Features are float32 on the 0-255 scale, in (row, col, channel) order:
    row ``i`` equals ``image.reshape(-1)``. Scaling is left to the
    normalize stage of the pipeline.

    Examples
    --------
    >>> import numpy as np
    >>> from featpipe.features.raw import RawPixels
    >>> images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    >>> RawPixels().fit_transform(images).shape
    (2, 3072)
    >>> RawPixels(image_size=16).fit_transform(images).shape
    (2, 768)
    """

    def __init__(self, image_size=None):
        self.image_size = image_size

    def _output_size(self, image_shape):
        """(rows, cols) of the images whose pixels become the features."""
        if self.image_size is None:
            return tuple(image_shape)
        size = (self.image_size, self.image_size) if np.isscalar(self.image_size) else tuple(self.image_size)
        if len(size) != 2 or not all(
            is_whole_number(side) and side >= 1 for side in size
        ):
            raise ParameterError(
                f"image_size must be None, a positive int or a (rows, cols) pair; got {self.image_size!r}"
            )
        return size

    def n_features_out(self, image_shape):
        """Pixels times three channels of the (resized) images."""
        rows, cols = self._output_size(image_shape)
        return rows * cols * 3

    def _transform_images(self, images):
        size = self._output_size(images.shape[1:3])
        if size != tuple(images.shape[1:3]):
            images = resize(
                images,
                (len(images),) + size + (3,),
                order=1,
                preserve_range=True,
                anti_aliasing=size[0] < images.shape[1] or size[1] < images.shape[2],
            )
        return images.reshape(len(images), -1).astype(np.float32)
