"""Histograms of oriented gradients (HOG), computed for a whole image batch at once.

The values equal scikit-image's :func:`skimage.feature.hog` image by image
(same gradients, hard orientation binning, cell means and block
normalizations), but every step runs over the whole batch. For uint8 colour
images without ``transform_sqrt`` the per-pixel work is one compiled pass
(:mod:`featpipe.features._hog_cells`) driven by exact lookup tables: a
gradient pair (row, col) in [-255, 255]^2 indexes a table that holds the
rank of its magnitude, the channel priority and its orientation bin, so
choosing the channel of largest gradient is a maximum over three integers.
Block normalization runs once per batch, not per slab of images. Other
settings (``transform_sqrt``, ``channel="gray"``) follow scikit-image's
float64 steps over the batch in numpy.
"""

from functools import lru_cache

import numpy as np
from skimage.color import rgb2gray

from featpipe.errors import ParameterError
from featpipe.features._hog_cells import max_channel_cell_sums
from featpipe.features.base import ImageFeatureExtractor, is_whole_number

_BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys", "none")
_CHANNELS = ("max", "gray")
_EPS = 1e-5
_MAX_GRADIENT = 255
_KEY_SIDE = 2 * _MAX_GRADIENT + 1
_MAX_KEY = _MAX_GRADIENT * _KEY_SIDE + _MAX_GRADIENT
_RANK_BITS = 17
_CHANNEL_BITS = 2
_SLAB_SIZE = 64
"""Images per pass: keeps the work arrays (float path) and cell sums of 32x32 images in cache."""


def _orientation_edges(orientations):
    """Bin edges in degrees as scikit-image computes them (float32 products)."""
    width = np.float32(180.0 / orientations)
    return (width * np.arange(orientations + 1, dtype=np.float32)).astype(np.float64)


def _orientation_bins(g_row, g_col, orientations):
    """Hard orientation bin of each gradient; ``orientations`` marks "no bin"."""
    angle = np.rad2deg(np.arctan2(g_row, g_col)) % 180
    bins = np.searchsorted(_orientation_edges(orientations), angle, side="right") - 1
    return np.minimum(bins, orientations).astype(np.intp)


@lru_cache(maxsize=8)
def _uint8_tables(orientations):
    """Lookup tables over every integer gradient pair (row, col) in [-255, 255].

    Returns an int32 array (3, n_keys), one row per colour channel, indexed
    by ``|key|`` with ``key = 511 * g_row + g_col``, whose entries sort like
    scikit-image's channel choice (magnitude first, then the earlier
    channel) and carry the orientation bin in their low bits; the magnitude
    of each rank (``hypot`` is symmetric here, so it is also scikit-image's
    weight ``hypot(g_col, g_row)``; the tests check it); and the number of
    bits that hold the bin. A pair and its negation have the same magnitude
    and, since orientations are taken modulo 180 degrees, the same bin, so
    half of the key range suffices: each row is 512 KiB, and all three stay
    in the L2 cache while they are read.
    """
    grid = np.arange(-_MAX_GRADIENT, _MAX_GRADIENT + 1, dtype=np.float64)
    g_row, g_col = np.meshgrid(grid, grid, indexing="ij")
    magnitude_by_rank, rank = np.unique(np.hypot(g_row, g_col), return_inverse=True)
    bins = _orientation_bins(g_row, g_col, orientations)
    bin_bits = int(orientations).bit_length()
    key = (_KEY_SIDE * g_row + g_col).astype(np.int64).ravel()
    upper_half = key >= 0
    tables = np.empty((3, _MAX_KEY + 1), dtype=np.int32)
    for channel in range(3):
        entry = (rank.reshape(g_row.shape).astype(np.int32) << (_CHANNEL_BITS + bin_bits)) | (
            (2 - channel) << bin_bits
        ) | bins
        tables[channel, key[upper_half]] = entry.ravel()[upper_half]
    return tables, magnitude_by_rank, bin_bits


def _uint8_cell_sums(images, orientations, cell, n_cells):
    """Magnitude sums per (image, cell row, cell col, bin slot) of uint8 RGB images, float64."""
    tables, magnitude_by_rank, bin_bits = _uint8_tables(orientations)
    sums = np.zeros((len(images),) + tuple(n_cells) + (orientations + 1,))
    max_channel_cell_sums(
        np.ascontiguousarray(images), tables, magnitude_by_rank, _CHANNEL_BITS + bin_bits,
        (1 << bin_bits) - 1, cell[0], cell[1], sums,
    )
    return sums


def _float_pixels(channels, orientations, crop):
    """Bin and magnitude per pixel following scikit-image's float steps.

    ``channels`` is float64 (N, H, W, C); with C > 1 each pixel takes the
    channel of largest gradient magnitude (the first one on ties).
    """
    g_row = np.zeros_like(channels)
    g_col = np.zeros_like(channels)
    g_row[:, 1:-1] = channels[:, 2:] - channels[:, :-2]
    g_col[:, :, 1:-1] = channels[:, :, 2:] - channels[:, :, :-2]
    g_row = g_row[:, : crop[0], : crop[1]]
    g_col = g_col[:, : crop[0], : crop[1]]
    if channels.shape[-1] > 1:
        strongest = np.hypot(g_row, g_col).argmax(axis=-1)[..., np.newaxis]
        g_row = np.take_along_axis(g_row, strongest, axis=-1)
        g_col = np.take_along_axis(g_col, strongest, axis=-1)
    g_row, g_col = g_row[..., 0], g_col[..., 0]
    return _orientation_bins(g_row, g_col, orientations), np.hypot(g_col, g_row)


def _slots(n_images, orientations, cell, n_cells):
    """Histogram slot of bin 0 for every pixel: (image, cell row, cell col)."""
    slots = orientations + 1
    cell_of_row = np.arange(n_cells[0] * cell[0]) // cell[0]
    cell_of_col = np.arange(n_cells[1] * cell[1]) // cell[1]
    cell_slot = (cell_of_row[:, None] * n_cells[1] + cell_of_col[None, :]) * slots
    image_slot = np.arange(n_images) * (n_cells[0] * n_cells[1] * slots)
    return (image_slot[:, None, None] + cell_slot).astype(np.intp)


def _bincount_cell_sums(bins, magnitude, orientations, cell, n_cells, slot_cache):
    """Magnitude sums per (image, cell row, cell col, bin slot), float64.

    ``bins`` (intp) is overwritten with the histogram slot of each pixel;
    ``slot_cache`` (a dict) keeps the slot offsets from slab to slab.
    """
    n_images = bins.shape[0]
    key = (n_images, orientations, cell, n_cells)
    if key not in slot_cache:
        slot_cache[key] = _slots(n_images, orientations, cell, n_cells)
    np.add(bins, slot_cache[key], out=bins)
    slots = orientations + 1
    size = n_images * n_cells[0] * n_cells[1] * slots
    sums = np.bincount(bins.reshape(-1), weights=magnitude.reshape(-1), minlength=size)
    return sums.reshape(n_images, n_cells[0], n_cells[1], slots)


def _normalize_blocks(cells, cells_per_block, block_norm):
    """Overlapping blocks of cells, normalized; shape (N, rows, cols, b_r * b_c * o)."""
    b_row, b_col = cells_per_block
    windows = np.lib.stride_tricks.sliding_window_view(cells, (b_row, b_col), axis=(1, 2))
    blocks = np.array(windows.transpose(0, 1, 2, 4, 5, 3), order="C").reshape(windows.shape[:3] + (-1,))
    if block_norm in ("L1", "L1-sqrt"):
        blocks /= np.abs(blocks).sum(axis=-1, keepdims=True) + _EPS
        return np.sqrt(blocks) if block_norm == "L1-sqrt" else blocks
    blocks /= np.sqrt(np.einsum("...i,...i->...", blocks, blocks)[..., None] + _EPS**2)
    if block_norm == "L2-Hys":
        np.minimum(blocks, 0.2, out=blocks)
        blocks /= np.sqrt(np.einsum("...i,...i->...", blocks, blocks)[..., None] + _EPS**2)
    return blocks


def _cell_sizes(pixels_per_cell):
    """Normalize ``pixels_per_cell`` to a list of (rows, cols) pairs."""
    if np.isscalar(pixels_per_cell):
        return [(pixels_per_cell, pixels_per_cell)]
    sizes = list(pixels_per_cell)
    if len(sizes) == 2 and all(np.isscalar(side) for side in sizes):
        return [tuple(sizes)]
    return [(size, size) if np.isscalar(size) else tuple(size) for size in sizes]


def _is_positive_int(value):
    return is_whole_number(value) and value >= 1


class HOG(ImageFeatureExtractor):
    """Histogram of oriented gradients of every image, as scikit-image computes it.

    Equals ``skimage.feature.hog(image, orientations, pixels_per_cell,
    cells_per_block, block_norm, transform_sqrt=transform_sqrt,
    channel_axis=-1)`` (``channel="max"``) or ``hog(rgb2gray(image), ...)``
    (``channel="gray"``) for each image, computed over the batch at once.

    Parameters
    ----------
    orientations : int, default=9
        Number of orientation bins over 0-180 degrees (unsigned gradients).
    pixels_per_cell : int, (int, int) or list of them, default=(8, 8)
        Cell size in pixels (rows, cols). A list of sizes, e.g.
        ``[(4, 4), (8, 8)]``, gives a multi-scale descriptor: the HOG at each
        cell size, concatenated in the order given. Only whole cells count.
    cells_per_block : (int, int), default=(2, 2)
        Cells per normalization block; blocks slide one cell at a time.
    block_norm : {"L2-Hys", "L1", "L1-sqrt", "L2", "none"}, default="L2-Hys"
        Block normalization as in scikit-image (eps = 1e-5). ``"none"`` (or
        ``None``) skips blocks and returns the cell histograms themselves:
        the mean gradient magnitude per orientation and cell, on the 0-255
        pixel scale (0-1 with ``channel="gray"``); ``cells_per_block`` is
        then unused.
    transform_sqrt : bool, default=False
        Take the square root of the pixel values (0-255 scale) first.
    channel : {"max", "gray"}, default="max"
        ``"max"``: per pixel, the colour channel with the largest gradient
        magnitude (scikit-image's ``channel_axis`` behaviour, 0-255 scale).
        ``"gray"``: convert with :func:`skimage.color.rgb2gray`
        (0.2125 R + 0.7154 G + 0.0721 B on the 0-1 scale) first.

    Notes
    -----
    Input goes through :func:`featpipe.features.base.check_images`: float
    images in [0, 1] are scaled to 0-255 and rounded, grey (N, H, W) batches
    are stacked to three equal channels (so ``"max"`` equals the HOG of the
    grey image). Images must hold at least one block at every cell size
    (:meth:`min_image_size`, otherwise ``ValueError``).

    References
    ----------
    .. [1] Dalal, N. and Triggs, B., "Histograms of Oriented Gradients for
       Human Detection", CVPR 2005, :doi:`10.1109/CVPR.2005.177`.

    Examples
    --------
    >>> import numpy as np
    >>> from featpipe.features.hog import HOG
    >>> images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    >>> HOG().fit_transform(images).shape
    (5, 324)
    """

    def __init__(
        self,
        orientations=9,
        pixels_per_cell=(8, 8),
        cells_per_block=(2, 2),
        block_norm="L2-Hys",
        transform_sqrt=False,
        channel="max",
    ):
        self.orientations = orientations
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm
        self.transform_sqrt = transform_sqrt
        self.channel = channel

    def _checked_params(self):
        """Validated (orientations, cell sizes, cells per block, block norm)."""
        if not _is_positive_int(self.orientations):
            raise ParameterError(f"orientations must be a positive int; got {self.orientations!r}")
        try:
            cells = _cell_sizes(self.pixels_per_cell)
            blocks = tuple(self.cells_per_block)
        except TypeError as error:
            raise ParameterError(
                "pixels_per_cell must be an int, a (rows, cols) pair or a list of them, and "
                f"cells_per_block a (rows, cols) pair; got {self.pixels_per_cell!r}, "
                f"{self.cells_per_block!r}"
            ) from error
        sides = [side for cell in cells for side in cell] + list(blocks)
        if not cells or any(len(cell) != 2 for cell in cells) or len(blocks) != 2 or not all(
            _is_positive_int(side) for side in sides
        ):
            raise ParameterError(
                "pixels_per_cell and cells_per_block need positive int (rows, cols) pairs; "
                f"got {self.pixels_per_cell!r} and {self.cells_per_block!r}"
            )
        block_norm = "none" if self.block_norm is None else self.block_norm
        if block_norm not in _BLOCK_NORMS:
            raise ParameterError(f"block_norm must be one of {_BLOCK_NORMS} or None; got {self.block_norm!r}")
        if self.channel not in _CHANNELS:
            raise ParameterError(f"channel must be one of {_CHANNELS}; got {self.channel!r}")
        if block_norm == "none":
            blocks = (1, 1)
        return int(self.orientations), cells, blocks, block_norm

    def min_image_size(self):
        """Smallest side (pixels) that holds one block at every cell size."""
        _, cells, blocks, _ = self._checked_params()
        return max(max(cell[0] * blocks[0], cell[1] * blocks[1]) for cell in cells)

    def n_features_out(self, image_shape):
        """Descriptor length for images of ``image_shape`` (H, W)."""
        orientations, cells, blocks, _ = self._checked_params()
        total = 0
        for cell in cells:
            n_blocks = [image_shape[axis] // cell[axis] - blocks[axis] + 1 for axis in (0, 1)]
            if min(n_blocks) < 1:
                raise ParameterError(
                    f"images of {image_shape[0]}x{image_shape[1]} pixels are too small for "
                    f"{cell} pixel cells in {blocks} cell blocks; need at least "
                    f"{cell[0] * blocks[0]}x{cell[1] * blocks[1]}"
                )
            total += n_blocks[0] * n_blocks[1] * blocks[0] * blocks[1] * orientations
        return total

    def _uses_tables(self, orientations):
        """Whether the exact integer lookup path applies to these parameters."""
        fits = _RANK_BITS + _CHANNEL_BITS + orientations.bit_length() < 32
        return self.channel == "max" and not self.transform_sqrt and fits

    def _float_channels(self, images):
        """Float64 (N, H, W, C) values scikit-image would take its gradients of."""
        if self.channel == "gray":
            channels = rgb2gray(images)[..., np.newaxis]
        else:
            channels = images.astype(np.float64)
        return np.sqrt(channels) if self.transform_sqrt else channels

    def _slab_cell_means(self, images, slot_cache, orientations, cells):
        """Cell histograms of one slab of images, one float32 array per cell size."""
        uses_tables = self._uses_tables(orientations)
        if not uses_tables:
            channels = self._float_channels(images)
        for cell in cells:
            n_cells = (images.shape[1] // cell[0], images.shape[2] // cell[1])
            if uses_tables:
                sums = _uint8_cell_sums(images, orientations, cell, n_cells)
            else:
                crop = (n_cells[0] * cell[0], n_cells[1] * cell[1])
                bins, magnitude = _float_pixels(channels, orientations, crop)
                sums = _bincount_cell_sums(bins, magnitude, orientations, cell, n_cells, slot_cache)
            yield (sums[..., :orientations] / (cell[0] * cell[1])).astype(np.float32)

    def _transform_images(self, images):
        orientations, cells, blocks, block_norm = self._checked_params()
        n_images, height, width = images.shape[:3]
        cell_means = [np.empty((n_images, height // cell[0], width // cell[1], orientations), dtype=np.float32)
                      for cell in cells]
        slot_cache = {}
        for start in range(0, n_images, _SLAB_SIZE):
            slab = images[start : start + _SLAB_SIZE]
            for means, slab_means in zip(cell_means, self._slab_cell_means(slab, slot_cache, orientations, cells)):
                means[start : start + len(slab)] = slab_means
        features = np.empty((n_images, self.n_features_out((height, width))), dtype=np.float32)
        column = 0
        for means in cell_means:
            described = means if block_norm == "none" else _normalize_blocks(means, blocks, block_norm)
            described = described.reshape(n_images, -1)
            features[:, column : column + described.shape[1]] = described
            column += described.shape[1]
        return features
