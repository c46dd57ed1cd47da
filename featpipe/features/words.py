"""K-means visual words: bag-of-words histograms and single-layer triangle features.

``KMeansWords`` learns a dictionary of small image patches ("words") with
k-means and describes each image by how its patches relate to the words,
pooled over image regions (Coates, Lee & Ng, 2011). On x86 CPUs with AVX2
or AVX-512 the triangle encoding runs in a compiled tile of
:mod:`featpipe.features._triangle` (distances, means and activations of 14
patches at a time, held in registers); elsewhere, and for the hard
encoding, it takes one float32 BLAS product per cache-sized block of
patches and numpy passes over it.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from featpipe.errors import ParameterError
from featpipe.features._triangle import PANEL_WORDS, add_triangle_activations, available_kernels
from featpipe.features.base import ImageFeatureExtractor, is_whole_number
from featpipe.features.patch_rows import image_patches, normalize_patches, sample_patches, zca_whitening
from featpipe.features.regions import RegionLayout, pyramid_levels
from featpipe.parallel import blas_threads

_ENCODINGS = ("triangle", "hard")
_PATCHES_PER_STEP = 4096


class KMeansWords(ImageFeatureExtractor):
    """Describe images by k-means patch words, pooled over image regions.

    ``fit`` samples ``n_patches`` random ``patch_size`` x ``patch_size``
    patches, normalizes each patch's brightness and contrast (subtract its
    mean, divide by ``sqrt(variance + contrast_eps)`` on the 0-255 scale),
    optionally ZCA-whitens them and learns ``n_words`` centroids with
    scikit-learn's ``MiniBatchKMeans``. ``transform`` takes every patch at
    ``stride``, applies the same normalization and whitening, computes its
    Euclidean distance ``z_k`` to every word and encodes it:

    - ``"triangle"``: ``f_k = max(0, mean_k(z) - z_k)``, sum-pooled over each
      region (Coates, Lee & Ng, 2011);
    - ``"hard"``: the nearest word, counted per region and divided by the
      number of patches in the region (a normalized bag of visual words).

    Parameters
    ----------
    n_words : int, default=1600
        Dictionary size K.
    patch_size : int, default=6
        Side of the square patches, in pixels.
    n_patches : int, default=400_000
        Random patches sampled (with replacement) to learn the words.
    stride : int, default=1
        Step between the patches taken in ``transform``, in pixels.
    whiten : bool, default=True
        ZCA-whiten the normalized patches before k-means and encoding.
    whiten_eps : float, default=0.1
        Added to the covariance eigenvalues before whitening.
    contrast_eps : float, default=10.0
        Added to each patch's variance (0-255 scale) before dividing by its
        square root.
    encoding : {"triangle", "hard"}, default="triangle"
        How a patch is described by its distances to the words.
    pooling : "global", "quadrants" or tuple of int, default="quadrants"
        Regions the encodings are pooled over: the whole grid of patch
        positions, its four quarters, or a spatial pyramid given by levels
        (level L cuts the grid into L x L cells; ``(1, 2)`` gives 5 regions).
        Uneven cuts give the extra row or column to the first cells.
    power : float, default=1.0
        Exponent applied to every pooled feature: 1 keeps the sums (or
        frequencies), 0.5 takes their square roots, which evens out the
        heavy tails of pooled counts before a linear head ("power
        normalization", Perronnin, Sanchez & Mensink, ECCV 2010).
    kmeans_batch_size : int, default=4096
        Mini-batch size of ``MiniBatchKMeans``.
    kmeans_max_iter : int, default=10
        Most passes of ``MiniBatchKMeans`` over the sampled patches (it may
        stop earlier when the inertia stops improving).
    patches_per_block : int, default=256
        Patches per BLAS product (hard encoding, and the triangle encoding
        on CPUs without a compiled tile); a block's distances
        (``patches_per_block x n_words`` float32) should fit in the L2
        cache. The compiled tiles work on 14 patches at a time.
    n_threads : int or None, default=None
        Threads that encode parts of a batch at the same time, each with a
        single-threaded BLAS. ``None`` uses as many threads as BLAS may
        currently use (one inside a joblib worker that limits BLAS).
    random_state : int, RandomState instance or None, default=None
        Seeds the patch sampling and k-means.

    Attributes
    ----------
    words_ : ndarray of float32, shape (n_words, patch_size * patch_size * 3)
        The centroids, in the space k-means ran in (whitened if ``whiten``).
    patch_mean_ : ndarray of float32, shape (patch_size * patch_size * 3,)
        Mean normalized patch, subtracted before whitening (zeros otherwise).
    whitening_ : ndarray of float32, shape (d, d) or None
        The symmetric ZCA matrix (``None`` without whitening).
    image_shape_ : tuple of int
        (H, W) seen in ``fit``.

    References
    ----------
    A. Coates, H. Lee and A. Y. Ng, "An Analysis of Single-Layer Networks
    in Unsupervised Feature Learning", AISTATS 2011.

    Examples
    --------
    >>> import numpy as np
    >>> from featpipe.features.words import KMeansWords
    >>> images = np.random.default_rng(0).integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)
    >>> words = KMeansWords(n_words=8, n_patches=2000, random_state=0).fit(images)
    >>> words.transform(images).shape
    (20, 32)
    """

    def __init__(
        self,
        n_words=1600,
        patch_size=6,
        n_patches=400_000,
        stride=1,
        whiten=True,
        whiten_eps=0.1,
        contrast_eps=10.0,
        encoding="triangle",
        pooling="quadrants",
        power=1.0,
        kmeans_batch_size=4096,
        kmeans_max_iter=10,
        patches_per_block=256,
        n_threads=None,
        random_state=None,
    ):
        self.n_words = n_words
        self.patch_size = patch_size
        self.n_patches = n_patches
        self.stride = stride
        self.whiten = whiten
        self.whiten_eps = whiten_eps
        self.contrast_eps = contrast_eps
        self.encoding = encoding
        self.pooling = pooling
        self.power = power
        self.kmeans_batch_size = kmeans_batch_size
        self.kmeans_max_iter = kmeans_max_iter
        self.patches_per_block = patches_per_block
        self.n_threads = n_threads
        self.random_state = random_state

    def min_image_size(self):
        """Smallest height and width: one patch."""
        return int(self.patch_size) if is_whole_number(self.patch_size) and self.patch_size > 0 else 1

    def n_features_out(self, image_shape):
        """``n_words`` times the number of pooling regions."""
        n_regions = sum(level * level for level in pyramid_levels(self.pooling))
        return int(self.n_words) * n_regions

    def _fit_images(self, images, y):
        self._check_params(images.shape[1:3])
        rng = check_random_state(self.random_state)
        patches = sample_patches(images, self.patch_size, self.n_patches, rng)
        normalize_patches(patches, self.contrast_eps)
        width = patches.shape[1]
        if self.whiten:
            self.patch_mean_, self.whitening_ = zca_whitening(patches, self.whiten_eps)
            patches -= self.patch_mean_
            patches = patches @ self.whitening_
        else:
            self.patch_mean_ = np.zeros(width, dtype=np.float32)
            self.whitening_ = None
        kmeans = MiniBatchKMeans(
            n_clusters=self.n_words,
            init="random",
            n_init=1,
            batch_size=self.kmeans_batch_size,
            max_iter=self.kmeans_max_iter,
            random_state=rng,
        )
        kmeans.fit(patches)
        self.words_ = kmeans.cluster_centers_.astype(np.float32)

    def _check_params(self, image_shape):
        for name in (
            "n_words", "patch_size", "n_patches", "stride", "kmeans_batch_size", "kmeans_max_iter", "patches_per_block"
        ):
            value = getattr(self, name)
            if not is_whole_number(value) or value < 1:
                raise ParameterError(f"{name} must be a positive integer; got {value!r}")
        if self.n_threads is not None and (not is_whole_number(self.n_threads) or self.n_threads < 1):
            raise ParameterError(f"n_threads must be None or a positive integer; got {self.n_threads!r}")
        if self.n_patches < self.n_words:
            raise ParameterError(
                f"n_patches ({self.n_patches}) must be at least n_words ({self.n_words}) "
                "so that k-means has a patch for every word"
            )
        if self.encoding not in _ENCODINGS:
            raise ParameterError(f"encoding must be one of {_ENCODINGS}; got {self.encoding!r}")
        for name in ("whiten_eps", "contrast_eps", "power"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.number)) or not value > 0:
                raise ParameterError(f"{name} must be a positive number; got {value!r}")
        RegionLayout(pyramid_levels(self.pooling), self._grid_shape(image_shape))

    def _grid_shape(self, image_shape):
        return tuple((side - self.patch_size) // self.stride + 1 for side in image_shape)

    def word_patches(self):
        """The words as image patches, whitening undone.

        Returns
        -------
        patches : ndarray of float32, shape (n_words, patch_size, patch_size, 3)
            Brightness- and contrast-normalized patches (zero mean, arbitrary
            scale): rescale each one for display.
        """
        if not hasattr(self, "words_"):
            raise ValueError("this KMeansWords is not fitted yet: call fit first")
        words = self.words_
        if self.whitening_ is not None:
            words = words @ np.linalg.inv(self.whitening_.astype(np.float64)) + self.patch_mean_
        side = self.patch_size
        return np.asarray(words, dtype=np.float32).reshape(-1, side, side, 3)

    def _transform_images(self, images):
        layout = RegionLayout(pyramid_levels(self.pooling), self._grid_shape(images.shape[1:3]))
        features = np.empty((len(images), layout.n_regions, self.n_words), dtype=np.float32)
        n_threads = self.n_threads or blas_threads()
        bounds = np.linspace(0, len(images), min(n_threads, len(images)) + 1).astype(int)
        work = [(images[start:stop], features[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:])]
        with threadpool_limits(limits=1, user_api="blas"):
            if len(work) == 1:
                self._encode(layout, *work[0])
            else:
                with ThreadPoolExecutor(len(work)) as pool:
                    list(pool.map(lambda args: self._encode(layout, *args), work))
        if self.power != 1:
            np.power(features, np.float32(self.power), out=features)
        return features.reshape(len(images), -1)

    def _encode(self, layout, images, features):
        """Encode ``images`` into ``features`` (n, n_regions, K), a few images at a time."""
        triangle = self.encoding == "triangle"
        if triangle:
            atom_sums_of = self._triangle_encoder(layout)
        else:
            right = _right_operand(self.words_, with_norm=False)
        images_per_step = max(1, _PATCHES_PER_STEP // layout.n_positions)
        for start in range(0, len(images), images_per_step):
            stop = min(start + images_per_step, len(images))
            rows = self._design_rows(images[start:stop], layout, with_norm=triangle)
            if triangle:
                features[start:stop] = np.matmul(layout.atom_region, atom_sums_of(rows))
            else:
                features[start:stop] = _hard_region_counts(rows, right, layout, self.patches_per_block)

    def _triangle_encoder(self, layout, kernel=None):
        """Design rows -> triangle sums per (image, atom, word).

        ``kernel`` is a compiled tile of ``available_kernels()`` or
        ``"numpy"``; ``None`` takes the fastest this CPU has.
        """
        kernel = kernel or _triangle_kernel()
        if kernel == "numpy":
            # The words along the rows of each block: see _block_atom_sums.
            right_t = np.ascontiguousarray(_right_operand(self.words_, with_norm=True).T)
            return lambda rows: _block_atom_sums(rows, right_t, layout, self.patches_per_block)
        panels = _word_panels(self.words_)
        return lambda rows: _tile_atom_sums(rows, panels, layout, self.n_words, kernel)

    def _design_rows(self, images, layout, with_norm):
        """Whitened patches in region order with ``[||w||^2,] 1`` appended, float32.

        The whitening product runs image by image, so it has the same shape
        whatever else is in the batch: BLAS kernels may treat the last rows
        of a matrix differently (OpenBLAS's matrix-vector product rounds
        them differently), and an image's features should not depend on
        its neighbours.
        """
        patches = image_patches(images, self.patch_size, self.stride, layout.order)
        normalize_patches(patches, self.contrast_eps)
        width = patches.shape[1]
        rows = np.empty((len(patches), width + 1 + with_norm), dtype=np.float32)
        whitened = rows[:, :width]
        if self.whitening_ is not None:
            per_image = (len(images), layout.n_positions)
            np.matmul(patches.reshape(*per_image, width), self.whitening_,
                      out=whitened.reshape(*per_image, width))
            whitened -= self.patch_mean_ @ self.whitening_
        else:
            whitened[...] = patches
        if with_norm:
            rows[:, width] = np.einsum("ij,ij->i", whitened, whitened)
        rows[:, -1] = 1.0
        return rows.reshape(len(images), layout.n_positions, -1)


def _right_operand(words, with_norm):
    """``[-2 C^T; 1; ||c||^2]`` (or without the row of ones): distances in one GEMM.

    Rows ``[w, ||w||^2, 1]`` times it give ``||w - c||^2``; rows ``[w, 1]``
    times the version without the ones give ``||w - c||^2 - ||w||^2``, which
    has the same nearest word.
    """
    ones = np.ones((1 if with_norm else 0, len(words)), dtype=np.float32)
    norms = np.einsum("ij,ij->i", words, words)[np.newaxis]
    return np.vstack([-2 * words.T, ones, norms]).astype(np.float32)


def _word_panels(words):
    """The distance operand ``[-2 C^T; 1; ||c||^2]``, packed for the compiled tile.

    Returns float32 of shape (n_panels, width, PANEL_WORDS): panel ``p``
    holds the columns of words ``p * PANEL_WORDS`` onwards, zero past the
    last word (a zero column adds nothing to any sum).
    """
    right = _right_operand(words, with_norm=True)
    width, n_words = right.shape
    n_panels = -(-n_words // PANEL_WORDS)
    padded = np.zeros((width, n_panels * PANEL_WORDS), dtype=np.float32)
    padded[:, :n_words] = right
    return np.ascontiguousarray(padded.reshape(width, n_panels, PANEL_WORDS).transpose(1, 0, 2))


def _triangle_kernel():
    """The compiled tile this CPU runs (the fastest of ``available_kernels()``), else ``"numpy"``."""
    return next(iter(available_kernels()), "numpy")


def _tile_atom_sums(rows, panels, layout, n_words, kernel):
    """Sum of triangle activations per (image, atom, word), float32, by a compiled tile.

    ``rows`` (n_images, n_positions, width) are in region order; each patch
    adds ``max(0, mean_k(z) - z_k)`` to the sums of its image and atom in
    :func:`featpipe.features._triangle.add_triangle_activations`.
    """
    n_images, n_positions, width = rows.shape
    sums = np.zeros((n_images * layout.n_atoms, n_words), dtype=np.float32)
    image_offsets = np.arange(n_images, dtype=np.intp)[:, np.newaxis] * layout.n_atoms
    targets = (image_offsets + layout.position_atom).ravel()
    add_triangle_activations(rows.reshape(-1, width), panels, n_words, targets, sums, kernel)
    return sums.reshape(n_images, layout.n_atoms, n_words)


def _block_atom_sums(rows, right_t, layout, patches_per_block):
    """Sum of triangle activations per (image, atom, word), float32, in numpy.

    For CPUs without a compiled tile. The loop runs over cache-sized blocks
    (a piece of one atom of one image, at most ``patches_per_block``
    patches), so a block's distances stay in L2 from the BLAS product
    through the passes that follow. A block holds one word per row and one
    patch per column: the per-patch means are then a contiguous row that
    numpy's ``minimum`` takes at full SIMD speed. Since
    ``max(0, m - z) = m - min(z, m)``, the sums are kept as the sum of the
    patch means ``m`` minus the sum of ``min(z_k, m)``.
    """
    n_words = right_t.shape[0]
    sums = np.zeros((len(rows), layout.n_atoms, n_words), dtype=np.float32)
    mean_sums = np.zeros((len(rows), layout.n_atoms), dtype=np.float64)
    pieces = layout.pieces(patches_per_block)
    largest = max(stop - start for start, stop, _ in pieces)
    # One buffer; each piece takes a contiguous (words x size) view of its start.
    buffer = np.empty(n_words * largest, dtype=np.float32)
    mean_weights = np.full(n_words, 1.0 / n_words, dtype=np.float32)
    ones = np.ones(largest, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        for image_rows, image_sums, image_mean_sums in zip(rows, sums, mean_sums):
            for start, stop, atom in pieces:
                size = stop - start
                block = buffer[:n_words * size].reshape(n_words, size)
                means = _clipped_distances(image_rows[start:stop], right_t, block, mean_weights)
                image_sums[atom] -= np.matmul(block, ones[:size])
                image_mean_sums[atom] += means.sum(dtype=np.float64)
    sums += mean_sums[:, :, np.newaxis].astype(np.float32)
    # A true zero comes out as a float32 rounding error of either sign.
    return np.maximum(sums, 0.0, out=sums)


def _clipped_distances(rows, right_t, block, mean_weights):
    """Fill ``block`` (words x patches) with ``min(z_k, mean(z))``; return the means.

    One GEMM gives the squared distances (``rows`` end in ``||w||^2, 1``,
    ``right_t`` in ``1, ||c||^2``), then one sqrt, one GEMV for the patch
    means and one minimum, all in place. Call it under
    ``np.errstate(invalid="ignore")``: a distance of zero can come out as a
    slightly negative square whose root is repaired here.
    """
    np.matmul(right_t, rows.T, out=block)
    np.sqrt(block, out=block)
    means = np.matmul(mean_weights, block)
    if np.isnan(means).any():
        broken = np.isnan(means)
        block[:, broken] = np.nan_to_num(block[:, broken], nan=0.0)
        means[broken] = block[:, broken].mean(axis=0)
    np.minimum(block, means, out=block)
    return means


def _hard_region_counts(rows, right, layout, patches_per_block):
    """Nearest-word counts per (image, region), divided by the region's size."""
    n_images, n_positions, width = rows.shape
    flat_rows = rows.reshape(-1, width)
    nearest = np.empty(len(flat_rows), dtype=np.intp)
    for start in range(0, len(flat_rows), patches_per_block):
        stop = min(start + patches_per_block, len(flat_rows))
        nearest[start:stop] = np.argmin(flat_rows[start:stop] @ right, axis=1)
    n_words = right.shape[1]
    atom = np.tile(layout.position_atom, n_images)
    image = np.repeat(np.arange(n_images), n_positions)
    counts = np.bincount((image * layout.n_atoms + atom) * n_words + nearest, minlength=n_images * layout.n_atoms * n_words)
    counts = counts.reshape(n_images, layout.n_atoms, n_words).astype(np.float32)
    region_counts = np.matmul(layout.atom_region, counts)
    return region_counts / layout.region_sizes[:, np.newaxis]
