# cython: language_level=3, boundscheck=False, wraparound=False
"""Soft-threshold activations summed per region, in one compiled pass over a block of codes.

The arithmetic of :class:`featpipe.features.patches.SoftThresholdPatches`
after its matrix product: each patch's codes ``c_k = d_k . x`` (one BLAS
product per block of patches) become ``max(0, c_k - alpha)`` and
``max(0, -c_k - alpha)`` (Coates & Ng, ICML 2011), added straight to the
patch's row of region sums, so the activations are never stored. It runs
with the GIL released, so threads encoding parts of a batch run side by side.
"""

import numpy as np

cdef extern from *:
    """
    /* Both polarities of one patch's codes, added to its row of sums (K then K). GCC and clang
       on x86-64 Linux compile it three times (AVX-512, AVX2, baseline SSE2) and pick one per CPU
       at load time. */
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && defined(__linux__)
    __attribute__((target_clones("avx512f", "avx2", "default")))
    #endif
    static void fp_add_soft_threshold(const float *restrict codes, Py_ssize_t n_atoms,
                                             float alpha, float *restrict target)
    {
        float *restrict negative = target + n_atoms;
        for (Py_ssize_t k = 0; k < n_atoms; k++) {
            float above = codes[k] - alpha, below = -codes[k] - alpha;
            target[k] += above > 0.0f ? above : 0.0f;
            negative[k] += below > 0.0f ? below : 0.0f;
        }
    }
    """
    void fp_add_soft_threshold(const float *codes, Py_ssize_t n_atoms, float alpha, float *target) nogil


def add_soft_threshold(const float[:, ::1] codes, float alpha, const Py_ssize_t[::1] targets,
                       float[:, ::1] sums):
    """Add ``max(0, c - alpha)`` and ``max(0, -c - alpha)`` of every patch to ``sums[targets[i]]``.

    Parameters
    ----------
    codes : float32 array, shape (n_rows, n_atoms)
        Each patch's dot products with the atoms.
    alpha : float
        The threshold, >= 0.
    targets : intp array, shape (n_rows,)
        The row of ``sums`` each patch adds to.
    sums : float32 array, shape (n_targets, 2 * n_atoms)
        Updated in place: columns ``0 .. n_atoms-1`` take the positive
        part, the next ``n_atoms`` the negative part.
    """
    cdef Py_ssize_t n_rows = codes.shape[0], n_atoms = codes.shape[1], row
    if sums.shape[1] != 2 * n_atoms:
        raise ValueError(f"sums must have 2 * {n_atoms} columns; got {sums.shape[1]}")
    if targets.shape[0] != n_rows:
        raise ValueError(f"targets has {targets.shape[0]} entries for {n_rows} rows")
    if not alpha >= 0:
        raise ValueError(f"alpha must be a non-negative number; got {alpha!r}")
    if n_rows == 0 or n_atoms == 0:
        return
    target_array = np.asarray(targets)
    if target_array.min() < 0 or target_array.max() >= sums.shape[0]:
        raise ValueError(f"targets must lie in [0, {sums.shape[0]})")
    with nogil:
        for row in range(n_rows):
            fp_add_soft_threshold(&codes[row, 0], n_atoms, alpha, &sums[targets[row], 0])
