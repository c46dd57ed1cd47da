"""The featpipe command as users run it: outputs, predict, cache, and bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from featpipe.cli import cli
from featpipe.metrics_schema import STAGE_NAMES
from featpipe.model_io import load_model
from featpipe.pipeline import extract_job, run_folder, stages


@pytest.fixture
def invoke(tmp_path):
    runner = CliRunner()

    def run(*args):
        return runner.invoke(cli, [str(arg) for arg in args], catch_exceptions=False)

    return run


def _image_folder(root, n_classes=3, per_class=12, size=20):
    rng = np.random.default_rng(1)
    for label in range(n_classes):
        folder = root / f"class{label}"
        folder.mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            pixels[..., label] = 255
            Image.fromarray(pixels).save(folder / f"{index}.png")
    return root


def test_run_prints_one_line_per_split_and_predict_reads_the_run(tmp_path, invoke, small_npz):
    out = tmp_path / "run"
    result = invoke("run", "raw+softmax", "--data", small_npz, "--out", out, "--cache-dir", tmp_path / "cache",
                    "--jobs", 1)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert [line.split()[1] for line in lines] == ["train", "val", "test"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert float(lines[2].split()[3]) == pytest.approx(metrics["accuracy"]["test"], abs=1e-4)
    assert "run folder:" in result.stderr

    test_images = np.load(small_npz)["X_test"][::15]
    paths = []
    for index, image in enumerate(test_images):
        paths.append(tmp_path / f"example{index}.png")
        Image.fromarray(image).save(paths[-1])
    predicted = invoke("predict", out, *paths)
    assert predicted.exit_code == 0, predicted.output
    classes = metrics["dataset"]["classes"]
    expected = load_model(out / "model.skops").predict(test_images)
    rows = [line.split("\t") for line in predicted.stdout.strip().splitlines()]
    assert [row[0] for row in rows] == [str(path) for path in paths]
    assert [row[1] for row in rows] == [classes[label] for label in expected]
    assert all(0.0 < float(row[2]) <= 1.0 for row in rows)


def test_second_run_reports_every_stage_cached(tmp_path, invoke, small_npz):
    args = ("run", "raw+softmax", "--data", small_npz, "--cache-dir", tmp_path / "cache", "--jobs", 1)
    invoke(*args, "--out", tmp_path / "first")
    second = invoke(*args, "--out", tmp_path / "second")
    assert second.stderr.count("(cached)") == len(STAGE_NAMES)


def test_pipelines_lists_the_shipped_files(invoke):
    result = invoke("pipelines")
    assert result.exit_code == 0
    assert "hog+svm" in result.stdout and "heads:" in result.stdout


def test_cache_info_and_clear(tmp_path, invoke, small_npz):
    invoke("run", "raw+softmax", "--data", small_npz, "--cache-dir", tmp_path / "cache", "--out", tmp_path / "run",
           "--jobs", 1)
    info = invoke("cache", "info", "--cache-dir", tmp_path / "cache")
    n_entries = int(info.stdout.split("\n")[1].split()[0])
    assert n_entries >= len(STAGE_NAMES)
    cleared = invoke("cache", "clear", "--cache-dir", tmp_path / "cache")
    assert cleared.exit_code == 0 and not (tmp_path / "cache" / "stages").exists()
    assert (tmp_path / "cache" / "CACHEDIR.TAG").is_file()


def test_cache_clear_and_info_refuse_a_foreign_folder_in_one_line(tmp_path, invoke):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    (tmp_path / "file").write_text("a file")
    for command, target in (("clear", "home"), ("info", "home"), ("info", "file"), ("clear", "file")):
        result = invoke("cache", command, "--cache-dir", tmp_path / target)
        assert result.exit_code == 2
        assert result.stderr.startswith("featpipe: error: ") and result.stderr.count("\n") == 1
        assert "not a featpipe cache" in result.stderr
    assert (tmp_path / "home" / "thesis.tex").read_text() == "precious"
    assert sorted(path.name for path in (tmp_path / "home").iterdir()) == ["thesis.tex"]


def test_datasets_describes_a_folder(tmp_path, invoke):
    root = _image_folder(tmp_path / "images")
    result = invoke("datasets", root)
    assert result.exit_code == 0, result.output
    assert "3 classes" in result.stdout and "class0, class1, class2" in result.stdout


def _bad_inputs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    one_class = _image_folder(tmp_path / "one", n_classes=1)
    corrupt = _image_folder(tmp_path / "corrupt")
    (corrupt / "class0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    malformed = tmp_path / "bad.toml"
    malformed.write_text("[[features]\n")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    return {
        "missing path": (["run", "raw+softmax", "--data", tmp_path / "nowhere"], "nowhere"),
        "empty folder": (["run", "raw+softmax", "--data", empty], "empty"),
        "one class": (["run", "raw+softmax", "--data", one_class], "class"),
        "corrupt image, strict": (["run", "raw+softmax", "--data", corrupt, "--strict"], "broken.png"),
        "unknown feature": (["run", "sift+svm"], "unknown feature 'sift'"),
        "unknown head": (["run", "raw+forest"], "unknown head 'forest'"),
        "malformed file": (["run", malformed], "not valid TOML"),
        "image too small": (["run", "hog+svm", "--image-size", 4], "too small"),
        "unwritable cache": (["run", "raw+softmax", "--cache-dir", blocker], "is a file, not a featpipe cache"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing path", "empty folder", "one class", "corrupt image, strict", "unknown feature",
     "unknown head", "malformed file", "image too small", "unwritable cache"],
)
def test_bad_input_is_one_line_and_status_2_and_writes_nothing(tmp_path, invoke, case):
    args, needle = _bad_inputs(tmp_path)[case]
    out = tmp_path / "run"
    if "--cache-dir" not in args:
        args = [*args, "--cache-dir", tmp_path / "cache"]
    result = invoke(*args, "--out", out, "--jobs", 1)
    assert result.exit_code == 2
    assert result.stderr.startswith("featpipe: error:") and result.stderr.count("\n") == 1
    assert needle in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


def test_corrupt_image_is_skipped_and_counted_without_strict(tmp_path, invoke):
    corrupt = _image_folder(tmp_path / "corrupt")
    (corrupt / "class0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = invoke("run", "raw+softmax", "--data", corrupt, "--out", tmp_path / "run",
                    "--cache-dir", tmp_path / "cache", "--jobs", 1)
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable image" in result.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["dataset"]["skipped"] == 1


def test_interrupted_run_exits_130_and_leaves_no_run_folder(tmp_path, invoke, monkeypatch, small_npz):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stages, "evaluate", interrupted)
    result = invoke("run", "raw+softmax", "--data", small_npz, "--out", tmp_path / "run", "--no-cache", "--jobs", 1)
    assert result.exit_code == 130
    assert result.stderr.strip() == "featpipe: interrupted; no run folder was written"
    assert not (tmp_path / "run").exists()


def test_full_disk_while_writing_leaves_no_half_written_run(tmp_path, invoke, monkeypatch, small_npz):
    def disk_full(model, path):
        path.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_folder, "save_model", disk_full)
    result = invoke("run", "raw+softmax", "--data", small_npz, "--out", tmp_path / "run", "--no-cache", "--jobs", 1)
    assert result.exit_code == 2 and "No space left on device" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_bad_parameter_values_in_a_pipeline_file_are_bad_input(tmp_path, invoke, small_npz):
    for name, table in (("hog", "[[features]]\nname = \"hog\"\norientations = 0\n[head]\nname = \"svm\"\n"),
                        ("logreg", "[[features]]\nname = \"raw\"\n[head]\nname = \"logreg\"\nC = -1.0\n")):
        path = tmp_path / f"{name}.toml"
        path.write_text(table)
        result = invoke("run", path, "--data", small_npz, "--out", tmp_path / name, "--cache-dir", tmp_path / "cache",
                        "--jobs", 1)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("featpipe: error:") and result.stderr.count("\n") == 1
        assert not (tmp_path / name).exists()


def _a_bug(*args, **kwargs):
    return np.zeros(3) @ np.zeros(2)  # numpy's ValueError: what a real bug in featpipe raises


@pytest.mark.parametrize("debug", [None, "1"])
def test_a_bug_is_an_internal_error_with_the_traceback_on_request(tmp_path, invoke, monkeypatch, small_npz, debug):
    monkeypatch.setattr(stages, "evaluate", _a_bug)
    if debug:
        monkeypatch.setenv("FEATPIPE_DEBUG", debug)
    else:
        monkeypatch.delenv("FEATPIPE_DEBUG", raising=False)
    result = invoke("run", "raw+softmax", "--data", small_npz, "--out", tmp_path / "run", "--no-cache", "--jobs", 1)
    assert result.exit_code == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("featpipe: internal error: ValueError: matmul")
    if debug:
        assert "Traceback (most recent call last)" in result.stderr and "_a_bug" in result.stderr
    else:
        assert result.stderr.count("\n") == 1 and "FEATPIPE_DEBUG=1" in last_line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("error, status", [
    (FileNotFoundError(2, "No such file or directory", "/nowhere/model.skops"), 2),
    (PermissionError(13, "Permission denied"), 2),
    (ConnectionResetError(104, "Connection reset by peer"), 1),
    (RuntimeError("broken invariant"), 1),
])
def test_os_errors_about_files_are_bad_input_and_others_internal(tmp_path, invoke, monkeypatch, small_npz,
                                                                  error, status):
    def raising(*args, **kwargs):
        raise error

    monkeypatch.setattr(stages, "evaluate", raising)
    result = invoke("run", "raw+softmax", "--data", small_npz, "--out", tmp_path / "run", "--no-cache", "--jobs", 1)
    assert result.exit_code == status
    assert result.stderr.startswith("featpipe: error:" if status == 2 else "featpipe: internal error:")


def test_a_reader_that_goes_away_ends_the_command_silently():
    process = subprocess.Popen([sys.executable, "-m", "featpipe.cli", "pipelines"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert stderr == ""


def test_console_script_runs_as_a_real_process(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "featpipe.cli", "run", "nothing+svm", "--cache-dir", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("featpipe: error: unknown feature 'nothing'")


def test_extract_then_run_on_the_store(tmp_path, invoke, small_npz):
    store = tmp_path / "store"
    extracted = invoke("extract", "raw+color", "--data", small_npz, "--out", store, "--jobs", 1, "--quiet")
    assert extracted.exit_code == 0, extracted.output
    assert "240 images" in extracted.stdout
    trained = invoke("run", "raw+color+softmax", "--data", store, "--out", tmp_path / "run",
                     "--cache-dir", tmp_path / "cache")
    assert trained.exit_code == 0, trained.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["feature_width"] == json.loads((store / "manifest.json").read_text())["n_features"]
    assert metrics["dataset"]["n_train"] + metrics["dataset"]["n_val"] + metrics["dataset"]["n_test"] == 240
    again = invoke("extract", "raw+color", "--data", small_npz, "--out", store, "--jobs", 1, "--quiet")
    assert again.exit_code == 0
    refused = invoke("extract", "hog", "--data", small_npz, "--out", store, "--jobs", 1, "--quiet")
    assert refused.exit_code == 2 and "was made with other" in refused.stderr


def test_interrupted_extract_says_how_to_resume(tmp_path, invoke, monkeypatch, small_npz):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(extract_job, "_extract_chunk", interrupted)
    result = invoke("extract", "hog", "--data", small_npz, "--out", tmp_path / "store", "--jobs", 1, "--quiet")
    assert result.exit_code == 130
    assert result.stderr.strip() == ("featpipe: interrupted; finished shards are kept; "
                                     "run the same command again to resume")


def test_predict_data_writes_a_csv_of_the_whole_collection(tmp_path, invoke, small_npz):
    run = tmp_path / "run"
    assert invoke("run", "raw+softmax", "--data", small_npz, "--out", run, "--cache-dir", tmp_path / "cache",
                  "--jobs", 1, "--quiet").exit_code == 0
    result = invoke("predict", run, "--data", small_npz, "--out", tmp_path / "predictions.csv",
                    "--cache-dir", tmp_path / "cache", "--jobs", 1, "--chunk-size", 50, "--quiet")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "predictions.csv").read_text().splitlines()
    data = np.load(small_npz)
    images = np.concatenate([data["X_train"], data["X_test"]])
    assert lines[0] == "path,label,probability"
    assert len(lines) == 1 + len(images)
    classes = json.loads((run / "metrics.json").read_text())["dataset"]["classes"]
    predicted = {row.split(",")[0]: row.split(",")[1] for row in lines[1:]}
    model = load_model(run / "model.skops")
    test_labels = model.predict(data["X_test"])
    assert [predicted[f"test/{index}"] for index in range(len(test_labels))] == [classes[label] for label in test_labels]


@pytest.mark.parametrize("args, message", [
    (["--data", "somewhere"], "--data and --out go together"),
    (["image.png", "--data", "x", "--out", "p.csv"], "either IMAGE... or --data, not both"),
    ([], "give the images to predict"),
])
def test_predict_refuses_a_collection_half_described(tmp_path, invoke, small_npz, args, message):
    run = tmp_path / "run"
    assert invoke("run", "raw+softmax", "--data", small_npz, "--out", run, "--cache-dir", tmp_path / "cache",
                  "--jobs", 1, "--quiet").exit_code == 0
    result = invoke("predict", run, *args)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("featpipe: error:") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

