"""Tests for the feature store: atomic shards, checksums, the lock and the sharded reader."""

import errno
import hashlib
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from featpipe import store
from featpipe.store import StoreError
from featpipe.store_lock import StoreLock


def _write_store(folder, arrays, complete=True):
    """A store of the given shards with a minimal manifest, as the job writes it."""
    (folder / store.SHARDS_DIR).mkdir(parents=True)
    records = [store.write_shard(folder, index, array, (10 * index, 10 * index + len(array)), [])
               for index, array in enumerate(arrays)]
    offsets = np.cumsum([0] + [len(array) for array in arrays]).tolist()
    n_rows = offsets[-1]
    store.write_manifest(folder, {
        "format": store.FORMAT_VERSION, "complete": complete, "n_features": arrays[0].shape[1],
        "shards": [{"file": record["file"], "rows": [first, last], "n_rows": record["n_rows"],
                    "sha256": record["sha256"]}
                   for record, first, last in zip(records, offsets[:-1], offsets[1:])],
        "features": [{"name": "a", "width": 2}, {"name": "b", "width": arrays[0].shape[1] - 2}],
        "labels": list(range(n_rows)), "splits": ["train"] * (n_rows - 1) + ["test"],
        "classes": [f"class{row}" for row in range(n_rows)], "paths": [f"p{row}" for row in range(n_rows)],
        "skipped": [], "plan": {"image_size": 32},
    })
    return records


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((rows, 5)).astype(np.float32) for rows in (4, 0, 7, 3)]


def test_shard_file_is_a_plain_npy_with_its_sha256(tmp_path, arrays):
    records = _write_store(tmp_path, arrays)
    for record, array in zip(records, arrays):
        path = tmp_path / record["file"]
        np.testing.assert_array_equal(np.load(path), array)
        assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert record["n_rows"] == len(array)
        assert json.loads((path.with_suffix(".json")).read_text()) == record


def test_reader_indexes_like_the_concatenated_array(tmp_path, arrays):
    _write_store(tmp_path, arrays)
    opened = store.open(tmp_path)
    expected = np.concatenate(arrays)
    features = opened.features
    assert features.shape == expected.shape == (14, 5) and features.dtype == np.float32
    assert all(isinstance(shard, np.memmap) for shard in features.shards if len(shard))
    np.testing.assert_array_equal(np.asarray(features), expected)
    mask = np.arange(14) % 3 == 0
    for key in (3, -1, slice(2, 12, 3), slice(None, None, -1), mask, np.array([13, 0, 5, 5]),
                (slice(1, 9), slice(1, 4)), (np.array([6, 2]), 4)):
        np.testing.assert_array_equal(features[key], expected[key])
    np.testing.assert_array_equal(features[mask, np.array([0, 4])], expected[mask][:, [0, 4]])
    X_train, y_train = opened.split("train")
    np.testing.assert_array_equal(X_train, expected[:13])
    np.testing.assert_array_equal(y_train, np.arange(13))
    assert opened.feature_widths == {"a": 2, "b": 3}
    with pytest.raises(IndexError):
        features[np.array([14])]


def test_corrupt_shard_fails_its_checksum(tmp_path, arrays):
    records = _write_store(tmp_path, arrays)
    path = tmp_path / records[2]["file"]
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="shard-000002.npy is corrupt"):
        store.open(tmp_path)
    assert store.open(tmp_path, verify=False).features.shape == (14, 5)
    assert not store.shard_is_intact(tmp_path, records[2]) and store.shard_is_intact(tmp_path, records[0])


def test_unfinished_missing_and_misshapen_stores_are_refused(tmp_path, arrays):
    with pytest.raises(StoreError, match="not a feature store"):
        store.open(tmp_path / "nothing")
    assert not store.is_store(tmp_path / "nothing") and not store.is_store(tmp_path)
    _write_store(tmp_path / "unfinished", arrays, complete=False)
    with pytest.raises(StoreError, match="unfinished"):
        store.open(tmp_path / "unfinished")
    assert store.is_store(tmp_path / "unfinished")
    records = _write_store(tmp_path / "short", arrays)
    np.save(tmp_path / "short" / records[0]["file"], arrays[0][:2])
    with pytest.raises(StoreError, match=r"the manifest says float32 \(4, 5\)"):
        store.open(tmp_path / "short", verify=False)


def test_full_disk_leaves_no_half_written_shard(tmp_path, arrays, monkeypatch):
    (tmp_path / store.SHARDS_DIR).mkdir()

    def full_disk(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full_disk)
    with pytest.raises(StoreError, match="disk full while writing .*shard-000000.npy"):
        store.write_shard(tmp_path, 0, arrays[0], (0, 4), [])
    assert list((tmp_path / store.SHARDS_DIR).iterdir()) == []


def test_temporary_files_are_hidden_and_removed(tmp_path, arrays):
    _write_store(tmp_path, arrays)
    leftover = tmp_path / store.SHARDS_DIR / ".shard-000009.npy.tmp-123-abcd"
    leftover.write_bytes(b"half")
    assert store.read_shard_record(tmp_path, 9) is None
    store.remove_temporary_files(tmp_path)
    assert not leftover.exists()
    assert len(list((tmp_path / store.SHARDS_DIR).glob("*.npy"))) == 4


def test_second_lock_refuses_and_names_the_owner(tmp_path):
    with StoreLock(tmp_path):
        owner = json.loads((tmp_path / store.LOCK_NAME).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(StoreError, match=f"locked by another job \\(pid {os.getpid()}"):
            StoreLock(tmp_path).acquire()
    assert not (tmp_path / store.LOCK_NAME).exists()
    StoreLock(tmp_path).acquire().release()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)
    (tmp_path / store.LOCK_NAME).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": dead_pid, "started": "then", "token": "t"}))
    with StoreLock(tmp_path):
        assert json.loads((tmp_path / store.LOCK_NAME).read_text())["pid"] == os.getpid()
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_lock_held_on_another_host_is_not_taken_over(tmp_path):
    (tmp_path / store.LOCK_NAME).write_text(json.dumps(
        {"host": "elsewhere-" + socket.gethostname(), "pid": 1, "started": "then", "token": "t"}))
    with pytest.raises(StoreError, match="on elsewhere-"):
        StoreLock(tmp_path).acquire()
