# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cell sums of scikit-image's HOG for uint8 images, one pass over the pixels.

The per-pixel work of :mod:`featpipe.features.hog_cells`: central
differences per channel, the channel of largest gradient, its orientation
bin and its magnitude added to the cell's histogram, in the order numpy's
``bincount`` adds them, so the sums are the same float64 values the numpy
float path gives. Done in numpy, this step takes about 15 passes over the
pixels; here it is one, with the GIL released, vectorized over each row
where it can be.

- :func:`max_channel_cell_sums` (``channel="max"``, no ``transform_sqrt``,
  C in ``_hog_uint8.h``): the gradients are integers, and an exact lookup
  table over every gradient pair gives the channel choice, the bin and the
  magnitude.
- :func:`float_cell_sums` (``channel="gray"`` or ``transform_sqrt``, C in
  ``_hog_float.h``): the float values numpy would compute (grey levels,
  square roots) are computed with the same rounding, then the bin is found
  by comparing the gradient with the bin edges; the rare pixels too close
  to an edge to tell are left to numpy, and :func:`binned_cell_sums`
  finishes those images.
"""

from libc.stdint cimport int32_t, uint8_t


cdef extern from "_hog_uint8.h" nogil:
    int fp_hog_max_channel_cell_sums(
        const uint8_t *images, Py_ssize_t n, Py_ssize_t height, Py_ssize_t width, const int32_t *table,
        const double *magnitude_by_rank, int bin_bits, int channel_bits, Py_ssize_t cell_rows, Py_ssize_t cell_cols,
        Py_ssize_t crop_rows, Py_ssize_t crop_cols, Py_ssize_t slots, double *sums)


def max_channel_cell_sums(
    const uint8_t[:, :, :, ::1] images,
    const int32_t[::1] table,
    const double[::1] magnitude_by_rank,
    int bin_bits,
    int channel_bits,
    Py_ssize_t cell_rows,
    Py_ssize_t cell_cols,
    double[:, :, :, ::1] sums,
):
    """Add every pixel's gradient magnitude to its cell and orientation bin.

    Parameters
    ----------
    images : uint8 array, shape (N, H, W, 3), C-contiguous
    table : int32 array, shape (n_keys,)
        Indexed by ``|511 * g_row + g_col|``: the rank of the gradient
        magnitude above ``bin_bits`` bits of orientation bin
        (``hog_cells._uint8_table``). Each channel inserts its priority on
        ties (2, 1, 0) in ``channel_bits`` bits between them, so that the
        largest of the three entries is scikit-image's choice of channel.
        One table for the three channels stays in the L2 cache.
    magnitude_by_rank : float64 array
        The magnitude ``hypot(g_row, g_col)`` of each rank.
    bin_bits, channel_bits : int
    cell_rows, cell_cols : int
        Cell size in pixels; only whole cells are visited.
    sums : float64 array, shape (N, H // cell_rows, W // cell_cols, slots)
        Zeroed histogram sums, filled in place.
    """
    cdef Py_ssize_t n = images.shape[0]
    cdef int status
    if n == 0:
        return
    with nogil:
        status = fp_hog_max_channel_cell_sums(
            &images[0, 0, 0, 0], n, images.shape[1], images.shape[2], &table[0], &magnitude_by_rank[0], bin_bits,
            channel_bits, cell_rows, cell_cols, sums.shape[1] * cell_rows, sums.shape[2] * cell_cols, sums.shape[3],
            &sums[0, 0, 0, 0],
        )
    if status < 0:
        raise MemoryError()


cdef extern from "_hog_float.h" nogil:
    ctypedef struct fp_hog_setting:
        int grey
        int take_sqrt
        const double *edge_cos
        const double *edge_sin
        Py_ssize_t n_edges
        Py_ssize_t cell_rows, cell_cols
        Py_ssize_t crop_rows, crop_cols
        Py_ssize_t slots
    Py_ssize_t fp_hog_float_cell_sums(
        const fp_hog_setting *setting, const uint8_t *images, Py_ssize_t n, Py_ssize_t height, Py_ssize_t width,
        const double *weights, double *sums, uint8_t *bins, double *magnitudes, Py_ssize_t *resume_at,
        Py_ssize_t *ambiguous_pixels, double *ambiguous_gradients)
    void fp_hog_grey_values(const uint8_t *image, Py_ssize_t n_pixels, const double *weights, double *grey)


def float_cell_sums(
    const uint8_t[:, :, :, ::1] images,
    bint grey,
    bint take_sqrt,
    const double[::1] weights,
    const double[::1] edge_cos,
    const double[::1] edge_sin,
    Py_ssize_t cell_rows,
    Py_ssize_t cell_cols,
    double[:, :, :, ::1] sums,
    uint8_t[:, :, ::1] bins,
    double[:, :, ::1] magnitudes,
    Py_ssize_t[::1] resume_at,
    Py_ssize_t[::1] ambiguous_pixels,
    double[:, ::1] ambiguous_gradients,
):
    """Cell sums of scikit-image's HOG on the float values of uint8 images (``_hog_float.h``).

    Covers ``channel="gray"`` and ``transform_sqrt``: the grey levels or
    channel values (square roots taken) as numpy computes them, the
    gradients, the channel of largest ``hypot``, the orientation bin and
    ``hypot(g_col, g_row)`` added to the cell's bin in row-major pixel
    order, the order of numpy's ``bincount``.

    A pixel whose bin lies too close to an edge to tell here stops its
    image's sums: from that pixel on, the image's bins and magnitudes are
    written to ``bins`` and ``magnitudes`` (255 for the pixels numpy must
    bin, listed in ``ambiguous_pixels`` as flat indices of ``bins`` with
    their (g_row, g_col) in ``ambiguous_gradients``) and ``resume_at[i]``
    says where the sums stopped (the number of crop pixels when they did
    not). Once numpy has filled in those bins, :func:`binned_cell_sums`
    finishes the sums in the same order.

    Parameters
    ----------
    images : uint8 array, shape (N, H, W, 3), C-contiguous
    grey : bool
        One grey value per pixel (``rgb2gray``) instead of three channels.
    take_sqrt : bool
        Square roots of the values (``transform_sqrt``).
    weights : float64 array, shape (3,)
        The grey weights of R, G and B.
    edge_cos, edge_sin : float64 arrays
        Cosine and sine of the bin edges strictly between 0 and 180 degrees.
    cell_rows, cell_cols : int
        Cell size; only whole cells are visited.
    sums : float64 array, shape (N, H // cell_rows, W // cell_cols, slots)
        Zeroed histogram sums, filled in place.
    bins, magnitudes : arrays of shape (N, crop rows, crop cols)
        Uint8 and float64 work space.
    resume_at : intp array, shape (N,)
    ambiguous_pixels : intp array, shape (N * crop rows * crop cols,)
    ambiguous_gradients : float64 array, shape (N * crop rows * crop cols, 2)

    Returns
    -------
    n_ambiguous : int
        Number of pixels listed.
    """
    cdef fp_hog_setting setting
    cdef Py_ssize_t n = images.shape[0], height = images.shape[1], width = images.shape[2]
    cdef Py_ssize_t n_ambiguous
    if n == 0:
        return 0
    setting.grey = grey
    setting.take_sqrt = take_sqrt
    setting.edge_cos = &edge_cos[0] if edge_cos.shape[0] else NULL
    setting.edge_sin = &edge_sin[0] if edge_sin.shape[0] else NULL
    setting.n_edges = edge_cos.shape[0]
    setting.cell_rows, setting.cell_cols = cell_rows, cell_cols
    setting.crop_rows, setting.crop_cols = bins.shape[1], bins.shape[2]
    setting.slots = sums.shape[3]
    with nogil:
        n_ambiguous = fp_hog_float_cell_sums(
            &setting, &images[0, 0, 0, 0], n, height, width, &weights[0], &sums[0, 0, 0, 0], &bins[0, 0, 0],
            &magnitudes[0, 0, 0], &resume_at[0], &ambiguous_pixels[0], &ambiguous_gradients[0, 0],
        )
    if n_ambiguous < 0:
        raise MemoryError()
    return n_ambiguous


def binned_cell_sums(
    const uint8_t[:, :, ::1] bins,
    const double[:, :, ::1] magnitudes,
    const Py_ssize_t[::1] resume_at,
    Py_ssize_t cell_rows,
    Py_ssize_t cell_cols,
    double[:, :, :, ::1] sums,
):
    """Finish the sums :func:`float_cell_sums` stopped: each image from its pixel ``resume_at[i]`` on."""
    cdef Py_ssize_t n = bins.shape[0], crop_rows = bins.shape[1], crop_cols = bins.shape[2]
    cdef Py_ssize_t i, pixel, r, c
    with nogil:
        for i in range(n):
            for pixel in range(resume_at[i], crop_rows * crop_cols):
                r = pixel // crop_cols
                c = pixel % crop_cols
                sums[i, r // cell_rows, c // cell_cols, bins[i, r, c]] += magnitudes[i, r, c]


def grey_values(
    const uint8_t[:, :, :, ::1] images,
    const double[::1] weights,
    double[:, :, ::1] grey,
):
    """Fill ``grey`` (N, H, W) with the grey level of every pixel as :func:`float_cell_sums` computes it."""
    cdef Py_ssize_t i, n_pixels = images.shape[1] * images.shape[2]
    with nogil:
        for i in range(images.shape[0]):
            fp_hog_grey_values(&images[i, 0, 0, 0], n_pixels, &weights[0], &grey[i, 0, 0])
