"""Pictures of what the features see: HOG glyphs, colour histogram bars and k-means words.

The report module calls these to put a face on the numbers; each draws into
a matplotlib Axes (a new one when none is given) and returns it.
"""

import numpy as np
from matplotlib.colors import hsv_to_rgb
from matplotlib.figure import Figure
from skimage.draw import line

from featpipe.features.base import check_images
from featpipe.features.color import ColorHistogram
from featpipe.features.hog import HOG


def _new_axes(ax):
    return Figure(figsize=(4, 3)).subplots() if ax is None else ax


def hog_glyphs(image, hog=None):
    """HOG glyph image, as ``skimage.feature.hog(..., visualize=True)`` draws it.

    In every cell one line per orientation bin passes through the cell
    centre, perpendicular to the bin's middle gradient direction (so along
    the edge it stands for), with intensity equal to the cell's mean
    gradient magnitude in that bin (before block normalization).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3) or (H, W)
        One image, uint8 or float in [0, 1].
    hog : HOG or None
        Parameters to use (the first cell size of a multi-scale HOG);
        ``None`` means ``HOG()``.

    Returns
    -------
    glyphs : ndarray of float64, shape (H, W)
    """
    hog = HOG() if hog is None else hog
    params = hog.get_params()
    cell = HOG(**params)._checked_params()[1][0]
    params.update(pixels_per_cell=cell, block_norm="none")
    cells_hog = HOG(**params)
    batch = check_images(np.asarray(image)[np.newaxis], cells_hog.min_image_size())
    n_rows, n_cols = batch.shape[1:3]
    n_cells = (n_rows // cell[0], n_cols // cell[1])
    histogram = cells_hog.fit_transform(batch).reshape(n_cells + (-1,))
    orientations = histogram.shape[-1]
    radius = min(cell) // 2 - 1
    middle = np.pi * (np.arange(orientations) + 0.5) / orientations
    d_row, d_col = radius * np.sin(middle), radius * np.cos(middle)
    glyphs = np.zeros((n_rows, n_cols))
    for cell_row in range(n_cells[0]):
        for cell_col in range(n_cells[1]):
            centre = (cell_row * cell[0] + cell[0] // 2, cell_col * cell[1] + cell[1] // 2)
            for orientation in range(orientations):
                rows, cols = line(
                    int(centre[0] - d_col[orientation]),
                    int(centre[1] + d_row[orientation]),
                    int(centre[0] + d_col[orientation]),
                    int(centre[1] - d_row[orientation]),
                )
                glyphs[rows, cols] += histogram[cell_row, cell_col, orientation]
    return glyphs


def plot_hog(image, hog=None, ax=None):
    """Draw an image's HOG glyphs (see :func:`hog_glyphs`) into ``ax``.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3) or (H, W)
        One image, uint8 or float in [0, 1].
    hog : HOG or None
        Parameters to use; ``None`` means ``HOG()``.
    ax : matplotlib.axes.Axes or None
        Where to draw; a new figure's Axes when ``None``.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> from featpipe.features.plotting import plot_hog
    >>> image = np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1))
    >>> plot_hog(image).get_title()
    'HOG glyphs'
    """
    ax = _new_axes(ax)
    ax.imshow(hog_glyphs(image, hog), cmap="gray", interpolation="nearest")
    ax.set_title("HOG glyphs")
    ax.set_axis_off()
    return ax


def _bin_colours(channel, n_bins):
    """RGB colour of each bin's centre: hue at full saturation and value,
    saturation as a red of that saturation, value as a grey of that value."""
    centre = (np.arange(n_bins) + 0.5) / n_bins
    hsv = {
        "h": np.stack([centre, np.ones(n_bins), np.ones(n_bins)], axis=1),
        "s": np.stack([np.zeros(n_bins), centre, np.ones(n_bins)], axis=1),
        "v": np.stack([np.zeros(n_bins), np.zeros(n_bins), centre], axis=1),
    }[channel]
    return hsv_to_rgb(hsv)


def plot_color_histogram(image, color=None, ax=None):
    """Bar chart of an image's colour histogram, bars coloured by their bin.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3) or (H, W)
        One image, uint8 or float in [0, 1].
    color : ColorHistogram or None
        Parameters to use (its grid is ignored: the chart shows the whole
        image); ``None`` means ``ColorHistogram()``, the hue histogram.
    ax : matplotlib.axes.Axes or None
        Where to draw; a new figure's Axes when ``None``.

    Returns
    -------
    ax : matplotlib.axes.Axes
        Holds one bar per bin; hue bars take the hue of their bin centre,
        joint bins the colour of their (h, s, v) centre.

    Examples
    --------
    >>> import numpy as np
    >>> from featpipe.features.plotting import plot_color_histogram
    >>> image = np.zeros((8, 8, 3), dtype=np.uint8)
    >>> len(plot_color_histogram(image).patches)
    10
    """
    params = (ColorHistogram() if color is None else color).get_params()
    params.update(grid=(1, 1))
    whole = ColorHistogram(**params)
    channels, bins, _ = whole._checked_params()
    batch = check_images(np.asarray(image)[np.newaxis])
    heights = whole.fit_transform(batch)[0]
    if whole.joint:
        centres = np.meshgrid(*[(np.arange(count) + 0.5) / count for count in bins], indexing="ij")
        hsv = np.tile([0.0, 1.0, 1.0], (heights.size, 1))
        for position, channel in enumerate(channels):
            hsv[:, "hsv".index(channel)] = centres[position].ravel()
        colours = hsv_to_rgb(hsv)
        labels = [f"{'+'.join(channels)} joint"]
    else:
        colours = np.concatenate([_bin_colours(channel, count) for channel, count in zip(channels, bins)])
        labels = list(channels)
    ax = _new_axes(ax)
    ax.bar(np.arange(heights.size), heights, color=colours, edgecolor="black", linewidth=0.5)
    ax.set_xlabel(f"bin ({', '.join(labels)}; 0-255 in equal steps)")
    ax.set_ylabel("fraction of pixels")
    ax.set_title("Colour histogram")
    return ax


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
    >>> from featpipe.features.plotting import plot_words
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
