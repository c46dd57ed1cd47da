# cython: language_level=3, boundscheck=False, wraparound=False
"""Pooled sums of clipped distances for the triangle encoding of k-means words.

:func:`featpipe.features.words._triangle_atom_sums` needs, per block of
patches, ``sum over patches of min(z_k, mean(z))`` for every word k. In numpy
that is a ``minimum`` (whose per-row broadcast runs at a fraction of its
speed) and a matrix-vector product: two passes over the block. Here it is
one pass that the compiler vectorizes over the words, with the GIL released.
"""


def add_clipped_distances(const float[:, ::1] distances, const float[::1] means, float[::1] sums):
    """Add ``min(distances[p, k], means[p])`` over the rows p to ``sums[k]``, in place.

    Parameters
    ----------
    distances : float32 array, shape (n_patches, n_words), C-contiguous
        Distances of each patch to each word (no NaN).
    means : float32 array, shape (n_patches,)
        Each patch's mean distance.
    sums : float32 array, shape (n_words,)
        Running sums, updated in place.
    """
    cdef Py_ssize_t patch, word
    cdef Py_ssize_t n_patches = distances.shape[0], n_words = distances.shape[1]
    cdef float mean, distance
    with nogil:
        for patch in range(n_patches):
            mean = means[patch]
            for word in range(n_words):
                distance = distances[patch, word]
                sums[word] += distance if distance < mean else mean
