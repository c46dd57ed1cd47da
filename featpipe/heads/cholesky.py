"""Cholesky factor and solve of a large symmetric positive definite matrix, in place, block by block.

The least-squares start of the heads solves ``A W = B`` with ``A`` the
D x D Gram matrix of the features. scipy's LAPACK (the OpenBLAS it bundles
has 32-bit integers) crashes with a segmentation fault once ``A`` is near
2 GiB (D about 16,300 in float64; benchmarks/RESULTS.md, section
words-svm-round-3), and a copy of ``A`` would not fit the memory budget
anyway. So the factor is computed in place by blocks of columns: scipy
factors and solves only blocks of ``block x block`` and ``block x D``,
and numpy's BLAS (64-bit integers) does the large trailing updates, which
hold nearly all of the ``D^3 / 3`` operations.
"""

import numpy as np
from scipy.linalg import cholesky, solve_triangular

DEFAULT_BLOCK = 2048
"""Columns factored at a time: a block's factor is 32 MB in float64."""


def cholesky_in_place(a, block=DEFAULT_BLOCK):
    """Overwrite the upper triangle of ``a`` with ``U``, the upper Cholesky factor of ``a`` (``a = U^T U``).

    Parameters
    ----------
    a : ndarray of float32 or float64, shape (D, D)
        Its upper triangle holds the matrix (the rest is never read, and is
        left as it was outside the diagonal blocks); the factor keeps its
        dtype.
    block : int, default=2048

    Returns
    -------
    a : ndarray
        The same array.

    Raises
    ------
    numpy.linalg.LinAlgError
        When the matrix is not positive definite.
    """
    n = len(a)
    for start in range(0, n, block):
        stop = min(start + block, n)
        a[start:stop, start:stop] = cholesky(a[start:stop, start:stop], lower=False, check_finite=False)
        if stop == n:
            break
        factor = a[start:stop, start:stop]
        a[start:stop, stop:] = solve_triangular(factor, a[start:stop, stop:], trans="T", check_finite=False)
        panel = a[start:stop, stop:]
        # Trailing update A[rest, rest] -= panel^T panel, upper triangle only, one column block at a time.
        for first in range(stop, n, block):
            last = min(first + block, n)
            a[stop:last, first:last] -= panel[:, :last - stop].T @ panel[:, first - stop:last - stop]
    return a


def cholesky_solve(u, b, block=DEFAULT_BLOCK):
    """Solve ``U^T U x = b`` for the upper factor ``u`` that :func:`cholesky_in_place` left.

    Parameters
    ----------
    u : ndarray of float32 or float64, shape (D, D)
        Upper triangle: the factor (the rest is ignored).
    b : ndarray of shape (D, K)
    block : int, default=2048
        The block size the factor was computed with (any size gives the
        same answer up to rounding).

    Returns
    -------
    x : ndarray of float64, shape (D, K)
    """
    n = len(u)
    bounds = list(range(0, n, block)) + [n]
    x = np.array(b, dtype=np.float64)
    for start, stop in zip(bounds[:-1], bounds[1:]):  # U^T y = b, top block first
        x[start:stop] -= u[:start, start:stop].T @ x[:start]
        x[start:stop] = solve_triangular(u[start:stop, start:stop], x[start:stop], trans="T", check_finite=False)
    for start, stop in reversed(list(zip(bounds[:-1], bounds[1:]))):  # U x = y, bottom block first
        x[start:stop] -= u[start:stop, stop:] @ x[stop:]
        x[start:stop] = solve_triangular(u[start:stop, start:stop], x[start:stop], check_finite=False)
    return x
