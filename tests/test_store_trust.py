"""Hostile store manifests and shard records are refused before anything they name is opened;
store files are deterministic across an interrupted and resumed job."""

import hashlib
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

import featpipe.store
from featpipe.pipeline import extract_job
from featpipe.cli import cli
from featpipe.pipeline.extract_job import run_extract_job
from featpipe.pipeline.spec import Step
from featpipe.store import format as store_format
from featpipe.store import StoreError


FEATURES_WITH_A_FIT = [Step("hog"), Step("words", {"n_words": 16, "n_patches": 5000})]
"""Features of which one learns (seeded k-means), small enough to fit in a second."""


@pytest.fixture
def store_dir(tmp_path, small_npz):
    out = tmp_path / "store"
    run_extract_job("raw", str(small_npz), out, n_jobs=1, chunk_size=100, progress=False)
    return out


def _edit_manifest(store_dir, change):
    path = store_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _outside_file(tmp_path, rows, width):
    """A valid shard-shaped .npy outside the store, and its sha256."""
    outside = tmp_path / "outside.npy"
    np.save(outside, np.full((rows, width), 7.0, dtype=np.float32))
    return outside, hashlib.sha256(outside.read_bytes()).hexdigest()


def _refused(store_dir, match, tmp_path):
    with pytest.raises(StoreError, match=match):
        featpipe.store.open(store_dir)
    result = CliRunner().invoke(cli, ["run", "raw+svm", "--data", str(store_dir), "--out", str(tmp_path / "run"),
                                      "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert not (tmp_path / "run").exists()


def test_a_shard_path_that_climbs_out_of_the_store_is_refused(store_dir, tmp_path):
    shard = json.loads((store_dir / "manifest.json").read_text())["shards"][0]
    outside, digest = _outside_file(tmp_path, shard["n_rows"], 3072)
    relative = os.path.relpath(outside, store_dir / "shards")

    def climb(manifest):
        manifest["shards"][0]["file"] = f"shards/{relative}"
        manifest["shards"][0]["sha256"] = digest

    _edit_manifest(store_dir, climb)
    _refused(store_dir, r"names shard 0 'shards/\.\./\.\./outside\.npy'.*refused", tmp_path)


@pytest.mark.parametrize("name", ["/etc/passwd", "shards/other.npy", "shards/shard-000000.json", "shard-000000.npy"])
def test_any_name_other_than_the_writers_is_refused(store_dir, tmp_path, name):
    _edit_manifest(store_dir, lambda manifest: manifest["shards"][0].update(file=name))
    _refused(store_dir, "a featpipe store names it 'shards/shard-000000.npy'", tmp_path)


def test_a_shard_that_is_a_symbolic_link_out_of_the_store_is_refused(store_dir, tmp_path):
    shard_path = store_dir / "shards" / "shard-000000.npy"
    outside, digest = _outside_file(tmp_path, np.load(shard_path).shape[0], 3072)
    shard_path.unlink()
    shard_path.symlink_to(outside)
    _edit_manifest(store_dir, lambda manifest: manifest["shards"][0].update(sha256=digest))
    _refused(store_dir, "is a symbolic link; refused", tmp_path)


def test_a_shards_folder_that_is_a_symbolic_link_is_refused(store_dir, tmp_path):
    (store_dir / "shards").rename(tmp_path / "elsewhere")
    (store_dir / "shards").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    _refused(store_dir, "shards/ is a symbolic link", tmp_path)


@pytest.mark.parametrize("change, message", [
    (lambda manifest: manifest["labels"].__setitem__(0, 99), "labels must be integers from 0 to 2"),
    (lambda manifest: manifest["labels"].pop(), "hold 240 rows but it lists 239 labels"),
    (lambda manifest: manifest["shards"][0].update(n_rows="many"), "no valid n_rows"),
    (lambda manifest: manifest["shards"].reverse(), "names shard 0 'shards/shard-000002.npy'"),
    (lambda manifest: manifest.update(n_features=-1), "n_features"),
    (lambda manifest: manifest["splits"].__setitem__(0, "../x"), "splits must be among"),
    (lambda manifest: manifest["features"][0].update(width=1), "widths do not add up"),
])
def test_inconsistent_manifests_are_refused_in_one_line(store_dir, tmp_path, change, message):
    _edit_manifest(store_dir, change)
    _refused(store_dir, message, tmp_path)


def test_a_resumed_job_trusts_no_shard_record_naming_another_file(store_dir, small_npz, tmp_path):
    outside, _ = _outside_file(tmp_path, 1, 1)
    record_path = store_dir / "shards" / "shard-000001.json"
    record = json.loads(record_path.read_text())
    record["file"] = os.path.relpath(outside, store_dir)
    record_path.write_text(json.dumps(record))
    _edit_manifest(store_dir, lambda manifest: manifest.update(complete=False))
    with pytest.raises(StoreError, match="names shard 1 '../outside.npy'"):
        run_extract_job("raw", str(small_npz), store_dir, n_jobs=1, chunk_size=100, progress=False)
    assert outside.is_file()


def _store_bytes(store_dir):
    return {str(path.relative_to(store_dir)): path.read_bytes() for path in sorted(store_dir.rglob("*"))
            if path.is_file() and path.name != store_format.TIMINGS_NAME}


def test_an_interrupted_and_resumed_store_has_the_bytes_of_an_uninterrupted_one(tmp_path, small_npz,
                                                                              monkeypatch):
    reference = tmp_path / "reference"
    run_extract_job(FEATURES_WITH_A_FIT, str(small_npz), reference, n_jobs=1, chunk_size=50, progress=False)
    original = extract_job._extract_chunk
    calls = []

    def interrupted_after_two(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    out = tmp_path / "resumed"
    monkeypatch.setattr(extract_job, "_extract_chunk", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        run_extract_job(FEATURES_WITH_A_FIT, str(small_npz), out, n_jobs=1, chunk_size=50, progress=False)
    monkeypatch.setattr(extract_job, "_extract_chunk", original)
    run_extract_job(FEATURES_WITH_A_FIT, str(small_npz), out, n_jobs=1, chunk_size=50, progress=False)
    expected = _store_bytes(reference)
    assert {"manifest.json", "extractors.skops", "shards/shard-000004.npy"} <= set(expected)
    assert _store_bytes(out) == expected
    assert "seconds" not in json.loads((out / "manifest.json").read_text())
    assert json.loads((out / store_format.TIMINGS_NAME).read_text())["seconds"] > 0
