"""Tests for featpipe.report: results.json, report.md and report.html agree figure for figure.

The run folders are real: small linear heads trained on a few hundred
CIFAR-10 images, saved with featpipe.model_io, with metrics.json written
to the schema of docs/ARCHITECTURE.md.
"""

import base64
import json
import re
import time
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import confusion_matrix
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import featpipe
from featpipe.features.words import KMeansWords
from featpipe.heads.linear import LinearSVM, Softmax
from featpipe.model_io import load_model, save_model
from featpipe.report import ReportError, write_report
from featpipe.report.lecture import _spread_over_classes, optional_function, raw_weights

CIFAR = Path(__file__).resolve().parents[2] / "shared/datasets/cifar10-jpg"
STAGES = ("load", "extract", "normalize", "train", "evaluate")


def _read_split(split, per_class, skip=0):
    classes = sorted(path.name for path in (CIFAR / split).iterdir())
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((CIFAR / split / name).glob("*.jpg"))[skip:skip + per_class]:
            images.append(np.asarray(Image.open(path).convert("RGB")))
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


def _raw_pixels():
    return FunctionTransformer(np.reshape, kw_args={"shape": (-1, 32 * 32 * 3)})


def _write_run(folder, spec, features, head, data, search=None):
    """Fit a Pipeline of the documented structure on ``data`` and write its run folder."""
    (X_train, y_train), (X_val, y_val), (X_test, y_test), classes = data
    seconds = {"load": 0.0}
    start = time.perf_counter()
    union = FeatureUnion(features).fit(X_train, y_train)
    train_features, val_features = union.transform(X_train), union.transform(X_val)
    seconds["extract"] = time.perf_counter() - start
    start = time.perf_counter()
    scaler = StandardScaler().fit(train_features)
    seconds["normalize"] = time.perf_counter() - start
    start = time.perf_counter()
    head.fit(scaler.transform(train_features), y_train,
             X_val=scaler.transform(val_features), y_val=y_val)
    seconds["train"] = time.perf_counter() - start
    model = Pipeline([("features", union), ("normalize", scaler), ("head", head)])
    start = time.perf_counter()
    predicted = {split: model.predict(X) for split, X in (("train", X_train), ("val", X_val), ("test", X_test))}
    seconds["evaluate"] = time.perf_counter() - start
    matrix = confusion_matrix(y_test, predicted["test"], labels=np.arange(len(classes)))
    widths = {name: int(extractor.transform(X_test[:1]).shape[1]) for name, extractor in union.transformer_list}
    metrics = {
        "spec": spec,
        "pipeline": {"features": [{"name": name, "params": {}} for name, _ in features],
                     "normalize": "standard", "head": {"name": spec.rpartition("+")[2], "params": {}}},
        "dataset": {"name": "cifar10-subset", "fingerprint": "test-subset-1", "image_size": 32,
                    "n_train": len(y_train), "n_val": len(y_val), "n_test": len(y_test),
                    "classes": classes, "skipped": 0},
        "feature_width": sum(widths.values()),
        "feature_widths": widths,
        "accuracy": {split: float(np.mean(predicted[split] == y))
                     for split, y in (("train", y_train), ("val", y_val), ("test", y_test))},
        "per_class_accuracy": {"test": {name: float(matrix[i, i] / matrix[i].sum()) for i, name in enumerate(classes)}},
        "confusion_matrix": {"test": matrix.tolist()},
        "seconds": seconds,
        "cache_hits": {stage: stage == "load" for stage in STAGES},
        "history": {"loss": list(head.loss_history_), "val_accuracy": list(head.val_accuracy_history_)},
        "search": search,
        "seed": 0,
        "versions": {"featpipe": featpipe.__version__, "numpy": np.__version__},
    }
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    save_model(model, folder / "model.skops")
    wrong = np.flatnonzero(predicted["test"] != y_test)[:16]
    np.savez_compressed(folder / "examples.npz", images=X_test[wrong], y_true=y_test[wrong],
                        y_pred=predicted["test"][wrong])
    return folder


def build_runs(root):
    """Three real run folders: raw+svm (with a search), raw+softmax, words+svm."""
    X_train, y_train, classes = _read_split("train", 30)
    X_val, y_val, _ = _read_split("train", 8, skip=30)
    X_test, y_test, _ = _read_split("test", 10)
    data = ((X_train, y_train), (X_val, y_val), (X_test, y_test), classes)
    search = []
    for learning_rate in (1e-4, 1e-3):
        for reg in (1e-4, 1e-2):
            trial = Pipeline([("scale", StandardScaler()),
                              ("head", LinearSVM(learning_rate=learning_rate, reg=reg, n_epochs=3, random_state=0))])
            trial.fit(X_train.reshape(len(X_train), -1), y_train)
            accuracy = float(np.mean(trial.predict(X_val.reshape(len(X_val), -1)) == y_val))
            search.append({"learning_rate": learning_rate, "reg": reg, "val_accuracy": accuracy})
    return [
        _write_run(root / "raw+svm", "raw+svm", [("raw", _raw_pixels())],
                   LinearSVM(n_epochs=8, random_state=0), data, search=search),
        _write_run(root / "raw+softmax", "raw+softmax", [("raw", _raw_pixels())],
                   Softmax(n_epochs=8, random_state=0), data),
        _write_run(root / "words+svm", "words+svm",
                   [("words", KMeansWords(n_words=16, n_patches=4000, random_state=0))],
                   LinearSVM(n_epochs=8, random_state=0), data),
    ]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    run_dirs = build_runs(root / "runs")
    paths = write_report(run_dirs, root / "out")
    return run_dirs, paths


class _PageReader(HTMLParser):
    """Collects every table (by id) as rows of cell texts, the rows' classes, and every <img>."""

    def __init__(self):
        super().__init__()
        self.tables, self.row_classes, self.images = {}, {}, []
        self._table = self._row = self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table], self.row_classes[self._table] = [], []
        elif tag == "tr":
            self._row = []
            self.row_classes[self._table].append(attrs.get("class"))
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr":
            self.tables[self._table].append(self._row)


def _markdown_table(text, heading):
    """The rows (cells as text, header first) of the first table after ``## heading``."""
    section = text.split(f"\n## {heading}\n", 1)[1]
    lines = [line for line in section.split("\n## ", 1)[0].splitlines() if line.startswith("|")]
    rows = [[cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    return [rows[0]] + rows[2:]


def _percent(text):
    return None if text == "–" else float(text.rstrip("%")) / 100


def _number(text):
    return None if text == "–" else float(text)


def _close(shown, value, half_step):
    if value is None:
        return shown is None
    return shown is not None and abs(shown - value) <= half_step + 1e-9


def _check_results_table(rows, entries):
    header, body = rows[0], rows[1:]
    assert header[:5] == ["Pipeline", "Feature width", "Train acc", "Val acc", "Test acc"]
    assert len(body) == len(entries)
    for row, entry in zip(body, entries):
        assert row[0].replace("★", "").strip() == entry["name"]
        assert ("★" in row[0]) == entry["best"]
        assert int(row[1]) == entry["feature_width"]
        for text, split in zip(row[2:5], ("train", "val", "test")):
            assert _close(_percent(text), entry["accuracy"][split], 0.0005)
        assert _close(_number(row[5]), entry["seconds"]["extract"], 0.005)
        assert _close(_number(row[6]), entry["seconds"]["train"], 0.005)
        assert _close(_number(row[7]), sum(entry["seconds"][stage] for stage in STAGES), 0.005)
        hits = [stage for stage in STAGES if entry["cache_hits"][stage]]
        assert row[8].startswith(f"{len(hits)}/5")


def _check_seconds_table(rows, entries):
    assert rows[0] == ["Pipeline"] + [f"{stage} s" for stage in STAGES] + ["Total s"]
    for row, entry in zip(rows[1:], entries, strict=True):
        assert row[0] == entry["name"]
        for text, stage in zip(row[1:6], STAGES):
            assert _close(_number(text), entry["seconds"][stage], 0.005)


def _check_per_class_table(rows, entries):
    assert rows[0] == ["Class"] + [entry["name"] for entry in entries]
    classes = entries[0]["dataset"]["classes"]
    assert [row[0] for row in rows[1:]] == classes
    for row in rows[1:]:
        for text, entry in zip(row[1:], entries, strict=True):
            assert _close(_percent(text), entry["per_class_accuracy"]["test"][row[0]], 0.0005)


def test_markdown_json_and_html_agree_figure_for_figure(report):
    run_dirs, paths = report
    results = json.loads(paths["json"].read_text())
    metrics = [json.loads((run_dir / "metrics.json").read_text()) for run_dir in run_dirs]
    assert [entry["spec"] for entry in results["pipelines"]] == [m["spec"] for m in metrics]
    for entry, run_metrics in zip(results["pipelines"], metrics):
        for key in ("accuracy", "feature_width", "feature_widths", "seconds", "per_class_accuracy",
                    "confusion_matrix", "history", "search"):
            assert entry[key] == run_metrics[key]
    best_test = max(m["accuracy"]["test"] for m in metrics)
    assert [entry["best"] for entry in results["pipelines"]] == [m["accuracy"]["test"] == best_test for m in metrics]

    markdown = paths["markdown"].read_text()
    page = _PageReader()
    page.feed(paths["html"].read_text())
    entries = [dict(m, name=m["spec"], best=e["best"]) for m, e in zip(metrics, results["pipelines"])]
    for rows in (_markdown_table(markdown, "Results"), page.tables["results"]):
        _check_results_table(rows, entries)
    for rows in (_markdown_table(markdown, "Seconds per stage"), page.tables["seconds"]):
        _check_seconds_table(rows, entries)
    for rows in (_markdown_table(markdown, "Test accuracy per class"), page.tables["per-class"]):
        _check_per_class_table(rows, entries)
    assert page.row_classes["results"][1:] == ["best" if e["best"] else None for e in entries]

    figure_files = [figure["file"] for figure in results["figures"]]
    assert re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", markdown) == figure_files
    assert len(page.images) == len(figure_files)
    for image, file in zip(page.images, figure_files):
        png = (paths["json"].parent / file).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert base64.b64decode(image["src"].removeprefix("data:image/png;base64,")) == png


def test_html_is_self_contained(report):
    _, paths = report
    text = paths["html"].read_text()
    assert '<meta name="viewport"' in text
    assert re.findall(r"(?:src|href)=\"(?!data:)", text) == []
    assert "http://" not in text and "https://" not in text


def test_results_json_carries_what_reproduces_a_run(report):
    run_dirs, paths = report
    results = json.loads(paths["json"].read_text())
    assert results["report"]["featpipe_version"] == featpipe.__version__
    created = datetime.fromisoformat(results["report"]["created"])
    assert abs((datetime.now(created.tzinfo) - created).total_seconds()) < 600
    for entry, run_dir in zip(results["pipelines"], run_dirs, strict=True):
        run_metrics = json.loads((run_dir / "metrics.json").read_text())
        for key in ("spec", "pipeline", "dataset", "seed", "versions"):
            assert entry[key] == run_metrics[key]
        assert Path(entry["run_dir"]) == run_dir.resolve()
    markdown = paths["markdown"].read_text()
    assert markdown.count("test-subset-1") == len(run_dirs)


def test_each_panel_appears_when_its_data_and_function_exist(report):
    _, paths = report
    ids = {figure["id"] for figure in json.loads(paths["json"].read_text())["figures"]}
    expected = {"accuracy", "seconds", "training-curves", "search-0-raw-svm",
                "templates-0-raw-svm", "templates-1-raw-softmax", "words-2-words-svm"}
    expected |= {f"{kind}-{i}-{slug}" for kind in ("confusion", "mistakes")
                 for i, slug in enumerate(("raw-svm", "raw-softmax", "words-svm"))}
    has_pictures = optional_function(("featpipe.features.pictures",), "plot_hog") is not None or \
        optional_function(("featpipe.features.pictures",), "plot_color_histogram") is not None
    if has_pictures:
        expected.add("hog-color")
    assert ids == expected


def test_templates_are_the_classifier_weights_on_pixels(report):
    run_dirs, paths = report
    entry = json.loads(paths["json"].read_text())["pipelines"][0]
    model = load_model(run_dirs[0] / "model.skops")
    templates = raw_weights(entry, model)
    assert templates.shape == (10, 32, 32, 3)
    images = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    scores = model.decision_function(images)
    pixel_difference = images[0].astype(np.float64) - images[1]
    np.testing.assert_allclose(scores[0] - scores[1], np.einsum("hwc,khwc->k", pixel_difference, templates),
                               rtol=1e-4, atol=1e-4)
    assert raw_weights(dict(entry, pipeline={"features": [{"name": "words"}]}), model) is None


def test_mistakes_are_spread_over_true_classes():
    labels = np.array([3, 3, 3, 1, 1, 7, 3, 1])
    order = _spread_over_classes(labels)
    assert sorted(order) == list(range(len(labels)))
    assert list(labels[order][:3]) == [3, 1, 7]
    naive = []
    remaining = list(range(len(labels)))
    while remaining:
        seen = set()
        for index in list(remaining):
            if labels[index] not in seen:
                seen.add(labels[index])
                naive.append(index)
                remaining.remove(index)
    assert list(order) == naive


def test_runs_on_different_data_sets_are_flagged_and_names_made_unique(report, tmp_path):
    run_dirs, _ = report
    other = tmp_path / "other"
    other.mkdir()
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    metrics["dataset"]["fingerprint"] = "another-data-set"
    (other / "metrics.json").write_text(json.dumps(metrics))
    paths = write_report([run_dirs[0], other], tmp_path / "out", title="Two data sets")
    results = json.loads(paths["json"].read_text())
    assert results["report"]["title"] == "Two data sets"
    assert [entry["name"] for entry in results["pipelines"]] == [f"raw+svm ({run_dirs[0].name})", "raw+svm (other)"]
    assert "different data sets" in results["warnings"][0]
    assert "different data sets" in paths["markdown"].read_text()
    ids = {figure["id"] for figure in results["figures"]}
    assert "templates-1-raw-svm-other" not in ids and "mistakes-1-raw-svm-other" not in ids


@pytest.mark.parametrize("make, message", [
    (lambda path: [], "at least one run folder"),
    (lambda path: [path / "missing"], "is not a folder"),
    (lambda path: [path], "has no metrics.json"),
])
def test_bad_run_folders_are_refused_clearly(tmp_path, make, message):
    with pytest.raises(ReportError, match=message):
        write_report(make(tmp_path), tmp_path / "out")


def test_metrics_missing_keys_are_named(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"spec": "raw+svm"}))
    with pytest.raises(ValueError, match="lacks pipeline, dataset"):
        write_report([tmp_path], tmp_path / "out")
