"""Batch prediction into a CSV: from a store or from images, resumable, extractors checked."""

import csv

import numpy as np
import pytest

from featpipe.pipeline import predict_job
from featpipe.datasets import load_dataset
from featpipe.pipeline.extract_job import run_extract_job
from featpipe.model_io import load_model
from featpipe.pipeline import run_pipeline
from featpipe.pipeline.predict_job import run_predict_job
from featpipe.pipeline.spec import parse_spec
from featpipe.store import StoreError


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_npz):
    """A raw+color+softmax run on the small data set and a store made with its extractors."""
    folder = tmp_path_factory.mktemp("predict")
    result = run_pipeline(parse_spec("raw+color+softmax"), data=str(small_npz), out=folder / "run",
                          cache_dir=folder / "cache", quiet=True, n_jobs=1)
    store = run_extract_job("raw+color", data=str(small_npz), out=folder / "store", n_jobs=1, chunk_size=50,
                            from_run=result.run_dir, progress=False)
    return folder, result.run_dir, store


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    return rows[0], rows[1:]


def expected_rows(run_dir, small_npz):
    """The run's model applied to every image at once, in the store's order (train, val, test)."""
    model = load_model(run_dir / "model.skops")
    dataset = load_dataset(str(small_npz))
    images = np.concatenate([dataset.X_train, dataset.X_val, dataset.X_test])
    labels = model.predict(images)
    probability = model.predict_proba(images).max(axis=1)
    return [dataset.classes[label] for label in labels], probability


def test_predictions_of_a_store_are_the_models_predictions_of_its_images(trained, small_npz, tmp_path):
    _, run_dir, store = trained
    n_rows = run_predict_job(run_dir, str(store.path), tmp_path / "predictions.csv", progress=False)
    header, rows = read_rows(tmp_path / "predictions.csv")
    labels, probability = expected_rows(run_dir, small_npz)
    assert header == ["path", "label", "probability"]
    assert n_rows == len(rows) == len(labels) == len(store)
    assert [row[0] for row in rows] == store.paths
    assert [row[1] for row in rows] == labels
    np.testing.assert_allclose([float(row[2]) for row in rows], probability, atol=1e-4)
    assert not (tmp_path / "predictions.csv.parts").exists()


def test_predictions_of_images_extract_a_store_under_the_cache_first(trained, small_npz, tmp_path):
    _, run_dir, _ = trained
    run_predict_job(run_dir, str(small_npz), tmp_path / "out.csv", n_jobs=1, chunk_size=64,
                    cache_dir=tmp_path / "cache", progress=False)
    _, rows = read_rows(tmp_path / "out.csv")
    labels, _ = expected_rows(run_dir, small_npz)
    assert [row[1] for row in rows] == labels
    assert len(list((tmp_path / "cache" / "predict").iterdir())) == 1


def test_an_interrupted_prediction_resumes_from_the_shards_already_scored(trained, tmp_path, monkeypatch):
    _, run_dir, store = trained
    out = tmp_path / "predictions.csv"
    real_score_shard = predict_job.score_shard
    calls = []
    killed = []

    def dies_on_the_third_shard(*args):
        calls.append(args[0]["record"]["file"])
        if len(calls) == 3 and not killed:
            killed.append(True)
            raise InterruptedError("killed")
        return real_score_shard(*args)

    monkeypatch.setattr(predict_job, "score_shard", dies_on_the_third_shard)
    with pytest.raises(InterruptedError):
        run_predict_job(run_dir, str(store.path), out, progress=False)
    assert not out.exists()
    assert len(list((tmp_path / "predictions.csv.parts").glob("shard-*.csv"))) == 2
    calls.clear()
    run_predict_job(run_dir, str(store.path), out, progress=False)
    assert len(calls) == len(store.manifest["shards"]) - 2
    _, rows = read_rows(out)
    assert len(rows) == len(store)


def test_a_store_made_with_other_extractors_is_refused(trained, small_npz, tmp_path):
    folder, run_dir, _ = trained
    refit = run_extract_job("raw+color", data=str(small_npz), out=tmp_path / "refit", n_jobs=1, progress=False,
                            image_size=16)
    with pytest.raises(StoreError, match="other raw\\+color extractors"):
        run_predict_job(run_dir, str(refit.path), tmp_path / "p.csv", progress=False)
    other = run_extract_job("raw", data=str(small_npz), out=tmp_path / "raw", n_jobs=1, progress=False)
    with pytest.raises(StoreError, match="holds raw features"):
        run_predict_job(run_dir, str(other.path), tmp_path / "p.csv", progress=False)
    assert not (tmp_path / "p.csv").exists()


def test_a_flat_folder_of_unlabelled_images_is_predicted_with_the_runs_class_names(trained, small_npz, tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from featpipe.cli import cli

    _, run_dir, _ = trained
    images = load_dataset(str(small_npz)).X_test[::5][:12]
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"photo{index:02d}.png")  # lossless: the same pixels come back
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty-subfolder").mkdir()
    out = tmp_path / "photos.csv"
    result = CliRunner().invoke(cli, ["predict", str(run_dir), "--data", str(folder), "--out", str(out),
                                       "--cache-dir", str(tmp_path / "cache"), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    header, rows = read_rows(out)
    model = load_model(run_dir / "model.skops")
    classes = ["red", "green", "blue"]
    assert header == ["path", "label", "probability"]
    assert [row[0] for row in rows] == [str(folder / f"photo{index:02d}.png") for index in range(12)]
    assert [row[1] for row in rows] == [classes[label] for label in model.predict(images)]
    np.testing.assert_allclose([float(row[2]) for row in rows], model.predict_proba(images).max(axis=1), atol=1e-4)
    assert len({row[1] for row in rows}) > 1  # the test images span the classes
