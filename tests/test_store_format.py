"""The store's files: plain .npy shards with their sha256, atomic writes, temporary files cleaned up."""

import errno
import hashlib
import json

import numpy as np
import pytest

from featpipe.store import format as store
from featpipe.store.format import StoreError
from helpers import write_small_store


def test_shard_file_is_a_plain_npy_with_its_sha256(tmp_path, arrays):
    records = write_small_store(tmp_path, arrays)
    for record, array in zip(records, arrays):
        path = tmp_path / record["file"]
        np.testing.assert_array_equal(np.load(path), array)
        assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert record["n_rows"] == len(array)
        assert json.loads((path.with_suffix(".json")).read_text()) == record


def test_full_disk_leaves_no_half_written_shard(tmp_path, arrays, monkeypatch):
    (tmp_path / store.SHARDS_DIR).mkdir()

    def full_disk(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full_disk)
    with pytest.raises(StoreError, match="disk full while writing .*shard-000000.npy"):
        store.write_shard(tmp_path, 0, arrays[0], (0, 4), [])
    assert list((tmp_path / store.SHARDS_DIR).iterdir()) == []


def test_temporary_files_are_hidden_and_removed(tmp_path, arrays):
    write_small_store(tmp_path, arrays)
    leftover = tmp_path / store.SHARDS_DIR / ".shard-000009.npy.tmp-123-abcd"
    leftover.write_bytes(b"half")
    assert store.read_shard_record(tmp_path, 9) is None
    store.remove_temporary_files(tmp_path)
    assert not leftover.exists()
    assert len(list((tmp_path / store.SHARDS_DIR).glob("*.npy"))) == 4
