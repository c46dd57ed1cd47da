"""HOG cell histograms of uint8 images: gradient magnitude sums per cell and orientation bin.

The per-pixel half of :class:`featpipe.features.hog.HOG`, equal to
scikit-image's :func:`skimage.feature.hog` steps (central differences, the
channel of largest gradient, hard orientation bins, magnitudes summed per
cell). Every setting runs in one compiled pass (:mod:`featpipe.features._hog_cells`):

- ``channel="max"`` without ``transform_sqrt``: the gradients are integers
  in [-255, 255], and a lookup table over every gradient pair (row, col)
  holds the rank of its magnitude and its orientation bin; with each
  channel's priority inserted between them, choosing the channel of
  largest gradient is a maximum over three integers.
- ``channel="gray"`` and ``transform_sqrt=True``: the values scikit-image
  takes gradients of are computed as numpy computes them (``rgb2gray``'s
  weighted sum with the same rounding, checked once per process against
  ``rgb2gray`` itself; square roots of the 256 levels), and each bin comes
  from comparing the gradient with the bin edges' directions. Pixels within
  1e-9 of an edge, where the rounding of numpy's angle decides, are binned
  by numpy.

Each compiled pass adds the magnitudes in the order ``numpy.bincount``
does, so its sums equal the numpy float path's to the last bit; that path
(:func:`float_channels`, :func:`_float_pixels`, :func:`_bincount_cell_sums`)
is what the tests compare with, and it runs where the compiled passes do
not apply: ``channel="gray"`` or ``transform_sqrt`` with more than 254
orientations, and ``channel="gray"`` on a machine whose ``rgb2gray`` rounds
differently (another BLAS library).
"""

from functools import lru_cache

import numpy as np
from skimage.color import rgb2gray

from featpipe.features._hog_cells import binned_cell_sums, float_cell_sums, grey_values, max_channel_cell_sums

_MAX_GRADIENT = 255
_KEY_SIDE = 2 * _MAX_GRADIENT + 1
_MAX_KEY = _MAX_GRADIENT * _KEY_SIDE + _MAX_GRADIENT
_RANK_BITS = 17
_CHANNEL_BITS = 2
_MAX_FLOAT_PASS_ORIENTATIONS = 254
"""The compiled float pass keeps bins in uint8, with 255 marking the pixels numpy bins."""

_GREY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])
"""Weights of R, G and B in :func:`skimage.color.rgb2gray`."""


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
def _uint8_table(orientations):
    """Lookup table over every integer gradient pair (row, col) in [-255, 255].

    Returns an int32 array indexed by ``|key|`` with ``key = 511 * g_row +
    g_col``, whose entries hold the rank of the pair's magnitude above the
    bits of its orientation bin (the compiled pass inserts the channel
    priority between them, so entries sort like scikit-image's channel
    choice: magnitude first, then the earlier channel); the magnitude of
    each rank (``hypot`` is symmetric here, so it is also scikit-image's
    weight ``hypot(g_col, g_row)``; the tests check it); and the number of
    bits that hold the bin. A pair and its negation have the same magnitude
    and, since orientations are taken modulo 180 degrees, the same bin, so
    half of the key range suffices: the table is 512 KiB and stays in the
    L2 cache while it is read.
    """
    grid = np.arange(-_MAX_GRADIENT, _MAX_GRADIENT + 1, dtype=np.float64)
    g_row, g_col = np.meshgrid(grid, grid, indexing="ij")
    magnitude_by_rank, rank = np.unique(np.hypot(g_row, g_col), return_inverse=True)
    bins = _orientation_bins(g_row, g_col, orientations)
    bin_bits = int(orientations).bit_length()
    key = (_KEY_SIDE * g_row + g_col).astype(np.int64).ravel()
    upper_half = key >= 0
    entry = (rank.reshape(g_row.shape).astype(np.int32) << bin_bits) | bins
    table = np.empty(_MAX_KEY + 1, dtype=np.int32)
    table[key[upper_half]] = entry.ravel()[upper_half]
    return table, magnitude_by_rank, bin_bits


def _uint8_cell_sums(images, orientations, cell, n_cells):
    """Magnitude sums per (image, cell row, cell col, bin slot) of uint8 RGB images, ``channel="max"``."""
    table, magnitude_by_rank, bin_bits = _uint8_table(orientations)
    sums = np.zeros((len(images),) + tuple(n_cells) + (orientations + 1,))
    max_channel_cell_sums(
        np.ascontiguousarray(images), table, magnitude_by_rank, bin_bits, _CHANNEL_BITS, cell[0], cell[1], sums,
    )
    return sums


@lru_cache(maxsize=8)
def _edge_directions(orientations):
    """Cosine and sine of the bin edges strictly between 0 and 180 degrees."""
    edges = _orientation_edges(orientations)
    radians = np.deg2rad(edges[(edges > 0) & (edges < 180)])
    return np.cos(radians), np.sin(radians)


@lru_cache(maxsize=1)
def _grey_pass_matches_rgb2gray():
    """Whether the compiled grey levels equal ``rgb2gray``'s float64 values on this machine.

    ``rgb2gray`` is a matrix product, whose rounding (fused multiply-adds,
    their order) is the BLAS library's: the compiled pass follows the
    OpenBLAS kernels of x86-64 CPUs with FMA. Checked on every (R, G) pair
    with random B.
    """
    levels = np.arange(256, dtype=np.uint8)
    blue = np.random.default_rng(0).integers(0, 256, (256, 256), dtype=np.uint8)
    probe = np.stack([*np.meshgrid(levels, levels, indexing="ij"), blue], axis=-1)[np.newaxis]
    compiled = np.empty(probe.shape[:3])
    grey_values(probe, _GREY_WEIGHTS, compiled)
    return bool(np.array_equal(compiled, rgb2gray(probe)))


def _float_cell_sums(images, orientations, cell, n_cells, channel, transform_sqrt):
    """Magnitude sums per (image, cell row, cell col, bin slot) by the compiled float pass."""
    edge_cos, edge_sin = _edge_directions(orientations)
    n_images = len(images)
    crop = (n_cells[0] * cell[0], n_cells[1] * cell[1])
    sums = np.zeros((n_images,) + tuple(n_cells) + (orientations + 1,))
    bins = np.empty((n_images,) + crop, dtype=np.uint8)
    magnitudes = np.empty((n_images,) + crop)
    resume_at = np.empty(n_images, dtype=np.intp)
    ambiguous_pixels = np.empty(bins.size, dtype=np.intp)
    ambiguous_gradients = np.empty((bins.size, 2))
    n_ambiguous = float_cell_sums(
        np.ascontiguousarray(images), channel == "gray", transform_sqrt, _GREY_WEIGHTS, edge_cos, edge_sin,
        cell[0], cell[1], sums, bins, magnitudes, resume_at, ambiguous_pixels, ambiguous_gradients,
    )
    if n_ambiguous:
        g_row, g_col = ambiguous_gradients[:n_ambiguous].T
        bins.reshape(-1)[ambiguous_pixels[:n_ambiguous]] = _orientation_bins(g_row, g_col, orientations)
        binned_cell_sums(bins, magnitudes, resume_at, cell[0], cell[1], sums)
    return sums


def float_channels(images, channel, transform_sqrt):
    """Float64 (N, H, W, C) values scikit-image takes its gradients of, computed by numpy."""
    channels = rgb2gray(images)[..., np.newaxis] if channel == "gray" else images.astype(np.float64)
    return np.sqrt(channels) if transform_sqrt else channels


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


def _bincount_cell_sums(bins, magnitude, orientations, cell, n_cells):
    """Magnitude sums per (image, cell row, cell col, bin slot), float64, by ``numpy.bincount``."""
    n_images = bins.shape[0]
    slots = orientations + 1
    cell_of_row = np.arange(n_cells[0] * cell[0]) // cell[0]
    cell_of_col = np.arange(n_cells[1] * cell[1]) // cell[1]
    cell_slot = (cell_of_row[:, None] * n_cells[1] + cell_of_col[None, :]) * slots
    image_slot = np.arange(n_images) * (n_cells[0] * n_cells[1] * slots)
    pixel_slots = bins + (image_slot[:, None, None] + cell_slot)
    size = n_images * n_cells[0] * n_cells[1] * slots
    sums = np.bincount(pixel_slots.reshape(-1), weights=magnitude.reshape(-1), minlength=size)
    return sums.reshape(n_images, n_cells[0], n_cells[1], slots)


def cell_sums(images, orientations, cell, channel="max", transform_sqrt=False):
    """Gradient magnitude sums per (image, cell row, cell col, bin slot), float64.

    Parameters
    ----------
    images : uint8 array, shape (N, H, W, 3)
    orientations : int
    cell : (int, int)
        Cell size in pixels; only whole cells count.
    channel : {"max", "gray"}
    transform_sqrt : bool

    Returns
    -------
    sums : float64 array, shape (N, H // cell[0], W // cell[1], orientations + 1)
        Slot ``orientations`` holds the pixels scikit-image puts in no bin
        (angles at or past the last edge).
    """
    n_cells = (images.shape[1] // cell[0], images.shape[2] // cell[1])
    table_bits = _RANK_BITS + _CHANNEL_BITS + int(orientations).bit_length()
    if channel == "max" and not transform_sqrt and table_bits < 32:
        return _uint8_cell_sums(images, orientations, cell, n_cells)
    if orientations <= _MAX_FLOAT_PASS_ORIENTATIONS and (channel == "max" or _grey_pass_matches_rgb2gray()):
        return _float_cell_sums(images, orientations, cell, n_cells, channel, transform_sqrt)
    crop = (n_cells[0] * cell[0], n_cells[1] * cell[1])
    bins, magnitude = _float_pixels(float_channels(images, channel, transform_sqrt), orientations, crop)
    return _bincount_cell_sums(bins, magnitude, orientations, cell, n_cells)
