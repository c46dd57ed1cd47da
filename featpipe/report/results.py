"""Everything a comparison report says, gathered from run folders into one dict.

The dict built here is what ``results.json`` holds, and the Markdown and
HTML pages are rendered from it alone, so the three agree figure for figure
by construction. The display strings of the tables are made here too, once,
for both renderers.
"""

import json
from datetime import datetime, timezone
from pathlib import Path

import featpipe
from featpipe.datasets import SPLITS
from featpipe.errors import ReportError
from featpipe.metrics_schema import STAGE_NAMES

REQUIRED_KEYS = (
    "spec", "pipeline", "dataset", "feature_width", "feature_widths", "accuracy",
    "confusion_matrix", "seconds", "cache_hits", "seed", "versions",
)
"""metrics.json keys a report cannot do without (see docs/ARCHITECTURE.md)."""

RESULTS_COLUMNS = (
    "Pipeline", "Feature width", "Train acc", "Val acc", "Test acc",
    "Extract s", "Train s", "Total s", "Cache hits",
)
SECONDS_COLUMNS = ("Pipeline",) + tuple(f"{stage} s" for stage in STAGE_NAMES) + ("Total s",)

BEST_MARK = "★"


def read_metrics(run_dir):
    """Read and check a run folder's ``metrics.json``.

    Parameters
    ----------
    run_dir : path-like
        A folder written by ``featpipe run``.

    Returns
    -------
    metrics : dict

    Raises
    ------
    ReportError
        When the folder or its metrics.json is missing, unreadable, or lacks
        a key the report needs.
    """
    path = Path(run_dir) / "metrics.json"
    if not Path(run_dir).is_dir():
        raise ReportError(f"{run_dir} is not a folder; pass run folders written by `featpipe run`")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{run_dir} has no metrics.json; is it a run folder written by `featpipe run`?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"cannot read {path}: {error}") from None
    if not isinstance(metrics, dict):
        raise ReportError(f"{path} must hold a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in metrics]
    if missing:
        raise ReportError(f"{path} lacks {', '.join(missing)}; it was not written by this featpipe version")
    return metrics


def _display_names(runs):
    """Spec names, made unique with the run folder's name where a spec repeats."""
    specs = [metrics["spec"] for _, metrics in runs]
    return [
        spec if specs.count(spec) == 1 else f"{spec} ({Path(run_dir).name})"
        for spec, (run_dir, _) in zip(specs, runs)
    ]


def _best_index(entries):
    """Highest test accuracy; ties go to the higher validation accuracy, then the faster run."""
    def key(index):
        accuracy = entries[index]["accuracy"]
        test, val = accuracy.get("test"), accuracy.get("val")
        return (
            -1.0 if test is None else test,
            -1.0 if val is None else val,
            -entries[index]["seconds_total"],
        )
    return max(range(len(entries)), key=key)


def _warnings(entries):
    warnings = []
    fingerprints = {entry["dataset"].get("fingerprint") for entry in entries}
    if len(fingerprints) > 1:
        warnings.append(
            "The runs used different data sets (fingerprints "
            f"{', '.join(sorted(str(value) for value in fingerprints))}); their accuracies are not comparable."
        )
    return warnings


def collect_results(run_dirs, title=None):
    """Gather every figure of the given runs into the report's results dict.

    Parameters
    ----------
    run_dirs : sequence of path-like
        Run folders, listed in the order the report shows them.
    title : str or None
        The report's title; ``None`` gives "featpipe comparison: <data set>".

    Returns
    -------
    results : dict
        JSON-ready: ``report`` (title, creation time, featpipe version),
        ``best`` (name of the pipeline with the highest test accuracy),
        ``pipelines`` (one entry per run: its metrics.json plus ``name``,
        ``run_dir``, ``seconds_total``, ``best``), ``warnings`` and
        ``figures`` (filled in by :func:`featpipe.report.figures.draw_figures`).

    Raises
    ------
    ReportError
        When no run folders are given or one cannot be read.
    """
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    if not run_dirs:
        raise ReportError("a report needs at least one run folder")
    runs = [(run_dir, read_metrics(run_dir)) for run_dir in run_dirs]
    entries = []
    for name, (run_dir, metrics) in zip(_display_names(runs), runs):
        seconds_total = sum(float(metrics["seconds"].get(stage) or 0.0) for stage in STAGE_NAMES)
        entries.append(dict(metrics, name=name, run_dir=str(run_dir.resolve()),
                            seconds_total=round(seconds_total, 4), best=False))
    best = _best_index(entries)
    entries[best]["best"] = True
    data_names = sorted({str(entry["dataset"].get("name")) for entry in entries})
    return {
        "report": {
            "title": title or f"featpipe comparison: {', '.join(data_names)}",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "featpipe_version": featpipe.__version__,
        },
        "best": entries[best]["name"],
        "pipelines": entries,
        "warnings": _warnings(entries),
        "figures": [],
    }


def format_accuracy(value):
    """``0.5234`` -> ``"52.3%"``; missing values show as a dash."""
    return "–" if value is None else f"{100 * value:.1f}%"


def format_seconds(value):
    """Seconds with two decimals; missing values show as a dash."""
    return "–" if value is None else f"{value:.2f}"


def _cache_hits(entry):
    hits = [stage for stage in STAGE_NAMES if entry["cache_hits"].get(stage)]
    return f"{len(hits)}/{len(STAGE_NAMES)}" + (f" ({', '.join(hits)})" if hits else "")


def pipeline_label(entry):
    """The pipeline's name, with the best-pipeline mark after it."""
    return f"{entry['name']} {BEST_MARK}" if entry["best"] else entry["name"]


def results_rows(results):
    """Display strings of the main table, one row per pipeline (columns: RESULTS_COLUMNS)."""
    return [
        [
            pipeline_label(entry),
            str(entry["feature_width"]),
            *(format_accuracy(entry["accuracy"].get(split)) for split in SPLITS),
            format_seconds(entry["seconds"].get("extract")),
            format_seconds(entry["seconds"].get("train")),
            format_seconds(entry["seconds_total"]),
            _cache_hits(entry),
        ]
        for entry in results["pipelines"]
    ]


def seconds_rows(results):
    """Display strings of the seconds-per-stage table (columns: SECONDS_COLUMNS)."""
    return [
        [entry["name"], *(format_seconds(entry["seconds"].get(stage)) for stage in STAGE_NAMES),
         format_seconds(entry["seconds_total"])]
        for entry in results["pipelines"]
    ]


def per_class_table(results):
    """Header and rows of test accuracy per class, one column per pipeline.

    Classes are listed in the order of the first run that names them.
    """
    classes = []
    for entry in results["pipelines"]:
        for name in entry.get("per_class_accuracy", {}).get("test", {}):
            if name not in classes:
                classes.append(name)
    header = ["Class"] + [entry["name"] for entry in results["pipelines"]]
    rows = [
        [name] + [format_accuracy(entry.get("per_class_accuracy", {}).get("test", {}).get(name))
                  for entry in results["pipelines"]]
        for name in classes
    ]
    return header, rows


def summary_line(results):
    """One sentence naming the best pipeline and its test accuracy."""
    best = next(entry for entry in results["pipelines"] if entry["best"])
    return (
        f"Best: {best['name']}, test accuracy {format_accuracy(best['accuracy'].get('test'))} "
        f"(highest test accuracy of {len(results['pipelines'])} pipeline(s), "
        f"feature width {best['feature_width']}, {format_seconds(best['seconds_total'])} s in total)."
    )


def reproduction_items(entry):
    """(label, text) pairs that say how to reproduce one run."""
    dataset = entry["dataset"]
    return [
        ("Spec", entry["spec"]),
        ("Pipeline", json.dumps(entry["pipeline"], sort_keys=True)),
        ("Data set", f"{dataset.get('name')} (fingerprint {dataset.get('fingerprint')}, "
                     f"{dataset.get('image_size')} px images, {dataset.get('n_train')} train / "
                     f"{dataset.get('n_val')} val / {dataset.get('n_test')} test, "
                     f"{dataset.get('skipped')} skipped)"),
        ("Seed", str(entry["seed"])),
        ("Versions", ", ".join(f"{name} {version}" for name, version in sorted(entry["versions"].items()))),
        ("Run folder", entry["run_dir"]),
    ]
