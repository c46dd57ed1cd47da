"""HOG glyphs against skimage's hog(visualize=True); colour bars against the features."""

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import rgb_to_hsv
from matplotlib.figure import Figure
from PIL import Image
from skimage.feature import hog

from featpipe.features.color import ColorHistogram
from featpipe.features.hog import HOG
from featpipe.features.plotting import hog_glyphs, plot_color_histogram, plot_hog

matplotlib.use("Agg")
CIFAR = Path(__file__).resolve().parents[2] / "shared/datasets/cifar10-jpg"
IMAGE = np.asarray(Image.open(sorted((CIFAR / "test" / "ship").glob("*.jpg"))[3]).convert("RGB"))
RANDOM = np.random.default_rng(0).integers(0, 256, (40, 24, 3), dtype=np.uint8)


@pytest.mark.parametrize("image, cell, orientations", [(IMAGE, 8, 9), (RANDOM, 6, 12), (IMAGE, 4, 6)])
def test_glyphs_equal_skimage_visualization(image, cell, orientations):
    reference = hog(image, orientations, (cell, cell), (1, 1), visualize=True, channel_axis=-1)[1]
    glyphs = hog_glyphs(image, HOG(orientations=orientations, pixels_per_cell=(cell, cell)))
    assert glyphs.shape == image.shape[:2]
    np.testing.assert_allclose(glyphs, reference, rtol=1e-5, atol=1e-3)
    assert glyphs.max() > 1


def test_plot_hog_draws_the_glyphs_into_given_axes():
    ax = Figure().subplots()
    returned = plot_hog(IMAGE, ax=ax)
    assert returned is ax
    np.testing.assert_allclose(ax.images[0].get_array(), hog_glyphs(IMAGE))
    assert plot_hog(IMAGE).images  # a new Axes when none is given


def test_color_bars_are_the_histogram_coloured_by_hue():
    ax = plot_color_histogram(IMAGE)
    heights = np.array([bar.get_height() for bar in ax.patches])
    np.testing.assert_allclose(heights, ColorHistogram().fit_transform(IMAGE[np.newaxis])[0], rtol=1e-6)
    hues = rgb_to_hsv(np.array([bar.get_facecolor()[:3] for bar in ax.patches]))[:, 0]
    np.testing.assert_allclose(hues, (np.arange(10) + 0.5) / 10, atol=1e-6)


def test_color_bars_for_hsv_joint_and_grid_parameters():
    per_channel = plot_color_histogram(IMAGE, ColorHistogram("hsv", (8, 4, 4), grid=(2, 2)))
    heights = np.array([bar.get_height() for bar in per_channel.patches])
    whole = ColorHistogram("hsv", (8, 4, 4)).fit_transform(IMAGE[np.newaxis])[0]
    np.testing.assert_allclose(heights, whole, rtol=1e-6)
    joint = plot_color_histogram(IMAGE, ColorHistogram("hsv", (4, 2, 2), joint=True))
    colours = rgb_to_hsv(np.array([bar.get_facecolor()[:3] for bar in joint.patches]))
    assert len(joint.patches) == 16
    np.testing.assert_allclose(colours[::4, 0], (np.arange(4) + 0.5) / 4, atol=1e-6)


def test_pictures_reject_bad_images():
    with pytest.raises(ValueError, match="too small"):
        hog_glyphs(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        plot_color_histogram(np.full((8, 8, 3), np.nan))
