# cython: language_level=3, boundscheck=False, wraparound=False
"""Triangle activations summed per region, in one compiled pass over the distances.

The arithmetic of ``KMeansWords(encoding="triangle")``: for each patch, its
squared distances to all words (one small matrix product per tile of
patches, see ``_triangle_tile.h``), the distances, their mean, and
``max(0, mean - z_k)`` added to the patch's row of sums. It runs with the
GIL released, so threads encoding parts of a batch run side by side.
"""

import numpy as np

cdef extern from "_triangle_tile.h" nogil:
    enum:
        FP_PANEL_WORDS
        FP_TILE_PATCHES
        FP_KERNEL_AVX512
        FP_KERNEL_AVX2
    int fp_triangle_kernel_available(int kernel)
    void fp_add_triangle_activations(
        const float *panels, Py_ssize_t n_panels, Py_ssize_t width, Py_ssize_t n_words,
        const float *rows, Py_ssize_t n_rows, const Py_ssize_t *targets, float *sums,
        float *tile_rows, float *distances, int kernel)

PANEL_WORDS = FP_PANEL_WORDS
"""Words per packed panel: ``panels`` has shape (ceil(n_words / PANEL_WORDS), width, PANEL_WORDS)."""

_KERNELS = {"avx512": FP_KERNEL_AVX512, "avx2": FP_KERNEL_AVX2}


def available_kernels():
    """Names of the tile kernels this CPU runs, fastest first (empty on CPUs without AVX2)."""
    return [name for name, kernel in _KERNELS.items() if fp_triangle_kernel_available(kernel)]


def add_triangle_activations(
    const float[:, ::1] rows,
    const float[:, :, ::1] panels,
    Py_ssize_t n_words,
    const Py_ssize_t[::1] targets,
    float[:, ::1] sums,
    str kernel,
):
    """Add ``max(0, mean_k(z) - z_k)`` of every patch to ``sums[targets[i]]``.

    Parameters
    ----------
    rows : float32 array, shape (n_rows, width)
        Whitened patches followed by ``||w||^2`` and 1.
    panels : float32 array, shape (n_panels, width, PANEL_WORDS)
        Columns ``[-2 c_k, 1, ||c_k||^2]`` of the words, PANEL_WORDS at a
        time, zero past ``n_words``.
    n_words : int
        Number of words K (the mean is taken over these).
    targets : intp array, shape (n_rows,)
        The row of ``sums`` each patch adds to.
    sums : float32 array, shape (n_targets, n_words)
        Updated in place.
    kernel : {"avx512", "avx2"}
        The tile kernel, one of :func:`available_kernels`. Their results
        agree to float32 rounding.
    """
    cdef Py_ssize_t n_rows = rows.shape[0], width = rows.shape[1], n_panels = panels.shape[0]
    if panels.shape[1] != width or panels.shape[2] != FP_PANEL_WORDS:
        raise ValueError(f"panels must have shape (n_panels, {width}, {FP_PANEL_WORDS}); "
                         f"got ({n_panels}, {panels.shape[1]}, {panels.shape[2]})")
    if not 0 < n_words <= n_panels * FP_PANEL_WORDS or sums.shape[1] != n_words:
        raise ValueError(f"n_words={n_words} does not fit panels of {n_panels * FP_PANEL_WORDS} "
                         f"words and sums of width {sums.shape[1]}")
    if targets.shape[0] != n_rows:
        raise ValueError(f"targets has {targets.shape[0]} entries for {n_rows} rows")
    if kernel not in _KERNELS or not fp_triangle_kernel_available(_KERNELS[kernel]):
        raise ValueError(f"kernel must be one of {available_kernels()} on this CPU; got {kernel!r}")
    cdef int kernel_code = _KERNELS[kernel]
    if n_rows == 0:
        return
    target_array = np.asarray(targets)
    if target_array.min() < 0 or target_array.max() >= sums.shape[0]:
        raise ValueError(f"targets must lie in [0, {sums.shape[0]})")
    cdef float[::1] tile_rows = np.empty(FP_TILE_PATCHES * width, dtype=np.float32)
    cdef float[::1] distances = np.empty(FP_TILE_PATCHES * n_panels * FP_PANEL_WORDS, dtype=np.float32)
    with nogil:
        fp_add_triangle_activations(
            &panels[0, 0, 0], n_panels, width, n_words, &rows[0, 0], n_rows, &targets[0],
            &sums[0, 0], &tile_rows[0], &distances[0], kernel_code)
