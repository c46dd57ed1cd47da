"""Tests for featpipe.report: results.json, report.md and report.html agree figure for figure.

The report is the real thing: ``featpipe run`` (with ``--search``) and
``featpipe compare`` (one finished run given with ``--from``, two trained
on the spot, one of them a k-means words pipeline) on the built-in data
set, through the click command in-process.
"""

import base64
import json
import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import featpipe
from featpipe.datasets import round_robin_by_class
from featpipe.model_io import load_model
from featpipe.report import ReportError, write_report
from featpipe.report.model_pictures import feature_extractor, raw_weights
from helpers import builtin_report

STAGES = ("load", "extract", "normalize", "train", "evaluate")

@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = builtin_report(tmp_path_factory)
    paths = {"html": out / "report.html", "markdown": out / "report.md", "json": out / "results.json"}
    words_run = next(path for path in (out / "runs").iterdir() if "words" in path.name)
    return [out.parent / "raw-run", out / "runs" / "hog+color+svm", words_run], paths


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
    fingerprint = results["pipelines"][0]["dataset"]["fingerprint"]
    assert results["pipelines"][0]["dataset"]["name"] == "builtin" and results["warnings"] == []
    assert paths["markdown"].read_text().count(f"fingerprint {fingerprint}") == len(run_dirs)
    assert paths["html"].read_text().count(f"fingerprint {fingerprint}") == len(run_dirs)


def test_each_panel_appears_when_its_data_exists(report):
    _, paths = report
    ids = {figure["id"] for figure in json.loads(paths["json"].read_text())["figures"]}
    expected = {"accuracy", "seconds", "training-curves", "search-0-raw-svm", "templates-0-raw-svm",
                "hog-color", "words-2-words-svm"}
    expected |= {f"{kind}-{i}-{slug}" for kind in ("confusion", "mistakes")
                 for i, slug in enumerate(("raw-svm", "hog-color-svm", "words-svm"))}
    assert ids == expected


def test_search_heat_map_shows_every_search_record(report):
    run_dirs, _ = report
    from featpipe.report.figures import search_heatmap

    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    figure = search_heatmap(dict(metrics, name="raw+svm"))
    shown = sorted(text.get_text() for text in figure.axes[0].texts)
    assert len(metrics["search"]) == 4
    assert shown == sorted(f"{record['val_accuracy']:.3f}" for record in metrics["search"])


def test_templates_are_the_classifier_weights_on_pixels(report):
    run_dirs, paths = report
    entry = json.loads(paths["json"].read_text())["pipelines"][0]
    model = load_model(run_dirs[0] / "model.skops")
    templates = raw_weights(entry, model)
    n_classes = len(entry["dataset"]["classes"])
    assert templates.shape == (n_classes, 16, 16, 3)
    images = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    scores = model.decision_function(images)
    pixels = feature_extractor(model, ("raw",)).transform(images).astype(np.float64)
    np.testing.assert_allclose(scores[0] - scores[1], templates.reshape(n_classes, -1) @ (pixels[0] - pixels[1]),
                               rtol=1e-4, atol=1e-4)
    assert raw_weights(dict(entry, pipeline={"features": [{"name": "words"}]}), model) is None


def test_mistakes_are_spread_over_true_classes():
    labels = np.array([3, 3, 3, 1, 1, 7, 3, 1])
    order = round_robin_by_class(labels)
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
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    metrics.update(history={"loss": [], "val_accuracy": []}, search=None)
    folders = [tmp_path / "first", tmp_path / "other"]
    for folder, fingerprint in zip(folders, ("one-data-set", "another-data-set")):
        folder.mkdir()
        metrics["dataset"]["fingerprint"] = fingerprint
        (folder / "metrics.json").write_text(json.dumps(metrics))
    paths = write_report(folders, tmp_path / "out", title="Two data sets")
    results = json.loads(paths["json"].read_text())
    assert results["report"]["title"] == "Two data sets"
    assert [entry["name"] for entry in results["pipelines"]] == ["raw+svm (first)", "raw+svm (other)"]
    assert "different data sets" in results["warnings"][0]
    assert "different data sets" in paths["markdown"].read_text()
    assert "different data sets" in paths["html"].read_text()
    assert {figure["id"] for figure in results["figures"]} == {
        "accuracy", "seconds", "confusion-0-raw-svm-first", "confusion-1-raw-svm-other"}


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
