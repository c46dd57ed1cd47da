"""Histograms of oriented gradients (HOG), computed for a whole image batch at once.

The values equal scikit-image's :func:`skimage.feature.hog` image by image
(same gradients, hard orientation binning, cell means and block
normalizations), but every step runs over the whole batch. The per-pixel
work, for every setting, is one compiled pass over each slab of images
(:mod:`featpipe.features.hog_cells`); block normalization runs once per
batch, not per slab.
"""

import numpy as np

from featpipe.errors import ParameterError
from featpipe.features.base import ImageFeatureExtractor, is_whole_number
from featpipe.features.hog_cells import cell_sums

_BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys", "none")
_CHANNELS = ("max", "gray")
_EPS = 1e-5
_SLAB_PIXELS = 1 << 20
"""Pixels per compiled pass (1,024 images of 32x32): few Python calls, float64 cell sums of about
1.3 MB, and work space that numpy allocates but touches only for the rare pixels it bins."""


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
    mirror_invariant : bool, default=False
        Add the descriptor of each image's left-right mirror to its own, so
        an image and its mirror share their features (twice the work). A
        linear head then learns what mirrored training copies would teach
        it, from half the rows.

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
        mirror_invariant=False,
    ):
        self.orientations = orientations
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm
        self.transform_sqrt = transform_sqrt
        self.channel = channel
        self.mirror_invariant = mirror_invariant

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

    def _write_cell_means(self, images, orientations, cells, cell_means):
        """Write the cell histograms of a slab of images into ``cell_means`` (one float32 array per cell size)."""
        for cell, means in zip(cells, cell_means):
            sums = cell_sums(images, orientations, cell, self.channel, bool(self.transform_sqrt))
            np.divide(sums[..., :orientations], cell[0] * cell[1], out=means, casting="same_kind")

    def _transform_images(self, images):
        return self._with_mirrors_added(self._describe, images)

    def _describe(self, images):
        """The HOG of every image of a validated batch, (N, D) float32."""
        orientations, cells, blocks, block_norm = self._checked_params()
        n_images, height, width = images.shape[:3]
        cell_means = [np.empty((n_images, height // cell[0], width // cell[1], orientations), dtype=np.float32)
                      for cell in cells]
        slab_size = max(1, _SLAB_PIXELS // (height * width))
        for start in range(0, n_images, slab_size):
            stop = min(start + slab_size, n_images)
            self._write_cell_means(images[start:stop], orientations, cells, [means[start:stop] for means in cell_means])
        described = [(means if block_norm == "none" else _normalize_blocks(means, blocks, block_norm)).reshape(
            n_images, -1) for means in cell_means]
        return described[0] if len(described) == 1 else np.concatenate(described, axis=1)
