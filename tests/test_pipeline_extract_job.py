"""Tests for the batch extraction job: values, splits, resume after SIGKILL, corrupt images, the lock."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import FeatureUnion, Pipeline

from featpipe.datasets import DatasetError, load_dataset
from featpipe.features.hog import HOG
from featpipe.model_io import save_model
from featpipe.pipeline import extract_inputs
from featpipe.pipeline.extract_job import run_extract_job
from featpipe.store import format as store
from featpipe.store.format import StoreError
from featpipe.store.reader import open as open_store
from helpers import link_cifar_folder, read_shard_bytes

HOG_PARAMS = {"pixels_per_cell": (8, 8), "cells_per_block": (2, 2)}
FEATURES = "hog"
CHUNK = 16


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return link_cifar_folder(tmp_path_factory.mktemp("images"), n_train=30, n_test=8)


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    """An uninterrupted, single-process run: the store every other run must equal."""
    out = tmp_path_factory.mktemp("reference") / "store"
    return run_extract_job(FEATURES, folder, out, n_jobs=1, chunk_size=CHUNK, progress=False)


@pytest.mark.cifar
def test_store_holds_the_features_of_load_dataset_splits(folder, reference):
    dataset = load_dataset(folder, image_size=32)
    extractor = HOG().fit(dataset.X_train)
    for split in ("train", "val", "test"):
        features, labels = reference.split(split)
        np.testing.assert_array_equal(features, extractor.transform(getattr(dataset, f"X_{split}")))
        np.testing.assert_array_equal(labels, getattr(dataset, f"y_{split}"))
    manifest = reference.manifest
    assert manifest["complete"] and manifest["featpipe_version"] == __import__("featpipe").__version__
    assert manifest["features"][0]["name"] == "hog" and manifest["features"][0]["width"] == 324
    assert manifest["n_rows"] == len(reference.paths) == 3 * 38 and manifest["skipped"] == []
    assert reference.classes == dataset.classes
    assert [shard["inputs"] for shard in manifest["shards"]][-1] == [112, 114]
    for shard in manifest["shards"]:
        assert store.file_sha256(reference.path / shard["file"]) == shard["sha256"]
    assert all(Path(path).is_absolute() and Path(path).exists() for path in reference.paths)
    assert str(reference).endswith(f"114 images x 324 features (hog 324); {len(dataset.y_train)} train, "
                                   f"{len(dataset.y_val)} val, 24 test; 0 unreadable image(s) skipped")


@pytest.mark.cifar
def test_rerun_of_a_finished_store_rewrites_nothing(folder, reference):
    before = {path: path.stat().st_mtime_ns for path in (reference.path / store.SHARDS_DIR).iterdir()}
    again = run_extract_job(FEATURES, folder, reference.path, n_jobs=1, chunk_size=CHUNK, progress=False)
    assert {path: path.stat().st_mtime_ns for path in (reference.path / store.SHARDS_DIR).iterdir()} == before
    assert again.manifest["shards"] == reference.manifest["shards"]


@pytest.mark.cifar
def test_other_parameters_on_the_same_store_are_refused(folder, reference):
    with pytest.raises(StoreError, match="made with other chunk_size"):
        run_extract_job(FEATURES, folder, reference.path, chunk_size=CHUNK + 1, progress=False)
    with pytest.raises(StoreError, match="made with other features"):
        run_extract_job([("hog", HOG(orientations=6))], folder, reference.path, chunk_size=CHUNK, progress=False)
    assert open_store(reference.path).manifest == reference.manifest


@pytest.mark.cifar
def test_corrupt_image_costs_only_itself_and_parallel_equals_serial(tmp_path):
    images = link_cifar_folder(tmp_path / "images", n_train=10, n_test=4, corrupt=True)
    serial = run_extract_job(FEATURES, images, tmp_path / "serial", n_jobs=1, chunk_size=8, progress=False)
    parallel = run_extract_job(FEATURES, images, tmp_path / "parallel", n_jobs=2, chunk_size=8, progress=False)
    assert read_shard_bytes(serial.path) == read_shard_bytes(parallel.path) and len(read_shard_bytes(serial.path)) == 6
    (skipped,) = serial.skipped
    assert skipped["path"].endswith("0003_bad.jpg") and "cannot identify image file" in skipped["reason"]
    assert len(serial) == 42 and skipped["path"] not in serial.paths
    assert np.array_equal(serial.labels, parallel.labels) and serial.paths == parallel.paths
    with pytest.raises(DatasetError, match="0003_bad.jpg"):
        run_extract_job(FEATURES, images, tmp_path / "strict", n_jobs=1, chunk_size=8, strict=True, progress=False)


_SLOW_JOB = """
import sys, time
import featpipe.store.format
from featpipe.pipeline.extract_job import run_extract_job

write_json = featpipe.store.format._write_json

def slow_write_json(path, document):
    if "shard-" in str(path):
        time.sleep(float(sys.argv[4]))
    write_json(path, document)

featpipe.store.format._write_json = slow_write_json
if __name__ == "__main__":
    run_extract_job("hog", sys.argv[1], sys.argv[2], n_jobs=1, chunk_size=int(sys.argv[3]), progress=False)
"""


def start_slow_job(tmp_path, images, out, delay):
    """A job in a subprocess whose shard records each wait ``delay`` seconds before being written."""
    script = tmp_path / "slow_job.py"
    script.write_text(_SLOW_JOB)
    return subprocess.Popen([sys.executable, str(script), str(images), str(out), str(CHUNK), str(delay)],
                            stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.cifar
def test_sigkill_then_rerun_gives_the_same_bytes(folder, reference, tmp_path):
    out = tmp_path / "store"
    job = start_slow_job(tmp_path, folder, out, delay=0.3)
    wait_for(lambda: len(list((out / store.SHARDS_DIR).glob("*.json"))) >= 2 if out.exists() else False)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert not store.read_manifest(out)["complete"]
    records = [json.loads(path.read_text()) for path in (out / store.SHARDS_DIR).glob("*.json")]
    assert 2 <= len(records) < len(reference.manifest["shards"])
    for path in (out / store.SHARDS_DIR).glob("*.npy"):
        assert np.load(path).shape[1] == 324
    for record in records:
        assert store.shard_is_intact(out, record)
    assert (out / store.LOCK_NAME).exists()
    resumed = run_extract_job(FEATURES, folder, out, n_jobs=1, chunk_size=CHUNK, progress=False)
    assert read_shard_bytes(out) == read_shard_bytes(reference.path)
    assert resumed.manifest["shards"] == reference.manifest["shards"]
    assert not (out / store.LOCK_NAME).exists()
    assert not [path for path in out.rglob(".*") if path.is_file()]


@pytest.mark.cifar
def test_second_job_on_the_same_store_refuses(folder, reference, tmp_path):
    out = tmp_path / "store"
    job = start_slow_job(tmp_path, folder, out, delay=0.1)
    wait_for(lambda: (out / store.SHARDS_DIR).is_dir())
    with pytest.raises(StoreError, match=f"locked by another job \\(pid {job.pid}"):
        run_extract_job(FEATURES, folder, out, n_jobs=1, chunk_size=CHUNK, progress=False)
    assert job.wait(timeout=60) == 0, job.stderr.read()
    assert read_shard_bytes(open_store(out).path) == read_shard_bytes(reference.path)


@pytest.mark.cifar
def test_full_disk_stops_cleanly_and_resumes(folder, reference, tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync_until_full(descriptor):
        if "shard-000001.npy" in os.readlink(f"/proc/self/fd/{descriptor}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(descriptor)

    monkeypatch.setattr(store.os, "fsync", fsync_until_full)
    with pytest.raises(StoreError, match="disk full while writing .*shard-000001"):
        run_extract_job(FEATURES, folder, tmp_path / "store", n_jobs=1, chunk_size=CHUNK, progress=False)
    assert sorted(read_shard_bytes(tmp_path / "store")) == ["shard-000000.npy"]
    assert not [path for path in (tmp_path / "store").rglob(".*") if path.is_file()]
    monkeypatch.setattr(store.os, "fsync", real_fsync)
    run_extract_job(FEATURES, folder, tmp_path / "store", n_jobs=1, chunk_size=CHUNK, progress=False)
    assert read_shard_bytes(tmp_path / "store") == read_shard_bytes(reference.path)


def test_in_memory_data_set_is_stored_with_its_splits(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {"X_train": rng.integers(0, 256, (40, 24, 24, 3), dtype=np.uint8), "y_train": np.arange(40) % 2,
              "X_test": rng.integers(0, 256, (10, 24, 24, 3), dtype=np.uint8), "y_test": np.arange(10) % 2}
    np.savez(tmp_path / "data.npz", **arrays)
    dataset = load_dataset(tmp_path / "data.npz", image_size=16, val_size=5)
    stored = run_extract_job([("hog", HOG(pixels_per_cell=(4, 4)))], tmp_path / "data.npz", tmp_path / "store",
                             chunk_size=15, image_size=16, val_size=5, n_jobs=1, progress=False)
    extractor = HOG(pixels_per_cell=(4, 4)).fit(dataset.X_train)
    for split in ("train", "val", "test"):
        features, labels = stored.split(split)
        np.testing.assert_array_equal(features, extractor.transform(getattr(dataset, f"X_{split}")))
        np.testing.assert_array_equal(labels, getattr(dataset, f"y_{split}"))
    assert stored.paths[:2] == ["train/0", "train/1"] and stored.paths[-1] == "test/9"


@pytest.mark.cifar
def test_extractors_come_from_a_finished_run(folder, tmp_path):
    fitted = HOG(orientations=6).fit(np.zeros((1, 32, 32, 3), np.uint8))
    run = tmp_path / "run"
    run.mkdir()
    save_model(Pipeline([("features", FeatureUnion([("hog", fitted)])), ("normalize", "passthrough")]),
               run / "model.skops")
    stored = run_extract_job("hog", folder, tmp_path / "store", from_run=run, chunk_size=64, n_jobs=1,
                             progress=False)
    assert stored.manifest["plan"]["fitted_on"] == {"run": str(run.resolve())}
    assert stored.features.shape == (114, fitted.n_features_out_) and fitted.n_features_out_ == 216
    np.testing.assert_array_equal(stored.split("test")[0], fitted.transform(load_dataset(folder).X_test))
    with pytest.raises(StoreError, match="extracts hog, not hog\\+color"):
        run_extract_job("hog+color", folder, tmp_path / "other", from_run=run, progress=False)


@pytest.mark.cifar
def test_image_missing_at_read_time_stops_the_job(folder, tmp_path, monkeypatch):
    scan = extract_inputs.scan_image_folder

    def scan_with_a_vanished_file(root):
        paths, labels, classes, splits = scan(root)
        return [*paths[:-1], str(tmp_path / "vanished.jpg")], labels, classes, splits

    monkeypatch.setattr(extract_inputs, "scan_image_folder", scan_with_a_vanished_file)
    with pytest.raises(StoreError, match="vanished.jpg was listed when the job started but cannot be found"):
        run_extract_job(FEATURES, folder, tmp_path / "store", n_jobs=1, chunk_size=CHUNK, progress=False)
    assert len(read_shard_bytes(tmp_path / "store")) == 7


@pytest.mark.cifar
def test_shards_of_extractors_that_were_never_saved_are_redone(folder, reference, tmp_path):
    out = tmp_path / "store"
    run_extract_job(FEATURES, folder, out, n_jobs=1, chunk_size=CHUNK, progress=False)
    (out / store.EXTRACTORS_NAME).unlink()
    time.sleep(0.05)
    rerun_started = time.time_ns()
    run_extract_job(FEATURES, folder, out, n_jobs=1, chunk_size=CHUNK, progress=False)
    assert (out / store.EXTRACTORS_NAME).is_file()
    assert all(path.stat().st_mtime_ns >= rerun_started for path in (out / store.SHARDS_DIR).iterdir())
    assert read_shard_bytes(out) == read_shard_bytes(reference.path)


@pytest.mark.cifar
def test_a_killed_local_worker_stops_the_job_with_a_resume_hint(folder, reference, tmp_path, monkeypatch):
    from featpipe.pipeline.workers import WorkerDied

    def run_with_a_dead_worker(self, function, tasks, on_result):
        on_result(function(*tasks[0]))
        raise WorkerDied("a worker process died before finishing its task (killed, or out of memory)")

    monkeypatch.setattr("featpipe.pipeline.workers.SharedWorkPool.run", run_with_a_dead_worker)
    with pytest.raises(StoreError, match="worker process died .*run the same command again to resume"):
        run_extract_job(FEATURES, folder, tmp_path / "store", n_jobs=1, chunk_size=CHUNK, progress=False)
    monkeypatch.undo()
    run_extract_job(FEATURES, folder, tmp_path / "store", n_jobs=1, chunk_size=CHUNK, progress=False)
    assert read_shard_bytes(tmp_path / "store") == read_shard_bytes(reference.path)
