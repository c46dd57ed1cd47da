"""HOG against scikit-image's hog, image by image, and a naive loop for block_norm='none'."""

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage.color import rgb2gray
from skimage.feature import hog

from featpipe.features.hog import HOG, _bincount_cell_sums, _float_pixels, _uint8_cell_sums

CIFAR = Path(__file__).resolve().parents[2] / "shared/datasets/cifar10-jpg"


def _cifar(n_images):
    paths = sorted((CIFAR / "test").glob("*/00[0-4]*.jpg"))[:: 50 // max(1, n_images // 10)][:n_images]
    return np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths])


REAL = _cifar(12)
RANDOM = np.random.default_rng(0).integers(0, 256, (4, 37, 29, 3), dtype=np.uint8)
SMOOTH = np.clip(
    np.cumsum(np.random.default_rng(1).integers(-3, 4, (3, 24, 40, 3)), axis=2) + 128, 0, 255
).astype(np.uint8)


def _reference(images, channel, **params):
    if channel == "gray":
        return np.stack([hog(rgb2gray(image), **params) for image in images])
    return np.stack([hog(image, channel_axis=-1, **params) for image in images])


@pytest.mark.parametrize(
    "block_norm, transform_sqrt, cells_per_block, channel",
    list(itertools.product(["L1", "L1-sqrt", "L2", "L2-Hys"], [False, True], [(1, 1), (2, 2), (3, 2)], ["max", "gray"])),
)
def test_equals_skimage_for_every_combination(block_norm, transform_sqrt, cells_per_block, channel):
    params = dict(pixels_per_cell=(8, 8), cells_per_block=cells_per_block, block_norm=block_norm,
                  transform_sqrt=transform_sqrt)
    for images in (REAL, RANDOM, SMOOTH, REAL[:3, :27, :30]):
        ours = HOG(channel=channel, **params).fit_transform(images)
        reference = _reference(images, channel, **params)
        assert ours.dtype == np.float32
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("orientations, pixels_per_cell", [(7, (4, 6)), (12, (5, 5)), (1, (8, 8)), (18, (6, 4))])
def test_other_orientations_and_cells(orientations, pixels_per_cell):
    for channel, transform_sqrt in [("max", False), ("max", True), ("gray", False)]:
        params = dict(orientations=orientations, pixels_per_cell=pixels_per_cell, cells_per_block=(2, 2),
                      transform_sqrt=transform_sqrt)
        ours = HOG(channel=channel, **params).fit_transform(RANDOM)
        np.testing.assert_allclose(ours, _reference(RANDOM, channel, **params), rtol=0, atol=1e-5)


def test_channel_choice_with_equal_squared_magnitudes():
    # At pixel (1, 1) channel 0 has gradient (-47, -28) and channel 1 has
    # (-52, 17): the same squared norm, but float64 hypot rounds the second
    # one up, so scikit-image picks channel 1 (orientation bin 5, not 2).
    image = np.full((8, 8, 3), 100, dtype=np.uint8)
    image[0, 1, 0], image[1, 0, 0] = 147, 128
    image[0, 1, 1], image[1, 2, 1] = 152, 117
    assert np.hypot(-52.0, 17.0) > np.hypot(-47.0, -28.0)
    batch = image[np.newaxis]
    params = dict(pixels_per_cell=(8, 8), cells_per_block=(1, 1), block_norm="L1")
    np.testing.assert_allclose(HOG(**params).fit_transform(batch), _reference(batch, "max", **params), atol=1e-6)


@pytest.mark.parametrize(("orientations", "cell"), [(9, (8, 8)), (9, (5, 3)), (4, (1, 1)), (12, (7, 4))])
def test_compiled_cell_sums_equal_the_numpy_float_path(orientations, cell):
    # Saturated images reach the largest gradient keys (+-255 in both directions).
    saturated = (RANDOM[:, :32, :29] > 127).astype(np.uint8) * 255
    images = np.concatenate([RANDOM[:, :32, :29], saturated, REAL[:3, :, :29]])
    n_cells = (images.shape[1] // cell[0], images.shape[2] // cell[1])
    crop = (n_cells[0] * cell[0], n_cells[1] * cell[1])
    compiled = _uint8_cell_sums(images, orientations, cell, n_cells)
    bins, magnitude = _float_pixels(images.astype(np.float64), orientations, crop)
    # Same pixels, same bins and magnitudes, summed in the same order: equal to the last bit.
    np.testing.assert_array_equal(compiled, _bincount_cell_sums(bins, magnitude, orientations, cell, n_cells, {}))


def _naive_cell_histograms(image, orientations, cell):
    """Mean magnitude per cell and orientation, one pixel at a time."""
    values = image.astype(np.float64)
    n_rows, n_cols = values.shape[:2]
    histogram = np.zeros((n_rows // cell[0], n_cols // cell[1], orientations))
    for row in range(histogram.shape[0] * cell[0]):
        for col in range(histogram.shape[1] * cell[1]):
            best = None
            for channel in range(values.shape[2]):
                g_row = values[row + 1, col, channel] - values[row - 1, col, channel] if 0 < row < n_rows - 1 else 0.0
                g_col = values[row, col + 1, channel] - values[row, col - 1, channel] if 0 < col < n_cols - 1 else 0.0
                if best is None or np.hypot(g_row, g_col) > np.hypot(*best):
                    best = (g_row, g_col)
            angle = np.rad2deg(np.arctan2(*best)) % 180
            orientation = min(int(angle // (180 / orientations)), orientations - 1)
            histogram[row // cell[0], col // cell[1], orientation] += np.hypot(*best) / (cell[0] * cell[1])
    return histogram.ravel()


def test_no_block_normalization_gives_cell_means():
    images = np.concatenate([REAL[:2, :20, :19], RANDOM[:2, :20, :19]])
    ours = HOG(orientations=9, pixels_per_cell=(6, 4), block_norm="none").fit_transform(images)
    reference = np.stack([_naive_cell_histograms(image, 9, (6, 4)) for image in images])
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(HOG(block_norm=None).fit_transform(images[:, :16, :16]),
                                  HOG(block_norm="none").fit_transform(images[:, :16, :16]))


def test_multi_scale_concatenates_each_scale():
    ours = HOG(pixels_per_cell=[(4, 4), 8]).fit_transform(REAL)
    parts = [HOG(pixels_per_cell=(4, 4)).fit_transform(REAL), HOG(pixels_per_cell=(8, 8)).fit_transform(REAL)]
    np.testing.assert_array_equal(ours, np.hstack(parts))
    assert HOG(pixels_per_cell=[(4, 4), 8]).n_features_out((32, 32)) == ours.shape[1] == 1764 + 324


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(8, 40), cols=st.integers(8, 40), seed=st.integers(0, 2**16),
       block_norm=st.sampled_from(["L1", "L2-Hys"]), cell=st.integers(3, 8))
def test_random_sizes_match_skimage(rows, cols, seed, block_norm, cell):
    images = np.random.default_rng(seed).integers(0, 256, (2, rows, cols, 3), dtype=np.uint8)
    params = dict(pixels_per_cell=(cell, cell), cells_per_block=(1, 1), block_norm=block_norm)
    extractor = HOG(**params).fit(images)
    ours = extractor.transform(images)
    assert ours.shape[1] == extractor.n_features_out_
    np.testing.assert_allclose(ours, _reference(images, "max", **params), rtol=0, atol=1e-5)


def test_grey_float_and_single_image_inputs():
    grey = REAL[:3, ..., 0]
    np.testing.assert_allclose(HOG().fit_transform(grey), np.stack([hog(image, cells_per_block=(2, 2)) for image in grey]),
                               atol=1e-5)
    single = HOG().fit_transform(REAL[:1])
    assert single.shape == (1, 324)
    np.testing.assert_array_equal(HOG().fit_transform(REAL[:3] / 255.0), HOG().fit_transform(REAL[:3]))


@pytest.mark.parametrize(
    "params, images, message",
    [
        ({}, np.zeros((2, 15, 32, 3), np.uint8), "too small"),
        ({"pixels_per_cell": (4, 4), "cells_per_block": (3, 3)}, np.zeros((1, 11, 11, 3), np.uint8), "at least 12x12"),
        ({}, np.full((2, 16, 16, 3), 1.5), r"\[0, 1\]"),
        ({}, np.full((2, 16, 16, 3), np.nan), "NaN"),
        ({"block_norm": "L3"}, np.zeros((1, 16, 16, 3), np.uint8), "block_norm"),
        ({"channel": "red"}, np.zeros((1, 16, 16, 3), np.uint8), "channel"),
        ({"orientations": 0}, np.zeros((1, 16, 16, 3), np.uint8), "orientations"),
        ({"pixels_per_cell": (8, 0)}, np.zeros((1, 16, 16, 3), np.uint8), "positive int"),
        ({"pixels_per_cell": "big"}, np.zeros((1, 16, 16, 3), np.uint8), "pixels_per_cell"),
    ],
)
def test_bad_input_raises_clear_value_error(params, images, message):
    with pytest.raises(ValueError, match=message):
        HOG(**params).fit(images)


def test_transform_refuses_other_image_size():
    extractor = HOG().fit(REAL)
    with pytest.raises(ValueError, match="fitted on 32x32"):
        extractor.transform(REAL[:, :24, :24])
