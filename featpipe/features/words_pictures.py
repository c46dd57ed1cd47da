"""A picture of a k-means dictionary: the learned words as a montage of patches."""

import numpy as np


def word_montage(patches, gap=1):
    """Tile patches into one RGB image, each rescaled to [0, 1] on its own.

    Parameters
    ----------
    patches : ndarray, shape (n_words, patch_size, patch_size, 3)
        Patches in any units (e.g. from ``KMeansWords.word_patches``).
    gap : int, default=1
        White pixels between neighbouring patches.

    Returns
    -------
    montage : ndarray of float32, shape (rows * (p + gap) + gap, cols * (p + gap) + gap, 3)
        ``cols = ceil(sqrt(n_words))`` patches per row, row by row.
    """
    patches = np.asarray(patches, dtype=np.float32)
    if patches.ndim != 4 or patches.shape[-1] != 3 or len(patches) == 0:
        raise ValueError(
            f"expected patches of shape (n_words, p, p, 3) with n_words >= 1; got shape {patches.shape}"
        )
    if not np.all(np.isfinite(patches)):
        raise ValueError("patches contain NaN or infinite values")
    low = patches.min(axis=(1, 2, 3), keepdims=True)
    span = patches.max(axis=(1, 2, 3), keepdims=True) - low
    scaled = (patches - low) / np.where(span > 0, span, 1)
    n_words, height, width = patches.shape[:3]
    n_cols = int(np.ceil(np.sqrt(n_words)))
    n_rows = -(-n_words // n_cols)
    tiles = np.ones((n_rows * n_cols, height + gap, width + gap, 3), dtype=np.float32)
    tiles[:n_words, :height, :width] = scaled
    rows_of_tiles = tiles.reshape(n_rows, n_cols, height + gap, width + gap, 3).transpose(0, 2, 1, 3, 4)
    montage = np.ones((n_rows * (height + gap) + gap, n_cols * (width + gap) + gap, 3), dtype=np.float32)
    montage[gap:, gap:] = rows_of_tiles.reshape(n_rows * (height + gap), n_cols * (width + gap), 3)
    return montage


def plot_words(words, ax=None):
    """Draw the learned words as a montage of small patches (whitening undone).

    Parameters
    ----------
    words : KMeansWords or ndarray of shape (n_words, p, p, 3)
        A fitted :class:`featpipe.features.words.KMeansWords`, or patches.
    ax : matplotlib.axes.Axes or None
        Where to draw; a new figure's axes if ``None``.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> from featpipe.features.words_pictures import plot_words
    >>> ax = plot_words(np.random.default_rng(0).normal(size=(16, 6, 6, 3)))
    >>> ax.get_images()[0].get_array().shape
    (29, 29, 3)
    """
    patches = words.word_patches() if hasattr(words, "word_patches") else words
    montage = word_montage(patches)
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(montage, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{len(np.asarray(patches))} k-means words")
    return ax
