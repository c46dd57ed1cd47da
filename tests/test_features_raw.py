"""RawPixels against numpy's reshape and scikit-image's resize, image by image."""

import numpy as np
import pytest
from skimage.transform import resize

from featpipe.features.raw import RawPixels

IMAGES = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)


def test_raw_pixels_are_the_flattened_image():
    features = RawPixels().fit_transform(IMAGES[:5])
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features, IMAGES[:5].reshape(5, -1).astype(np.float32))
    assert RawPixels().fit(IMAGES[:2]).n_features_out((32, 32)) == 3072


@pytest.mark.parametrize("image_size", [16, (8, 12), (40, 40)])
def test_raw_pixels_resize_equals_skimage_per_image(image_size):
    size = (image_size, image_size) if np.isscalar(image_size) else image_size
    features = RawPixels(image_size=image_size).fit_transform(IMAGES[:4])
    reference = np.stack([
        resize(image, size + (3,), order=1, preserve_range=True, anti_aliasing=size[0] < 32 or size[1] < 32)
        for image in IMAGES[:4]
    ]).reshape(4, -1)
    np.testing.assert_allclose(features, reference, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("image_size", [0, (8,), "big", (8, -1)])
def test_raw_pixels_bad_size(image_size):
    with pytest.raises(ValueError, match="image_size"):
        RawPixels(image_size=image_size).fit(IMAGES[:2])
