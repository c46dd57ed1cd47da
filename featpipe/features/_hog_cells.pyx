# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cell sums of scikit-image's HOG for uint8 colour images, one pass over the pixels.

The per-pixel work of :mod:`featpipe.features.hog` in its most common setting
(uint8 RGB, ``channel="max"``, no ``transform_sqrt``): central differences
per channel, the channel of largest gradient, its orientation bin and its
magnitude added to the cell's histogram. The choice of channel, the bin and
the magnitude come from the exact lookup tables of ``hog._uint8_tables``, so
the sums are the same float64 values numpy's ``bincount`` gives for the
same pixels in the same order. Done in numpy, this step takes about 15
passes over the pixels; here it is one, and runs with the GIL released.
"""

from libc.stdint cimport int32_t, uint8_t


def max_channel_cell_sums(
    const uint8_t[:, :, :, ::1] images,
    const int32_t[:, ::1] tables,
    const double[::1] magnitude_by_rank,
    int rank_shift,
    int bin_mask,
    Py_ssize_t cell_rows,
    Py_ssize_t cell_cols,
    double[:, :, :, ::1] sums,
):
    """Add every pixel's gradient magnitude to its cell and orientation bin.

    Parameters
    ----------
    images : uint8 array, shape (N, H, W, 3), C-contiguous
    tables : int32 array, shape (3, n_keys)
        Per channel, indexed by ``|511 * g_row + g_col|``: the rank of the
        gradient magnitude, the channel's priority on ties and the
        orientation bin, packed so that the largest entry is scikit-image's
        choice of channel.
    magnitude_by_rank : float64 array
        The magnitude ``hypot(g_row, g_col)`` of each rank.
    rank_shift, bin_mask : int
        ``entry >> rank_shift`` is the rank, ``entry & bin_mask`` the bin.
    cell_rows, cell_cols : int
        Cell size in pixels; only whole cells are visited.
    sums : float64 array, shape (N, H // cell_rows, W // cell_cols, slots)
        Zeroed histogram sums, filled in place.
    """
    cdef Py_ssize_t n = images.shape[0], height = images.shape[1], width = images.shape[2]
    cdef Py_ssize_t n_cell_rows = sums.shape[1], n_cell_cols = sums.shape[2]
    cdef Py_ssize_t i, cell_row, cell_col, r, c, channel
    cdef int g_row, g_col, key
    cdef int32_t entry, best
    cdef bint interior_row
    with nogil:
        for i in range(n):
            for cell_row in range(n_cell_rows):
                for r in range(cell_row * cell_rows, (cell_row + 1) * cell_rows):
                    interior_row = 0 < r < height - 1
                    for cell_col in range(n_cell_cols):
                        for c in range(cell_col * cell_cols, (cell_col + 1) * cell_cols):
                            best = 0
                            for channel in range(3):
                                # scikit-image leaves the gradient of the border rows and columns at 0.
                                g_row = 0
                                g_col = 0
                                if interior_row:
                                    g_row = <int>images[i, r + 1, c, channel] - <int>images[i, r - 1, c, channel]
                                if 0 < c < width - 1:
                                    g_col = <int>images[i, r, c + 1, channel] - <int>images[i, r, c - 1, channel]
                                key = 511 * g_row + g_col
                                if key < 0:
                                    key = -key
                                entry = tables[channel, key]
                                if entry > best:
                                    best = entry
                            sums[i, cell_row, cell_col, best & bin_mask] += magnitude_by_rank[best >> rank_shift]
