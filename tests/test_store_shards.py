"""A store read shard by shard: plain reads with checksums, heads' row blocks, the Dask array, and the
full-batch loss map-reduced on a two-worker LocalCluster."""

import numpy as np
import pytest

from featpipe import store
from featpipe.heads import LinearSVM, Softmax
from featpipe.heads.blocks import ScaledBlocks
from featpipe.store import StoreError
from featpipe.store_shards import StoreBlocks, read_shard

N_FEATURES = 12
SHARD_ROWS = (150, 0, 230, 170, 200, 50)


def write_test_store(folder, seed=0):
    """A finished store of six shards (one empty) of separable-but-noisy five-class rows; return X, y, splits."""
    rng = np.random.default_rng(seed)
    n_rows = sum(SHARD_ROWS)
    y = rng.integers(0, 5, size=n_rows)
    centres = rng.normal(scale=0.6, size=(5, N_FEATURES))
    X = (3.0 + centres[y] + rng.normal(size=(n_rows, N_FEATURES)) * 2.0).astype(np.float32)
    splits = np.where(np.arange(n_rows) % 10 == 0, "test", "train")
    (folder / store.SHARDS_DIR).mkdir(parents=True)
    offsets = np.cumsum((0,) + SHARD_ROWS)
    records = [store.write_shard(folder, index, X[start:stop], (start, stop), [])
               for index, (start, stop) in enumerate(zip(offsets[:-1], offsets[1:]))]
    store.write_manifest(folder, {
        "format": store.FORMAT_VERSION, "complete": True, "n_features": N_FEATURES,
        "shards": [{"file": r["file"], "rows": [int(a), int(b)], "n_rows": r["n_rows"], "sha256": r["sha256"]}
                   for r, a, b in zip(records, offsets[:-1], offsets[1:])],
        "features": [{"name": "raw", "width": N_FEATURES}],
        "labels": y.tolist(), "splits": splits.tolist(), "classes": list("abcde"),
        "paths": [f"p{row}" for row in range(n_rows)], "skipped": [],
    })
    return X, y, splits


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    X, y, splits = write_test_store(folder)
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
    write_test_store(tmp_path)
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
    write_test_store(tmp_path)
    record = dict(store.read_manifest(tmp_path)["shards"][0])
    shard = tmp_path / record["file"]
    shard.write_bytes(shard.read_bytes()[:-40])
    with pytest.raises(StoreError, match="truncated"):
        read_shard(tmp_path, record, N_FEATURES, verify=False)
    with pytest.raises(StoreError, match="outside its shards folder"):
        read_shard(tmp_path, dict(record, file="../manifest.json"), N_FEATURES, verify=False)


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
    in_memory = LinearSVM(**params).fit((X[train] - mean) / scale, y[train])
    streamed = LinearSVM(**params).fit(ScaledBlocks(opened.blocks("train"), mean, scale), y[train])
    assert streamed.n_iter_ == in_memory.n_iter_
    assert streamed.loss_history_[-1] == pytest.approx(in_memory.loss_history_[-1], rel=1e-4)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.mark.parametrize("head", [
    LinearSVM(optimizer="lbfgs", squared=True, multi_class="ovr", n_epochs=30),
    Softmax(optimizer="gd", n_epochs=15),
], ids=["svm2-lbfgs", "softmax-gd"])
def test_the_full_batch_loss_map_reduced_on_dask_workers_reaches_the_local_optimum(written, client, head):
    import distributed

    from featpipe.dask_blocks import DistributedBlocks

    folder, X, y, splits = written
    opened = store.open(folder)
    train = splits == "train"
    mean, scale = X[train].mean(axis=0), X[train].std(axis=0)
    local = head.set_params(random_state=0).fit(ScaledBlocks(opened.blocks("train"), mean, scale), y[train])
    expected_loss, expected_iterations = local.loss_history_[-1], local.n_iter_
    source = ScaledBlocks(StoreBlocks(opened), mean, scale)
    distributed_source = DistributedBlocks(source, client, blocks_per_task=2).select(train)
    with distributed.get_task_stream(client) as stream:
        remote = head.set_params(random_state=0).fit(distributed_source, y[train])
    assert remote.n_iter_ == expected_iterations
    assert remote.loss_history_[-1] == pytest.approx(expected_loss, rel=1e-4)
    workers = {task["worker"] for task in stream.data if "_block_losses" in str(task["key"])}
    assert len(workers) == 2, "both workers compute block losses"
