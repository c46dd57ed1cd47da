"""Colour histograms in HSV, computed for a whole image batch at once.

With default parameters the features equal, bin for bin, the course recipe
applied image by image::

    hue = skimage.color.rgb2hsv(image)[..., 0] * 255
    counts, edges = numpy.histogram(hue, bins=10, range=(0, 255), density=True)
    feature = counts * numpy.diff(edges)          # sums to 1

Hue, saturation and value are never computed in floating point for the
whole batch. Their bins come from small tables indexed by integers of the
uint8 pixels: the hue bin from the channel differences (R - G, G - B), the
saturation bin from (max, min) and the value bin from max. Saturation and
value tables are built by scikit-image's own ``rgb2hsv``; the hue table by
exact rational arithmetic. A hue that lies exactly on a bin edge is the one
case where float64 rounding decides the side; for those few (R - G, G - B)
pairs a second table holds ``rgb2hsv``'s own bin for every green level. The
result is identical to the float64 reference, and much faster than it.
"""

from functools import lru_cache

import numpy as np
from skimage.color import rgb2hsv

from featpipe.errors import ParameterError
from featpipe.features.base import ImageFeatureExtractor, is_whole_number

_HSV = "hsv"
_MAX = 255
_SIDE = 2 * _MAX + 1
_SLAB_SIZE = 512
"""Images per vectorized pass: keeps the work arrays of 32x32 images in cache."""


def _bin_of(values, n_bins):
    """numpy.histogram's bin over (0, 255) for values already in range."""
    edges = np.linspace(0, _MAX, n_bins + 1)
    return np.minimum(np.searchsorted(edges, values, side="right") - 1, n_bins - 1)


@lru_cache(maxsize=16)
def _hue_tables(n_bins):
    """Hue bin of every pixel, as tables over integers of the pixel.

    Returns ``by_difference``, indexed by ``511 * (R - G + 255) + (G - B +
    255)``: the bin, from exact rational arithmetic (hue = H / (6 * delta)
    with H an integer), or ``-1 - row`` where the hue lies exactly on an
    inner bin edge; and ``on_edge``, whose entry ``[row, G]`` is the bin
    scikit-image's float64 ``rgb2hsv`` gives that pixel.
    """
    diff = np.arange(-_MAX, _MAX + 1, dtype=np.int64)
    red_minus_green, green_minus_blue = np.meshgrid(diff, diff, indexing="ij")
    red, green, blue = red_minus_green, np.zeros_like(diff)[None, :], -green_minus_blue
    highest = np.maximum(np.maximum(red, green), blue)
    delta = highest - np.minimum(np.minimum(red, green), blue)
    sextant = np.where(red == highest, green - blue, 0)
    sextant = np.where(green == highest, 2 * delta + blue - red, sextant)
    sextant = np.where(blue == highest, 4 * delta + red - green, sextant)
    sextant = np.where(sextant < 0, sextant + 6 * delta, sextant)
    scale = np.maximum(6 * delta, 1)
    by_difference = ((n_bins * sextant) // scale).ravel()
    edge_keys = np.flatnonzero(((n_bins * sextant) % scale == 0) & (sextant > 0))
    by_difference[edge_keys] = -1 - np.arange(edge_keys.size)
    green_level = np.arange(256)
    edge_red = red_minus_green.ravel()[edge_keys, None] + green_level
    edge_blue = green_level - green_minus_blue.ravel()[edge_keys, None]
    edge_green = np.broadcast_to(green_level, edge_red.shape)
    pixels = np.stack([edge_red, edge_green, edge_blue], axis=-1).clip(0, _MAX).astype(np.uint8)
    on_edge = _bin_of(rgb2hsv(pixels)[..., 0] * _MAX, n_bins)
    return by_difference.astype(np.intp), on_edge.astype(np.intp)


@lru_cache(maxsize=16)
def _saturation_table(n_bins):
    """Saturation bin indexed by ``256 * max + min`` (scikit-image's float64 values)."""
    highest, lowest = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    pixels = np.stack([highest, lowest, lowest], axis=-1).astype(np.uint8)
    return _bin_of(rgb2hsv(pixels)[..., 1] * _MAX, n_bins).astype(np.intp).ravel()


@lru_cache(maxsize=16)
def _value_table(n_bins):
    """Value bin indexed by ``max`` (scikit-image's float64 values)."""
    pixels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    return _bin_of(rgb2hsv(pixels)[..., 2] * _MAX, n_bins).astype(np.intp)


def _hue_bins(images, n_bins):
    """Hue bin (intp) of every pixel of a uint8 (N, H, W, 3) batch."""
    by_difference, on_edge = _hue_tables(n_bins)
    key = np.multiply(images[..., 0], _SIDE, dtype=np.int32)
    key -= np.multiply(images[..., 1], _SIDE - 1, dtype=np.int32)
    key -= images[..., 2]
    key += _MAX * _SIDE + _MAX
    bins = np.take(by_difference, key, mode="clip")
    flat_bins = bins.reshape(-1)
    edge_pixels = np.flatnonzero(flat_bins < 0)
    green = images.reshape(-1)[3 * edge_pixels + 1]
    flat_bins[edge_pixels] = on_edge[-1 - flat_bins[edge_pixels], green]
    return bins


def _channel_bins(images, channel, n_bins):
    """Bin (intp) of every pixel in hue, saturation or value."""
    if channel == "h":
        return _hue_bins(images, n_bins)
    highest = np.maximum(np.maximum(images[..., 0], images[..., 1]), images[..., 2])
    if channel == "v":
        return np.take(_value_table(n_bins), highest)
    lowest = np.minimum(np.minimum(images[..., 0], images[..., 1]), images[..., 2])
    index = np.multiply(highest, 256, dtype=np.int32)
    index += lowest
    return np.take(_saturation_table(n_bins), index)


def _grid_cells(length, n_cells):
    """Grid cell of each pixel row (or column): ``(i * n_cells) // length``."""
    return (np.arange(length) * n_cells) // length


class ColorHistogram(ImageFeatureExtractor):
    """Normalized HSV colour histograms, over the whole image or a spatial grid.

    Parameters
    ----------
    channels : str, default="h"
        Which HSV channels to histogram, in order: any of ``"h"``, ``"s"``,
        ``"v"`` (e.g. ``"hsv"``). Each channel value is taken on the 0-255
        scale (``skimage.color.rgb2hsv(image) * 255``).
    bins : int or sequence of int, default=10
        Equal-width bins over [0, 255], one count or one per channel;
        numpy.histogram's convention (the last bin includes 255).
    joint : bool, default=False
        With several channels: one joint histogram over the product of the
        bins (e.g. 8 x 4 x 4 = 128 bins) instead of one histogram per channel
        side by side.
    grid : int or (int, int), default=(1, 1)
        Spatial grid (rows, cols); pixel row ``i`` falls in grid row
        ``(i * rows) // H`` (columns alike). Histograms of the cells are
        concatenated row by row.
    mirror_invariant : bool, default=False
        Add the histograms of each image's left-right mirror to its own
        (twice the work), so an image and its mirror share their features:
        the cells of a column mirror each other.

    Notes
    -----
    Every histogram (per grid cell, and per channel unless ``joint``) is
    normalized to sum to 1. With the defaults the features equal
    ``numpy.histogram(rgb2hsv(image)[..., 0] * 255, bins=10, range=(0, 255),
    density=True)[0] * 25.5`` for each image, bin for bin. Input goes
    through :func:`featpipe.features.base.check_images` (float images in
    [0, 1] are scaled to 0-255 and rounded, grey batches stacked to RGB).

    References
    ----------
    .. [1] Swain, M. J. and Ballard, D. H., "Color Indexing", IJCV 7(1),
       1991, :doi:`10.1007/BF00130487`.
    .. [2] Smith, A. R., "Color Gamut Transform Pairs", SIGGRAPH 1978,
       :doi:`10.1145/800248.807361` (the HSV model).

    Examples
    --------
    >>> import numpy as np
    >>> from featpipe.features.color import ColorHistogram
    >>> images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    >>> features = ColorHistogram().fit_transform(images)
    >>> features.shape, bool(np.allclose(features.sum(axis=1), 1))
    ((4, 10), True)
    """

    def __init__(self, channels="h", bins=10, joint=False, grid=(1, 1), mirror_invariant=False):
        self.channels = channels
        self.bins = bins
        self.joint = joint
        self.grid = grid
        self.mirror_invariant = mirror_invariant

    def _checked_params(self):
        """Validated (channels, bins per channel, grid)."""
        channels = self.channels
        if not isinstance(channels, str) or not channels or any(
            channel not in _HSV for channel in channels
        ) or len(set(channels)) != len(channels):
            raise ParameterError(f"channels must be distinct letters of 'hsv', e.g. 'h' or 'hsv'; got {channels!r}")
        bins = [self.bins] * len(channels) if np.isscalar(self.bins) else list(self.bins)
        if len(bins) != len(channels) or not all(
            is_whole_number(count) and count >= 1 for count in bins
        ):
            raise ParameterError(
                f"bins must be a positive int or one positive int per channel ({len(channels)}); "
                f"got {self.bins!r}"
            )
        grid = (self.grid, self.grid) if np.isscalar(self.grid) else tuple(self.grid)
        if len(grid) != 2 or not all(
            is_whole_number(side) and side >= 1 for side in grid
        ):
            raise ParameterError(f"grid must be a positive int or a (rows, cols) pair; got {self.grid!r}")
        return channels, [int(count) for count in bins], grid

    def min_image_size(self):
        """Every grid cell needs at least one pixel."""
        return max(self._checked_params()[2])

    def _histogram_sizes(self):
        """Bins of each histogram within one grid cell."""
        _, bins, _ = self._checked_params()
        return [int(np.prod(bins))] if self.joint else bins

    def n_features_out(self, image_shape):
        """Width: grid cells times the bins of one cell."""
        _, _, grid = self._checked_params()
        if image_shape[0] < grid[0] or image_shape[1] < grid[1]:
            raise ParameterError(
                f"images of {image_shape[0]}x{image_shape[1]} pixels are too small for a "
                f"{grid[0]}x{grid[1]} grid; need at least one pixel per cell"
            )
        return grid[0] * grid[1] * sum(self._histogram_sizes())

    def _transform_images(self, images):
        return self._with_mirrors_added(self._describe, images)

    def _describe(self, images):
        """The histograms of every image of a validated batch, (N, D) float32."""
        features = np.empty((len(images), self.n_features_out(images.shape[1:3])), dtype=np.float32)
        for start in range(0, len(images), _SLAB_SIZE):
            slab = images[start : start + _SLAB_SIZE]
            features[start : start + _SLAB_SIZE] = self._histograms(slab).reshape(len(slab), -1)
        return features

    def _histograms(self, images):
        """Normalized histograms of one slab, shape (N, cells, bins of a cell)."""
        channels, bins, grid = self._checked_params()
        n_images, n_rows, n_cols = images.shape[:3]
        per_channel = [_channel_bins(images, channel, count) for channel, count in zip(channels, bins)]
        if self.joint:
            joint_bins = per_channel[0]
            for channel_bins, count in zip(per_channel[1:], bins[1:]):
                joint_bins = joint_bins * count + channel_bins
            per_channel = [joint_bins]
        n_cells = grid[0] * grid[1]
        cell = _grid_cells(n_rows, grid[0])[:, None] * grid[1] + _grid_cells(n_cols, grid[1])[None, :]
        cell_pixels = np.bincount(cell.ravel(), minlength=n_cells)
        histograms = []
        for channel_bins, size in zip(per_channel, self._histogram_sizes()):
            index = channel_bins
            if n_cells > 1:
                index += cell * size
            index += (np.arange(n_images) * (n_cells * size))[:, None, None]
            counts = np.bincount(index.ravel(), minlength=n_images * n_cells * size)
            histograms.append(counts.reshape(n_images, n_cells, size) / cell_pixels[:, None])
        return np.concatenate(histograms, axis=2)
