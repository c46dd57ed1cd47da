"""HOG against scikit-image's hog, image by image, the compiled passes against the numpy float path,
and a naive loop for block_norm='none'."""

import functools
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data
from skimage.color import rgb2gray
from skimage.feature import hog

from featpipe.features import hog_cells
from featpipe.features._hog_cells import grey_values
from featpipe.features.hog import HOG
from featpipe.features.hog_cells import (
    _bincount_cell_sums,
    _float_cell_sums,
    _float_pixels,
    _grey_pass_matches_rgb2gray,
    _uint8_cell_sums,
    float_channels,
)
from helpers import CIFAR_FOLDER, read_rgb


@functools.cache
def real_images(n_images=12):
    """CIFAR-10 test images spread over the classes (tests that call this are marked ``cifar``)."""
    paths = sorted((CIFAR_FOLDER / "test").glob("*/00[0-4]*.jpg"))[:: 50 // max(1, n_images // 10)][:n_images]
    return read_rgb(paths)


# Photographs shipped with scikit-image, 32x32 tiles of their 4x-subsampled pixels: real textures and
# flat areas when the CIFAR folder is absent.
PHOTOS = np.stack([photo[::4, ::4][row : row + 32, col : col + 32] for photo in (data.astronaut(), data.chelsea(),
                   data.coffee()) for row, col in ((0, 0), (24, 40), (40, 64))])
RANDOM = np.random.default_rng(0).integers(0, 256, (4, 37, 29, 3), dtype=np.uint8)
SMOOTH = np.clip(
    np.cumsum(np.random.default_rng(1).integers(-3, 4, (3, 24, 40, 3)), axis=2) + 128, 0, 255
).astype(np.uint8)


def _reference(images, channel, **params):
    if channel == "gray":
        return np.stack([hog(rgb2gray(image), **params) for image in images])
    return np.stack([hog(image, channel_axis=-1, **params) for image in images])


COMBINATIONS = list(
    itertools.product(["L1", "L1-sqrt", "L2", "L2-Hys"], [False, True], [(1, 1), (2, 2), (3, 2)], ["max", "gray"])
)


def _assert_equals_skimage(image_sets, block_norm, transform_sqrt, cells_per_block, channel):
    params = dict(pixels_per_cell=(8, 8), cells_per_block=cells_per_block, block_norm=block_norm,
                  transform_sqrt=transform_sqrt)
    for images in image_sets:
        ours = HOG(channel=channel, **params).fit_transform(images)
        reference = _reference(images, channel, **params)
        assert ours.dtype == np.float32
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("block_norm, transform_sqrt, cells_per_block, channel", COMBINATIONS)
def test_equals_skimage_for_every_combination(block_norm, transform_sqrt, cells_per_block, channel):
    images = (PHOTOS, RANDOM, SMOOTH, PHOTOS[:3, :27, :30])
    _assert_equals_skimage(images, block_norm, transform_sqrt, cells_per_block, channel)


@pytest.mark.cifar
@pytest.mark.parametrize("block_norm, transform_sqrt, cells_per_block, channel", COMBINATIONS)
def test_equals_skimage_on_cifar_images(block_norm, transform_sqrt, cells_per_block, channel):
    real = real_images()
    _assert_equals_skimage((real, real[:3, :27, :30]), block_norm, transform_sqrt, cells_per_block, channel)


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
    images = np.concatenate([RANDOM[:, :32, :29], saturated, PHOTOS[:3, :, :29]])
    n_cells = (images.shape[1] // cell[0], images.shape[2] // cell[1])
    crop = (n_cells[0] * cell[0], n_cells[1] * cell[1])
    compiled = _uint8_cell_sums(images, orientations, cell, n_cells)
    bins, magnitude = _float_pixels(images.astype(np.float64), orientations, crop)
    # Same pixels, same bins and magnitudes, summed in the same order: equal to the last bit.
    np.testing.assert_array_equal(compiled, _bincount_cell_sums(bins, magnitude, orientations, cell, n_cells))


def _ramps(size=(24, 29)):
    """Images whose gradients lie exactly on 0, 45, 90 and 135 degrees: on the bin edges of 2, 4 or 12 bins."""
    rows, cols = np.indices(size)
    ramps = [7 * rows, 5 * cols, 3 * (rows + cols), 4 * (rows - cols) + 120, (rows // 3 + cols // 4) * 20]
    return np.stack([np.repeat(np.clip(ramp, 0, 255)[..., None], 3, axis=-1) for ramp in ramps]).astype(np.uint8)


def _sixty_degrees():
    """Square roots of 12 and 4 across a pixel: a gradient at exactly 60 degrees before rounding."""
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[2, 1], image[1, 2] = 12, 4
    return image[np.newaxis]


def _numpy_float_sums(images, orientations, cell, channel, transform_sqrt):
    n_cells = (images.shape[1] // cell[0], images.shape[2] // cell[1])
    crop = (n_cells[0] * cell[0], n_cells[1] * cell[1])
    bins, magnitude = _float_pixels(float_channels(images, channel, transform_sqrt), orientations, crop)
    return _bincount_cell_sums(bins, magnitude, orientations, cell, n_cells)


@pytest.mark.parametrize(("channel", "transform_sqrt"), [("gray", False), ("gray", True), ("max", True)])
@pytest.mark.parametrize(("orientations", "cell"), [(9, (8, 8)), (9, (5, 3)), (4, (1, 1)), (12, (7, 4)), (2, (6, 6))])
def test_compiled_float_pass_equals_the_numpy_float_path(channel, transform_sqrt, orientations, cell):
    saturated = (RANDOM[:, :24, :29] > 127).astype(np.uint8) * 255
    images = np.concatenate([RANDOM[:, :24, :29], saturated, SMOOTH[:, :, :29], PHOTOS[:, :24, :29], _ramps()])
    n_cells = (images.shape[1] // cell[0], images.shape[2] // cell[1])
    compiled = _float_cell_sums(images, orientations, cell, n_cells, channel, transform_sqrt)
    # Same values, bins and magnitudes (glibc's hypot), summed in the same order: equal to the last bit.
    np.testing.assert_array_equal(compiled, _numpy_float_sums(images, orientations, cell, channel, transform_sqrt))


@pytest.mark.parametrize(
    ("images", "orientations", "channel", "transform_sqrt"),
    [(_ramps(), 4, "gray", False), (_ramps(), 12, "gray", True), (_ramps(), 2, "max", True),
     (_sixty_degrees(), 9, "max", True)],
)
def test_pixels_on_a_bin_edge_are_binned_by_numpy(monkeypatch, images, orientations, channel, transform_sqrt):
    finished = []
    binned_cell_sums = hog_cells.binned_cell_sums

    def finish(*args):
        finished.append(args[0].shape[0])
        return binned_cell_sums(*args)

    monkeypatch.setattr(hog_cells, "binned_cell_sums", finish)
    cell = (2, 2)
    n_cells = (images.shape[1] // cell[0], images.shape[2] // cell[1])
    compiled = _float_cell_sums(images, orientations, cell, n_cells, channel, transform_sqrt)
    assert finished, "no pixel was left to numpy"
    np.testing.assert_array_equal(compiled, _numpy_float_sums(images, orientations, cell, channel, transform_sqrt))
    params = dict(orientations=orientations, pixels_per_cell=cell, cells_per_block=(1, 1), block_norm="L1",
                  transform_sqrt=transform_sqrt)
    np.testing.assert_allclose(HOG(channel=channel, **params).fit_transform(images),
                               _reference(images, channel, **params), rtol=0, atol=1e-5)


def test_channel_choice_on_equal_square_roots_takes_the_first_channel():
    # At pixel (1, 1) the square roots give channel 0 the gradient (4, 3) and
    # channel 1 (3, 4): equal magnitudes, so scikit-image keeps channel 0
    # (53 degrees, bin 2), not channel 1 (37 degrees, bin 1).
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[2, 1, 0], image[0, 1, 0], image[1, 2, 0], image[1, 0, 0] = 100, 36, 49, 16
    image[2, 1, 1], image[0, 1, 1], image[1, 2, 1], image[1, 0, 1] = 49, 16, 100, 36
    batch = image[np.newaxis]
    params = dict(pixels_per_cell=(8, 8), cells_per_block=(1, 1), block_norm="L1", transform_sqrt=True)
    np.testing.assert_allclose(HOG(**params).fit_transform(batch), _reference(batch, "max", **params), atol=1e-6)
    np.testing.assert_array_equal(_float_cell_sums(batch, 9, (8, 8), (1, 1), "max", True),
                                  _numpy_float_sums(batch, 9, (8, 8), "max", True))


def test_compiled_grey_levels_equal_rgb2gray():
    if not _grey_pass_matches_rgb2gray():
        pytest.skip("this machine's rgb2gray rounds differently from OpenBLAS with FMA; the numpy path runs instead")
    levels = np.arange(256, dtype=np.uint8)
    green = np.random.default_rng(7).integers(0, 256, (256, 256), dtype=np.uint8)
    red, blue = np.meshgrid(levels, levels, indexing="ij")
    images = np.stack([red, green, blue], axis=-1).reshape(64, 32, 32, 3)
    compiled = np.empty(images.shape[:3])
    grey_values(images, hog_cells._GREY_WEIGHTS, compiled)
    np.testing.assert_array_equal(compiled, rgb2gray(images))


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
    images = np.concatenate([PHOTOS[:2, :20, :19], RANDOM[:2, :20, :19]])
    ours = HOG(orientations=9, pixels_per_cell=(6, 4), block_norm="none").fit_transform(images)
    reference = np.stack([_naive_cell_histograms(image, 9, (6, 4)) for image in images])
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(HOG(block_norm=None).fit_transform(images[:, :16, :16]),
                                  HOG(block_norm="none").fit_transform(images[:, :16, :16]))


def test_multi_scale_concatenates_each_scale():
    ours = HOG(pixels_per_cell=[(4, 4), 8]).fit_transform(PHOTOS)
    parts = [HOG(pixels_per_cell=(4, 4)).fit_transform(PHOTOS), HOG(pixels_per_cell=(8, 8)).fit_transform(PHOTOS)]
    np.testing.assert_array_equal(ours, np.hstack(parts))
    assert HOG(pixels_per_cell=[(4, 4), 8]).n_features_out((32, 32)) == ours.shape[1] == 1764 + 324


@pytest.mark.parametrize("channel", ["max", "gray"])
def test_mirror_invariant_adds_the_hog_of_the_mirror_image(channel):
    params = dict(pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys")
    images = np.concatenate([PHOTOS[:, :29, :29], RANDOM[:, :29, :29]])
    ours = HOG(channel=channel, mirror_invariant=True, **params).fit_transform(images)
    reference = _reference(images, channel, **params) + _reference(images[:, :, ::-1], channel, **params)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-5)
    np.testing.assert_array_equal(HOG(channel=channel, mirror_invariant=True, **params).fit(images).transform(
        images[:, :, ::-1]), ours)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(8, 40), cols=st.integers(8, 40), seed=st.integers(0, 2**16),
       block_norm=st.sampled_from(["L1", "L2-Hys"]), cell=st.integers(3, 8),
       channel=st.sampled_from(["max", "gray"]), transform_sqrt=st.booleans())
def test_random_sizes_match_skimage(rows, cols, seed, block_norm, cell, channel, transform_sqrt):
    images = np.random.default_rng(seed).integers(0, 256, (2, rows, cols, 3), dtype=np.uint8)
    params = dict(pixels_per_cell=(cell, cell), cells_per_block=(1, 1), block_norm=block_norm,
                  transform_sqrt=transform_sqrt)
    extractor = HOG(channel=channel, **params).fit(images)
    ours = extractor.transform(images)
    assert ours.shape[1] == extractor.n_features_out_
    np.testing.assert_allclose(ours, _reference(images, channel, **params), rtol=0, atol=1e-5)


@pytest.mark.parametrize(("channel", "transform_sqrt"), [("max", False), ("max", True), ("gray", False), ("gray", True)])
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 1), (1, 9)])
def test_images_of_one_or_two_pixels_a_side(channel, transform_sqrt, shape):
    # Rows and columns with no interior pixel have no gradient at all.
    images = RANDOM[:, : shape[0], : shape[1]]
    params = dict(pixels_per_cell=(1, 1), cells_per_block=(1, 1), block_norm="L1", transform_sqrt=transform_sqrt)
    np.testing.assert_allclose(HOG(channel=channel, **params).fit_transform(images),
                               _reference(images, channel, **params), rtol=0, atol=1e-5)


def test_grey_float_and_single_image_inputs():
    grey = PHOTOS[:3, ..., 0]
    np.testing.assert_allclose(HOG().fit_transform(grey), np.stack([hog(image, cells_per_block=(2, 2)) for image in grey]),
                               atol=1e-5)
    single = HOG().fit_transform(PHOTOS[:1])
    assert single.shape == (1, 324)
    np.testing.assert_array_equal(HOG().fit_transform(PHOTOS[:3] / 255.0), HOG().fit_transform(PHOTOS[:3]))


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
    extractor = HOG().fit(PHOTOS)
    with pytest.raises(ValueError, match="fitted on 32x32"):
        extractor.transform(PHOTOS[:, :24, :24])
