"""A store read shard by shard: plain reads with checksums, heads' row blocks, the Dask array."""

import numpy as np
import pytest

from helpers import STREAM_SHARD_ROWS as SHARD_ROWS
from helpers import write_streaming_store

from featpipe import store
from featpipe.store import format as store_format
from featpipe.heads import LinearSVM
from featpipe.heads.blocks import ScaledBlocks
from featpipe.store import StoreError
from featpipe.store.shards import read_shard


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    X, y, splits = write_streaming_store(folder)
    return folder, X, y, splits


def test_blocks_are_the_shards_read_into_memory(written):
    folder, X, _, splits = written
    opened = store.open(folder)
    blocks = opened.blocks()
    assert blocks.n_blocks == len(SHARD_ROWS)
    assert blocks.shape == X.shape
    np.testing.assert_array_equal(np.asarray(blocks), X)
    block = blocks.read_block(2)
    assert not isinstance(block, np.memmap) and block.base is not None
    np.testing.assert_array_equal(np.asarray(opened.blocks("train")), X[splits == "train"])


def test_a_corrupt_shard_is_refused_when_its_block_is_read(tmp_path):
    write_streaming_store(tmp_path)
    opened = store.open(tmp_path)
    shard = tmp_path / opened.manifest["shards"][3]["file"]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    blocks = opened.blocks()
    blocks.read_block(2)
    with pytest.raises(StoreError, match="sha256 does not match"):
        blocks.read_block(3)
    with pytest.raises(StoreError, match="sha256 does not match"):
        opened.to_dask().compute()


def test_a_truncated_or_foreign_shard_is_refused(tmp_path):
    X, _, _ = write_streaming_store(tmp_path)
    record = dict(store_format.read_manifest(tmp_path)["shards"][0])
    shard = tmp_path / record["file"]
    shard.write_bytes(shard.read_bytes()[:-40])
    with pytest.raises(StoreError, match="truncated"):
        read_shard(tmp_path, record, X.shape[1], verify=False)
    with pytest.raises(StoreError, match="outside its shards folder"):
        read_shard(tmp_path, dict(record, file="../manifest.json"), X.shape[1], verify=False)


def test_to_dask_is_lazy_one_block_per_shard_and_equal_to_the_store(written):
    folder, X, _, _ = written
    array = store.open(folder).to_dask()
    assert array.shape == X.shape and array.dtype == np.float32
    assert array.chunks[0] == tuple(rows for rows in SHARD_ROWS if rows)  # dask drops empty blocks
    np.testing.assert_allclose(array.mean(axis=0).compute(), X.mean(axis=0, dtype=np.float64), rtol=1e-5)
    np.testing.assert_array_equal(array[140:390].compute(), X[140:390])


def test_a_head_trained_on_the_store_blocks_equals_the_head_trained_on_its_rows(written):
    folder, X, y, splits = written
    opened = store.open(folder)
    train = splits == "train"
    mean, scale = X[train].mean(axis=0), X[train].std(axis=0)
    params = dict(optimizer="lbfgs", squared=True, multi_class="ovr", init="least_squares", n_epochs=30,
                  random_state=0)
    standardized = LinearSVM(**params).fit((X[train] - mean) / scale, y[train])
    streamed = LinearSVM(**params).fit(ScaledBlocks(opened.blocks("train"), mean, scale), y[train])
    assert streamed.n_iter_ < 30  # converged: the folded scaler reaches the optimum of the standardized rows
    assert streamed.loss_history_[-1] == pytest.approx(standardized.loss_history_[-1], rel=1e-6)
    np.testing.assert_array_equal(streamed.predict(ScaledBlocks(opened.blocks(), mean, scale)),
                                  standardized.predict((X - mean) / scale))


def test_training_in_memory_and_streamed_from_a_store_follow_the_same_path(tmp_path):
    """Several shards, far from convergence: the in-memory blocks keep the shards' boundaries."""
    X, y, splits = write_streaming_store(tmp_path, seed=3, n_features=300, shard_rows=(900, 1100, 0, 1000, 700, 1300))
    opened = store.open(tmp_path)
    train = splits == "train"
    mean, scale = X[train].mean(axis=0), X[train].std(axis=0)
    params = dict(optimizer="lbfgs", squared=True, multi_class="ovr", init="least_squares", n_epochs=12,
                  reg=1e-5, random_state=0)
    streamed = LinearSVM(**params).fit(ScaledBlocks(opened.blocks("train"), mean, scale), y[train])
    in_memory = LinearSVM(**params).fit(ScaledBlocks(opened.blocks("train").in_memory(), mean, scale), y[train])
    assert streamed.n_iter_ == in_memory.n_iter_ == 12
    assert streamed.loss_history_[-1] < 0.99 * streamed.loss_history_[0]  # it moved, and had not converged
    np.testing.assert_allclose(streamed.loss_history_, in_memory.loss_history_, rtol=1e-9)
    np.testing.assert_allclose(streamed.coef_, in_memory.coef_, rtol=1e-5, atol=1e-7)


def test_a_shard_is_verified_on_its_first_read_then_memory_mapped(written):
    folder, X, _, _ = written
    blocks = store.open(folder).blocks()
    first, second = blocks.read_block(4), blocks.read_block(4)
    assert not isinstance(first.base, np.memmap)
    assert isinstance(second.base, np.memmap) and not second.flags.writeable
    np.testing.assert_array_equal(second, X[550:750])
