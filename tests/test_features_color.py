"""ColorHistogram against the per-image rgb2hsv + numpy.histogram recipe."""

import functools

import numpy as np
import pytest
from skimage.color import rgb2hsv

from featpipe.features.color import ColorHistogram
from helpers import CIFAR_FOLDER, read_rgb


@functools.cache
def real_images():
    """200 CIFAR-10 training images spread over the classes (tests that call this are marked ``cifar``)."""
    return read_rgb(sorted((CIFAR_FOLDER / "train").glob("*/00[0-1]*.jpg"))[::10][:200])


RANDOM = np.random.default_rng(0).integers(0, 256, (6, 21, 17, 3), dtype=np.uint8)


def _edge_pixels(rng, n_pixels):
    """Pixels whose exact hue lies on a bin edge of 10 bins (0.1, 0.5, 0.7)."""
    red = rng.integers(60, 256, n_pixels)
    step = rng.integers(1, 12, n_pixels)
    hue_tenth = np.stack([red, red - 2 * step, red - 5 * step], axis=-1)       # hue 0.1
    cyan = np.stack([red - 5 * step, red, red], axis=-1)                          # hue 0.5
    hue_seven_tenths = np.stack([red - 4 * step, red - 5 * step, red], axis=-1)   # hue 0.7 (blue max)
    return np.concatenate([hue_tenth, cyan, hue_seven_tenths]).clip(0, 255).astype(np.uint8)


EDGES = _edge_pixels(np.random.default_rng(2), 16 * 16 * 4).reshape(12, 16, 16, 3)


def _recipe(image, bins=10):
    """The course recipe, one image at a time."""
    counts, edges = np.histogram(rgb2hsv(image)[..., 0] * 255, bins=bins, range=(0, 255), density=True)
    return counts * np.diff(edges)


def _counts(image, bins=10):
    return np.histogram(rgb2hsv(image)[..., 0] * 255, bins=bins, range=(0, 255))[0]


CIFAR_OR_SYNTHETIC = [pytest.param("cifar", marks=pytest.mark.cifar), "random"]


def _images(name):
    return real_images() if name == "cifar" else {"random": RANDOM, "hue-on-bin-edges": EDGES}[name]


def _sixteen_square(name, count, edges):
    """``count`` 16x16 crops of real images (or random ones), then the bin-edge images ``edges``."""
    if name == "cifar":
        images = real_images()[:count, :16, :16]
    else:
        images = np.random.default_rng(3).integers(0, 256, (count, 16, 16, 3), dtype=np.uint8)
    return np.concatenate([images, edges])


@pytest.mark.parametrize("name", [pytest.param("cifar", marks=pytest.mark.cifar), "random", "hue-on-bin-edges"])
def test_default_equals_course_recipe_bin_for_bin(name):
    images = _images(name)
    features = ColorHistogram().fit_transform(images)
    assert features.dtype == np.float32 and features.shape == (len(images), 10)
    np.testing.assert_allclose(features, np.stack([_recipe(image) for image in images]), rtol=0, atol=1e-7)
    n_pixels = images.shape[1] * images.shape[2]
    np.testing.assert_array_equal(np.rint(features * n_pixels).astype(int), np.stack([_counts(image) for image in images]))


def test_edge_pixels_really_sit_on_edges():
    hue = rgb2hsv(EDGES)[..., 0] * 255
    assert np.isin(np.round(hue, 9), [25.5, 127.5, 178.5]).all()


@pytest.mark.parametrize("name", CIFAR_OR_SYNTHETIC)
@pytest.mark.parametrize("bins", [7, 17, 64])
def test_other_hue_bin_counts(bins, name):
    images = _sixteen_square(name, 40, EDGES)
    n_pixels = 16 * 16
    features = ColorHistogram(bins=bins).fit_transform(images)
    reference = np.stack([_counts(image, bins) for image in images])
    np.testing.assert_array_equal(np.rint(features * n_pixels).astype(int), reference)


def _naive(image, channels, bins, joint, grid):
    hsv = rgb2hsv(image) * 255
    n_rows, n_cols = image.shape[:2]
    row_starts = [int(np.ceil(i * n_rows / grid[0])) for i in range(grid[0] + 1)]
    col_starts = [int(np.ceil(j * n_cols / grid[1])) for j in range(grid[1] + 1)]
    columns = ["hsv".index(channel) for channel in channels]
    parts = []
    for i in range(grid[0]):
        for j in range(grid[1]):
            values = hsv[row_starts[i]:row_starts[i + 1], col_starts[j]:col_starts[j + 1]].reshape(-1, 3)
            if joint:
                counts = np.histogramdd(values[:, columns], bins=bins, range=[(0, 255)] * len(columns))[0].ravel()
                parts.append(counts / counts.sum())
            for column, count in ([] if joint else zip(columns, bins)):
                counts = np.histogram(values[:, column], bins=count, range=(0, 255))[0]
                parts.append(counts / counts.sum())
    return np.concatenate(parts)


@pytest.mark.parametrize(
    "channels, bins, joint, grid",
    [("hsv", (7, 5, 4), False, (3, 2)), ("hsv", (4, 3, 5), True, (1, 1)), ("sv", (5, 5), False, (2, 2)),
     ("hv", (6, 5), True, (2, 3)), ("h", (10,), False, (4, 4))],
)
@pytest.mark.parametrize("name", CIFAR_OR_SYNTHETIC)
def test_hsv_channels_joint_and_grid_match_naive_histograms(channels, bins, joint, grid, name):
    images = _sixteen_square(name, 20, EDGES[:4])
    extractor = ColorHistogram(channels, bins, joint, grid).fit(images)
    features = extractor.transform(images)
    reference = np.stack([_naive(image, channels, bins, joint, grid) for image in images])
    assert features.shape == reference.shape == (len(images), extractor.n_features_out((16, 16)))
    np.testing.assert_allclose(features, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", CIFAR_OR_SYNTHETIC)
def test_mirror_invariant_adds_the_histograms_of_the_mirror_image(name):
    images = _sixteen_square(name, 20, EDGES[:4])
    params = ("hsv", (8, 4, 4), True, (2, 3))
    extractor = ColorHistogram(*params, mirror_invariant=True).fit(images)
    reference = np.stack([_naive(image, *params) + _naive(image[:, ::-1], *params) for image in images])
    np.testing.assert_allclose(extractor.transform(images), reference, rtol=0, atol=2e-6)
    np.testing.assert_array_equal(extractor.transform(images[:, :, ::-1]), extractor.transform(images))


def test_saturation_and_value_bins_are_exact_on_integer_edges():
    # With 5 bins over 0-255, the value edges 51, 102, ... are uint8 levels.
    levels = np.repeat(np.arange(256, dtype=np.uint8), 4).reshape(16, 16, 4)[..., :3]
    images = np.stack([levels, levels[::-1], np.roll(levels, 1, axis=2)])
    features = ColorHistogram("sv", 5).fit_transform(images)
    reference = np.stack([_naive(image, "sv", (5, 5), False, (1, 1)) for image in images])
    np.testing.assert_allclose(features, reference, rtol=0, atol=1e-7)


@pytest.mark.cifar
def test_grey_single_and_float_images():
    real = real_images()
    grey = real[:3, ..., 1]
    np.testing.assert_array_equal(ColorHistogram().fit_transform(grey), np.tile(np.eye(10)[0], (3, 1)))
    assert ColorHistogram().fit_transform(real[:1]).shape == (1, 10)
    np.testing.assert_array_equal(ColorHistogram().fit_transform(real[:4] / 255.0), ColorHistogram().fit_transform(real[:4]))


@pytest.mark.parametrize(
    "params, images, message",
    [
        ({"grid": (4, 4)}, np.zeros((2, 3, 8, 3), np.uint8), "too small|at least"),
        ({"channels": "rgb"}, np.zeros((1, 8, 8, 3), np.uint8), "channels"),
        ({"channels": "hh"}, np.zeros((1, 8, 8, 3), np.uint8), "channels"),
        ({"bins": 0}, np.zeros((1, 8, 8, 3), np.uint8), "bins"),
        ({"channels": "hs", "bins": (4, 4, 4)}, np.zeros((1, 8, 8, 3), np.uint8), "bins"),
        ({"grid": (0, 2)}, np.zeros((1, 8, 8, 3), np.uint8), "grid"),
        ({}, np.full((1, 8, 8, 3), -0.5), r"\[0, 1\]"),
        ({}, np.full((1, 8, 8, 3), np.nan), "NaN"),
        ({}, np.zeros((8, 8, 3, 2), np.uint8), "shape"),
    ],
)
def test_color_bad_input_raises_clear_value_error(params, images, message):
    with pytest.raises(ValueError, match=message):
        ColorHistogram(**params).fit(images)
