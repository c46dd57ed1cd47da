"""The report's charts, drawn with matplotlib into PNG files.

Every chart is drawn on a bare :class:`matplotlib.figure.Figure` (rendered
by Agg when saved), so making a report never touches pyplot's global state
or needs a display. :func:`draw_figures` draws every chart and picture the
runs have data for and returns their descriptions for the results dict.
"""

import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from featpipe.metrics_schema import STAGE_NAMES
from featpipe.report import model_pictures
from featpipe.report.results import BEST_MARK

DPI = 100
ACCENT = "#d95f02"
PLAIN = "#7570b3"
STAGE_COLORS = ("#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854")

SECTIONS = (
    "Which pipeline wins",
    "Training",
    "What the features see",
    "Mistakes",
)
"""Sections of the report, in page order; each figure names one."""


def accuracy_bars(entries):
    """Test accuracy per pipeline as horizontal bars, the best one marked."""
    names = [entry["name"] for entry in entries]
    values = [entry["accuracy"].get("test") or 0.0 for entry in entries]
    figure = Figure(figsize=(7, 0.9 + 0.45 * len(entries)), dpi=DPI, layout="constrained")
    ax = figure.add_subplot()
    positions = np.arange(len(entries))[::-1]
    colors = [ACCENT if entry["best"] else PLAIN for entry in entries]
    ax.barh(positions, values, color=colors)
    for position, value, entry in zip(positions, values, entries):
        mark = f"  {BEST_MARK} best" if entry["best"] else ""
        ax.text(value, position, f" {100 * value:.1f}%{mark}", va="center", fontsize=9)
    n_classes = len(entries[0]["dataset"].get("classes") or [])
    if n_classes:
        ax.axvline(1 / n_classes, color="grey", linestyle="--", linewidth=1)
        ax.text(1 / n_classes, 1.0, " chance", transform=ax.get_xaxis_transform(), color="grey",
                fontsize=8, va="bottom")
    ax.set_yticks(positions, names)
    ax.set_xlim(0, min(1.0, max(values) * 1.3 + 0.05))
    ax.set_xlabel("test accuracy")
    ax.set_title("Test accuracy per pipeline")
    return figure


def seconds_bars(entries):
    """Seconds per stage as stacked horizontal bars, one bar per pipeline."""
    figure = Figure(figsize=(7, 1.3 + 0.45 * len(entries)), dpi=DPI, layout="constrained")
    ax = figure.add_subplot()
    positions = np.arange(len(entries))[::-1]
    left = np.zeros(len(entries))
    for stage, color in zip(STAGE_NAMES, STAGE_COLORS):
        seconds = np.array([entry["seconds"].get(stage) or 0.0 for entry in entries])
        ax.barh(positions, seconds, left=left, color=color, label=stage)
        left += seconds
    for position, total in zip(positions, left):
        ax.text(total, position, f" {total:.2f} s", va="center", fontsize=9)
    ax.set_yticks(positions, [entry["name"] for entry in entries])
    ax.set_xlim(0, max(left.max(), 1e-3) * 1.25)
    ax.set_xlabel("seconds (cached stages take almost none)")
    ax.set_title("Seconds per stage")
    figure.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=len(STAGE_NAMES),
                  fontsize=8, frameon=False)
    return figure


def training_curves(entries):
    """Training loss and validation accuracy per epoch, one line per pipeline with a history."""
    with_history = [entry for entry in entries if (entry.get("history") or {}).get("loss")]
    if not with_history:
        return None
    has_val = any(entry["history"].get("val_accuracy") for entry in with_history)
    figure = Figure(figsize=(9 if has_val else 5.5, 3.4), dpi=DPI, layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, 2 if has_val else 1))
    for entry in with_history:
        loss = entry["history"]["loss"]
        axes[0].plot(np.arange(1, len(loss) + 1), loss, label=entry["name"])
        val_accuracy = entry["history"].get("val_accuracy") or []
        if has_val and val_accuracy:
            axes[1].plot(np.arange(1, len(val_accuracy) + 1), val_accuracy, label=entry["name"])
    axes[0].set(xlabel="epoch", ylabel="training loss", title="Training loss")
    if has_val:
        axes[1].set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy")
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=8)
    return figure


def search_heatmap(entry):
    """Validation accuracy over the learning-rate x regularization grid of ``--search``."""
    records = entry.get("search") or []
    if not records:
        return None
    rates = sorted({record["learning_rate"] for record in records})
    regs = sorted({record["reg"] for record in records})
    grid = np.full((len(rates), len(regs)), np.nan)
    for record in records:
        grid[rates.index(record["learning_rate"]), regs.index(record["reg"])] = record["val_accuracy"]
    figure = Figure(figsize=(1.6 + 0.9 * len(regs), 1.4 + 0.55 * len(rates)), dpi=DPI, layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    best_row, best_col = np.unravel_index(np.nanargmax(grid), grid.shape)
    for row, col in np.ndindex(grid.shape):
        if not np.isnan(grid[row, col]):
            weight = "bold" if (row, col) == (best_row, best_col) else "normal"
            ax.text(col, row, f"{grid[row, col]:.3f}", ha="center", va="center", fontsize=8,
                    color="white" if grid[row, col] < np.nanmean(grid) else "black", fontweight=weight)
    ax.add_patch(_cell_outline(best_row, best_col))
    ax.set_xticks(np.arange(len(regs)), [f"{value:.0e}" for value in regs], rotation=45)
    ax.set_yticks(np.arange(len(rates)), [f"{value:.0e}" for value in rates])
    ax.set(xlabel="regularization", ylabel="learning rate", title=f"{entry['name']}: validation accuracy")
    figure.colorbar(image, ax=ax)
    return figure


def _cell_outline(row, col):
    from matplotlib.patches import Rectangle

    return Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor=ACCENT, linewidth=2.5)


def confusion_matrix(entry):
    """The test confusion matrix: counts written in, colour = share of the true class."""
    matrix = np.asarray(entry["confusion_matrix"].get("test") or [], dtype=float)
    if matrix.size == 0:
        return None
    classes = list(entry["dataset"].get("classes") or range(len(matrix)))
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.nan_to_num(matrix / matrix.sum(axis=1, keepdims=True))
    size = 2.0 + 0.32 * len(classes)
    figure = Figure(figsize=(size + 0.8, size), dpi=DPI, layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    if len(classes) <= 20:
        for row, col in np.ndindex(matrix.shape):
            ax.text(col, row, f"{matrix[row, col]:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if shares[row, col] > 0.5 else "black")
    ax.set_xticks(np.arange(len(classes)), classes, rotation=90, fontsize=8)
    ax.set_yticks(np.arange(len(classes)), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=f"{entry['name']}: test confusion matrix")
    figure.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    return figure


def _slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "pipeline"


def _planned_figures(results, models):
    """Yield (id, section, title, caption, pipeline name, draw function) for every figure."""
    entries = results["pipelines"]
    yield ("accuracy", SECTIONS[0], "Test accuracy",
           f"Test accuracy per pipeline; {BEST_MARK} marks the best, the dashed line is chance.",
           None, lambda: accuracy_bars(entries))
    yield ("seconds", SECTIONS[0], "Seconds per stage",
           "Wall-clock seconds of each stage; a cached stage costs almost nothing.",
           None, lambda: seconds_bars(entries))
    yield ("training-curves", SECTIONS[1], "Training curves",
           "Training loss and validation accuracy per epoch, for heads trained by featpipe's optimizers.",
           None, lambda: training_curves(entries))
    for index, entry in enumerate(entries):
        yield (f"search-{index}-{_slug(entry['name'])}", SECTIONS[1], f"{entry['name']}: search",
               "Validation accuracy over the learning rate x regularization grid; the outlined cell won.",
               entry["name"], lambda entry=entry: search_heatmap(entry))
    for index, entry in enumerate(entries):
        yield (f"templates-{index}-{_slug(entry['name'])}", SECTIONS[2], f"{entry['name']}: class templates",
               "The linear classifier's weights on raw pixels, one image per class (bright = positive).",
               entry["name"], lambda index=index, entry=entry: model_pictures.class_templates(entry, models.get(index)))
    yield ("hog-color", SECTIONS[2], "HOG and colour histograms",
           "A few test images, their HOG glyphs (dominant gradient orientation per cell) and hue histograms.",
           None, lambda: model_pictures.hog_and_color(results, models))
    for index, entry in enumerate(entries):
        yield (f"words-{index}-{_slug(entry['name'])}", SECTIONS[2], f"{entry['name']}: visual words",
               "The k-means visual words (cluster centres of image patches) the pipeline learned.",
               entry["name"], lambda index=index: model_pictures.visual_words(models.get(index)))
    for index, entry in enumerate(entries):
        yield (f"confusion-{index}-{_slug(entry['name'])}", SECTIONS[3], f"{entry['name']}: confusion matrix",
               "Rows are true classes, columns predictions; colour is the share of the true class.",
               entry["name"], lambda entry=entry: confusion_matrix(entry))
        yield (f"mistakes-{index}-{_slug(entry['name'])}", SECTIONS[3], f"{entry['name']}: mistakes",
               "Test images this pipeline got wrong: what it predicted, and the true class.",
               entry["name"], lambda entry=entry: model_pictures.mistakes(entry))


def draw_figures(results, out_dir):
    """Draw every figure the runs have data for into ``out_dir/figures``.

    Parameters
    ----------
    results : dict
        From :func:`featpipe.report.results.collect_results`.
    out_dir : path-like
        The report folder; PNGs go to its ``figures`` subfolder.

    Returns
    -------
    figures : list of dict
        ``id``, ``section``, ``title``, ``caption``, ``pipeline`` (name or
        None) and ``file`` (path relative to ``out_dir``), in page order.
    """
    folder = Path(out_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.png"):
        stale.unlink()
    models = model_pictures.ModelLoader(results["pipelines"])
    figures = []
    for figure_id, section, title, caption, pipeline, draw in _planned_figures(results, models):
        figure = draw()
        if figure is None:
            continue
        relative = f"figures/{figure_id}.png"
        figure.savefig(Path(out_dir) / relative, dpi=DPI)
        figures.append({"id": figure_id, "section": section, "title": title, "caption": caption,
                        "pipeline": pipeline, "file": relative})
    return figures
