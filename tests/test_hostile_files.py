"""Every other file featpipe reads, made hostile: pickled payloads in .npz files, .npy shards and the cache."""

import hashlib
import json
import pickle

import numpy as np
import pytest
from click.testing import CliRunner

import featpipe.store
from featpipe.cli import cli
from featpipe.datasets import DatasetError, load_dataset
from featpipe.report.model_pictures import load_examples
from featpipe.store import StoreError
from hostile import PicklePayload


def _object_array(marker):
    return np.array([PicklePayload(marker)], dtype=object)


def test_the_payload_is_live_for_a_loader_that_allows_pickles(tmp_path):
    """The control: numpy with allow_pickle=True runs it."""
    np.save(tmp_path / "payload.npy", _object_array(tmp_path / "marker"))
    np.load(tmp_path / "payload.npy", allow_pickle=True)
    assert (tmp_path / "marker").exists()


def test_an_npz_data_set_with_a_pickled_array_is_refused(tmp_path, small_npz):
    arrays = dict(np.load(small_npz))
    arrays["y_test"] = _object_array(tmp_path / "marker")
    np.savez(tmp_path / "hostile.npz", **arrays)
    with pytest.raises(DatasetError, match="cannot read .*hostile.npz as an .npz of arrays"):
        load_dataset(str(tmp_path / "hostile.npz"))
    result = CliRunner().invoke(cli, ["run", "raw+svm", "--data", str(tmp_path / "hostile.npz"),
                                      "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert not (tmp_path / "marker").exists() and not (tmp_path / "run").exists()


def test_examples_npz_with_a_pickled_array_is_refused(tmp_path):
    np.savez(tmp_path / "examples.npz", images=_object_array(tmp_path / "marker"),
             y_true=np.zeros(1, dtype=np.int64), y_pred=np.zeros(1, dtype=np.int64))
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_examples({"run_dir": str(tmp_path)})
    assert not (tmp_path / "marker").exists()


def test_a_store_shard_holding_a_pickle_is_refused(tmp_path, small_npz):
    out = tmp_path / "store"
    CliRunner().invoke(cli, ["extract", "raw", "--data", str(small_npz), "--out", str(out), "--jobs", "1", "--quiet"])
    shard = out / "shards" / "shard-000000.npy"
    np.save(shard, _object_array(tmp_path / "marker"))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"][0]["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="cannot be read: Array can.t be memory-mapped: Python objects"):
        featpipe.store.open(out)
    assert not (tmp_path / "marker").exists()


def test_a_cache_others_can_write_is_refused_before_any_pickle_is_read(tmp_path, small_npz):
    cache = tmp_path / "cache"
    args = ["run", "raw+svm", "--data", str(small_npz), "--cache-dir", str(cache), "--jobs", "1", "--quiet"]
    assert CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "first")]).exit_code == 0
    outputs = list(cache.rglob("output.pkl"))
    assert outputs
    for path in outputs:
        path.write_bytes(pickle.dumps(PicklePayload(tmp_path / "marker")))
    cache.chmod(0o777)
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "second")])
    assert result.exit_code == 2 and "can be written by other users" in result.stderr
    assert not (tmp_path / "marker").exists() and not (tmp_path / "second").exists()
