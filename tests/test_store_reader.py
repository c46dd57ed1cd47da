"""The store reader: indexing across shards like one array, and refusing corrupt or unfinished stores."""


import numpy as np
import pytest

from featpipe.store import format as store
from featpipe.store.format import StoreError
from featpipe.store.reader import is_store
from featpipe.store.reader import open as open_store
from helpers import write_small_store


def test_reader_indexes_like_the_concatenated_array(tmp_path, arrays):
    write_small_store(tmp_path, arrays)
    opened = open_store(tmp_path)
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
    records = write_small_store(tmp_path, arrays)
    path = tmp_path / records[2]["file"]
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="shard-000002.npy is corrupt"):
        open_store(tmp_path)
    assert open_store(tmp_path, verify=False).features.shape == (14, 5)
    assert not store.shard_is_intact(tmp_path, records[2]) and store.shard_is_intact(tmp_path, records[0])


def test_unfinished_missing_and_misshapen_stores_are_refused(tmp_path, arrays):
    with pytest.raises(StoreError, match="not a feature store"):
        open_store(tmp_path / "nothing")
    assert not is_store(tmp_path / "nothing") and not is_store(tmp_path)
    write_small_store(tmp_path / "unfinished", arrays, complete=False)
    with pytest.raises(StoreError, match="unfinished"):
        open_store(tmp_path / "unfinished")
    assert is_store(tmp_path / "unfinished")
    records = write_small_store(tmp_path / "short", arrays)
    np.save(tmp_path / "short" / records[0]["file"], arrays[0][:2])
    with pytest.raises(StoreError, match=r"the manifest says float32 \(4, 5\)"):
        open_store(tmp_path / "short", verify=False)

