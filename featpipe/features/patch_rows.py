"""Image patches as float32 rows: sampling, extraction, contrast normalization, ZCA whitening.

The first steps shared by the single-layer patch features of
:mod:`featpipe.features.words` (k-means words) and
:mod:`featpipe.features.patches` (soft-threshold patch dictionaries), as in
Coates, Lee & Ng (AISTATS 2011): a patch is a ``patch_size`` x
``patch_size`` x 3 window ravelled in (row, column, channel) order,
brightness- and contrast-normalized, then optionally ZCA-whitened.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def image_patches(images, patch_size, stride, order):
    """All patches at ``stride`` as float32 rows (n * len(order), patch_size**2 * 3).

    ``order`` lists the patch positions (row-major indices into the grid of
    positions) in the order the rows of each image come out.
    """
    windows = sliding_window_view(images, (patch_size, patch_size), axis=(1, 2))[:, ::stride, ::stride]
    grid_cols = windows.shape[2]
    gathered = windows[:, order // grid_cols, order % grid_cols]
    patches = np.empty((len(images), len(order), patch_size, patch_size, 3), dtype=np.float32)
    np.copyto(patches, gathered.transpose(0, 1, 3, 4, 2))
    return patches.reshape(len(images) * len(order), -1)


def sample_patches(images, patch_size, n_patches, rng):
    """``n_patches`` random patches (any image, any position) as float32 rows."""
    n_images, height, width = images.shape[:3]
    image = rng.randint(n_images, size=n_patches)
    row = rng.randint(height - patch_size + 1, size=n_patches)
    col = rng.randint(width - patch_size + 1, size=n_patches)
    windows = sliding_window_view(images, (patch_size, patch_size), axis=(1, 2))
    patches = np.empty((n_patches, patch_size, patch_size, 3), dtype=np.float32)
    np.copyto(patches, windows[image, row, col].transpose(0, 2, 3, 1))
    return patches.reshape(n_patches, -1)


def normalize_patches(patches, contrast_eps):
    """In place: subtract each row's mean, divide by sqrt(sample variance + eps).

    The row sums come from ``einsum`` and the division is a product with
    the reciprocals: the same values as ``mean(axis=1)`` and ``/`` to
    float32 rounding, in a third of the time on rows of 108 values. (A BLAS
    matrix-vector product is faster still, but rounds the last rows of a
    matrix differently, so a patch's value would depend on the batch.)
    """
    width = patches.shape[1]
    patches -= (np.einsum("ij->i", patches) * np.float32(1.0 / width))[:, np.newaxis]
    variance = np.einsum("ij,ij->i", patches, patches) / np.float32(width - 1)
    patches *= (1.0 / np.sqrt(variance + np.float32(contrast_eps)))[:, np.newaxis]


def zca_whitening(patches, eps):
    """Mean and symmetric ZCA matrix ``U diag(1 / sqrt(lambda + eps)) U^T`` of the rows."""
    mean = patches.mean(axis=0, dtype=np.float64)
    covariance = np.zeros((patches.shape[1],) * 2)
    for start in range(0, len(patches), 65536):
        centred = patches[start:start + 65536] - mean
        covariance += centred.T @ centred
    covariance /= len(patches) - 1
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    whitening = (eigenvectors / np.sqrt(np.maximum(eigenvalues, 0) + eps)) @ eigenvectors.T
    return mean.astype(np.float32), whitening.astype(np.float32)


def mirrored_columns(patch_size):
    """Column permutation of a patch row that mirrors the patch left to right.

    ``rows[:, mirrored_columns(p)]`` are the rows of the horizontally
    flipped patches (rows in (row, column, channel) order).
    """
    index = np.arange(patch_size * patch_size * 3).reshape(patch_size, patch_size, 3)
    return index[:, ::-1].ravel()


def leading_whitened_directions(whitening, n_components):
    """The ``n_components`` directions of largest variance of the patches a ZCA matrix whitens.

    ZCA whitening ``U diag(1 / sqrt(lambda + eps)) U^T`` shares its
    eigenvectors with the patch covariance, and its smallest eigenvalues
    belong to the largest variances ``lambda`` (of the patches and of the
    whitened patches, whose variances are ``lambda / (lambda + eps)``).
    When ``whitening`` commutes with the mirror permutation, each direction
    is mirror-symmetric or mirror-antisymmetric (eigenvalues being
    distinct), so projecting onto them commutes with mirroring.

    Returns
    -------
    components : ndarray of float32, shape (n_components, d)
        Orthonormal rows, the largest variance first.
    """
    _, eigenvectors = np.linalg.eigh(whitening.astype(np.float64))
    return np.ascontiguousarray(eigenvectors[:, :n_components].T, dtype=np.float32)
