"""Pictures of what a pipeline learned and sees, for the comparison report.

Class templates (a raw-pixel linear classifier's weights, one image per
class), HOG glyphs and colour histograms of example images, the visual-word
montage of k-means pipelines, and test images a pipeline got wrong. The
HOG, colour and word drawings come from :mod:`featpipe.features.plotting`;
a picture is drawn when its data exist (a pipeline with that feature, example
images), and left out otherwise.
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from featpipe.datasets import round_robin_by_class
from featpipe.features.plotting import plot_color_histogram, plot_hog, plot_words
from featpipe.model_io import load_model

DPI = 100
N_MISTAKES = 8
N_EXAMPLE_IMAGES = 4


class ModelLoader:
    """Loads each run's model.skops on first use; a run without one gives None."""

    def __init__(self, entries):
        self.entries = entries
        self._models = {}

    def get(self, index):
        """The trained Pipeline of run ``index``, or None when its folder has no model."""
        if index not in self._models:
            path = Path(self.entries[index]["run_dir"]) / "model.skops"
            self._models[index] = load_model(path) if path.is_file() else None
        return self._models[index]

    def extractor(self, feature_names):
        """The first fitted extractor named one of ``feature_names`` in any run's model."""
        for index, entry in enumerate(self.entries):
            if any(step["name"] in feature_names for step in entry["pipeline"]["features"]):
                extractor = feature_extractor(self.get(index), feature_names)
                if extractor is not None:
                    return extractor
        return None


def feature_extractor(model, feature_names):
    """The fitted extractor named one of ``feature_names`` in a saved Pipeline, or None."""
    if model is None:
        return None
    union = model.named_steps.get("features")
    for name, extractor in getattr(union, "transformer_list", []):
        if name in feature_names:
            return extractor
    return None


def load_examples(entry):
    """A run's misclassified test examples (images, y_true, y_pred), or None."""
    path = Path(entry["run_dir"]) / "examples.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as examples:
        arrays = {key: examples[key] for key in ("images", "y_true", "y_pred") if key in examples}
    if len(arrays) < 3 or len(arrays["images"]) == 0:
        return None
    return arrays


def raw_weights(entry, model):
    """The head's weights on the raw-pixel columns, per class, in pixel units.

    With a standard scaler before the head, a weight on a standardized
    column equals ``w / scale`` on the raw value, so the weights are divided
    by the scale to show what the classifier does to the pixels themselves.

    Returns
    -------
    weights : ndarray of shape (n_classes, H, W, 3) or (n_classes, H, W), or None
        None when the pipeline has no raw-pixel feature, no linear head, or
        raw columns that do not form an image.
    """
    names = [step["name"] for step in entry["pipeline"]["features"]]
    if model is None or "raw" not in names:
        return None
    coef = getattr(model.named_steps["head"], "coef_", None)
    if coef is None:
        return None
    widths = entry["feature_widths"]
    start = sum(int(widths[name]) for name in names[: names.index("raw")])
    width = int(widths["raw"])
    weights = np.asarray(coef, dtype=np.float64)[:, start:start + width]
    scale = getattr(model.named_steps.get("normalize"), "scale_", None)
    if scale is not None:
        weights = weights / np.asarray(scale, dtype=np.float64)[start:start + width]
    height, width_px = _raw_image_shape(feature_extractor(model, ("raw",)), entry["dataset"].get("image_size") or 32)
    if width == height * width_px * 3:
        return weights.reshape(len(weights), height, width_px, 3)
    if width == height * width_px:
        return weights.reshape(len(weights), height, width_px)
    return None


def _raw_image_shape(extractor, side):
    """(rows, cols) of the images a raw-pixel extractor flattens (after its optional resize)."""
    size = getattr(extractor, "image_size", None)
    if size is not None:
        return (int(size), int(size)) if np.isscalar(size) else tuple(int(value) for value in size)
    return tuple(getattr(extractor, "image_shape_", (side, side)))


def image_grid(images, titles, title, n_cols, title_lines=1):
    """Tile images (N, H, W, 3) in 0-1 into one picture, each under its title.

    One axes holds the whole montage, which draws far faster than one axes
    per image.
    """
    count, height, width = images.shape[:3]
    n_rows = -(-count // n_cols)
    gap_x, gap_y = max(2, width // 8), int(np.ceil(height * 0.1 * title_lines)) + 2
    cell_h, cell_w = height + gap_y, width + gap_x
    padded = np.ones((n_rows * n_cols, cell_h, cell_w, 3))
    padded[:count, gap_y:, gap_x // 2:gap_x // 2 + width] = images
    canvas = padded.reshape(n_rows, n_cols, cell_h, cell_w, 3).transpose(0, 2, 1, 3, 4)
    canvas = canvas.reshape(n_rows * cell_h, n_cols * cell_w, 3)
    scale = 4.5 * 32 / max(height, width)
    title_px = 34
    figure = Figure(figsize=(canvas.shape[1] * scale / DPI, (canvas.shape[0] * scale + title_px) / DPI), dpi=DPI)
    ax = figure.add_axes((0, 0, 1, canvas.shape[0] * scale / (canvas.shape[0] * scale + title_px)))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for index, text in enumerate(titles):
        row, col = divmod(index, n_cols)
        ax.text(col * cell_w + cell_w / 2 - 0.5, row * cell_h + gap_y - 1.5, text,
                ha="center", va="bottom", fontsize=8, linespacing=1.1)
    figure.suptitle(title, y=1 - 4 / (canvas.shape[0] * scale + title_px), va="top")
    return figure


def class_templates(entry, model):
    """One image per class of the raw-pixel weights, scaled together to 0-1."""
    weights = raw_weights(entry, model)
    if weights is None:
        return None
    low, high = weights.min(), weights.max()
    images = (weights - low) / (high - low) if high > low else np.zeros_like(weights)
    if images.ndim == 3:
        images = np.repeat(images[..., np.newaxis], 3, axis=-1)
    classes = [str(name) for name in entry["dataset"].get("classes") or range(len(images))]
    return image_grid(images, classes, f"{entry['name']}: raw-pixel templates", n_cols=min(len(images), 5))


def _example_images(entries, count):
    """Up to ``count`` test images of different true classes, from all runs' examples."""
    found = [(entry, examples) for entry in entries if (examples := load_examples(entry)) is not None]
    if not found:
        return None, None
    images = np.concatenate([examples["images"] for _, examples in found])
    labels = np.concatenate([examples["y_true"] for _, examples in found])
    chosen = round_robin_by_class(labels)[:count]
    classes = found[0][0]["dataset"].get("classes") or []
    names = [str(classes[label]) if label < len(classes) else str(label) for label in labels[chosen]]
    return images[chosen], names


def hog_and_color(results, models):
    """Example images beside their HOG glyphs and colour histograms."""
    hog = models.extractor(("hog",))
    color = models.extractor(("color",))
    panels = [("HOG", lambda image, ax: plot_hog(image, hog=hog, ax=ax)),
              ("colour histogram", lambda image, ax: plot_color_histogram(image, color=color, ax=ax))]
    images, names = _example_images(results["pipelines"], N_EXAMPLE_IMAGES)
    if images is None:
        return None
    figure = Figure(figsize=(2.4 * (1 + len(panels)), 2.2 * len(images)), dpi=DPI, layout="constrained")
    axes = figure.subplots(len(images), 1 + len(panels), squeeze=False)
    for row, (image, name) in enumerate(zip(images, names)):
        axes[row, 0].imshow(image, interpolation="nearest")
        axes[row, 0].set_title(name, fontsize=9)
        axes[row, 0].axis("off")
        for col, (title, draw) in enumerate(panels, start=1):
            draw(image, axes[row, col])
            axes[row, col].set_title(title, fontsize=9)
    return figure


def visual_words(model):
    """The montage of a words/bow pipeline's visual words."""
    words = feature_extractor(model, ("words", "bow"))
    if words is None:
        return None
    figure = Figure(figsize=(7, 7), dpi=DPI, layout="constrained")
    plot_words(words, ax=figure.add_subplot())
    return figure


def mistakes(entry):
    """Up to eight test images the pipeline got wrong, titled with its prediction."""
    examples = load_examples(entry)
    if examples is None:
        return None
    order = round_robin_by_class(examples["y_true"])[:N_MISTAKES]
    examples = {key: value[order] for key, value in examples.items()}
    classes = entry["dataset"].get("classes") or []

    def name(label):
        return str(classes[label]) if 0 <= label < len(classes) else str(label)

    titles = [f"said {name(predicted)}\nwas {name(truth)}"
              for truth, predicted in zip(examples["y_true"], examples["y_pred"])]
    return image_grid(examples["images"] / 255.0, titles, f"{entry['name']}: mistakes",
                      n_cols=min(len(order), 4), title_lines=2)
