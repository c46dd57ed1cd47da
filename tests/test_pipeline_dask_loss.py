"""The heads' full-batch loss map-reduced over a store's shards on a two-worker LocalCluster."""

import numpy as np
import pytest
from sklearn.base import clone
from helpers import write_streaming_store

from featpipe import store
from featpipe.heads import LinearSVM, Softmax
from featpipe.heads.blocks import ScaledBlocks
from featpipe.store.shards import StoreBlocks

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A store wide enough (600 features, 1,500-row shards) that the BLAS splits its products over threads."""
    folder = tmp_path_factory.mktemp("store")
    X, y, splits = write_streaming_store(folder, n_features=600, shard_rows=(1500,) * 5 + (700,))
    return folder, X, y, splits


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.mark.parametrize("head", [
    LinearSVM(optimizer="lbfgs", squared=True, multi_class="ovr", n_epochs=30),
    Softmax(optimizer="gd", n_epochs=15),
], ids=["svm2-lbfgs", "softmax-gd"])
def test_the_full_batch_loss_map_reduced_on_dask_workers_takes_the_local_steps_to_the_bit(written, client, head):
    from featpipe.pipeline.dask_loss import DistributedBlocks

    folder, X, y, splits = written
    opened = store.open(folder)
    train = splits == "train"
    mean, scale = X[train].mean(axis=0), X[train].std(axis=0)
    local = clone(head).set_params(random_state=0).fit(ScaledBlocks(opened.blocks("train"), mean, scale), y[train])
    distributed_source = ScaledBlocks(DistributedBlocks(StoreBlocks(opened), client, blocks_per_task=2).select(train),
                                      mean, scale)
    with distributed.get_task_stream(client) as stream:
        remote = clone(head).set_params(random_state=0).fit(distributed_source, y[train])
    # Each block's products run on one BLAS thread on either side and the client adds the blocks in
    # order, so every evaluation, and with it every L-BFGS / GD step, is the same bits.
    assert remote.n_iter_ == local.n_iter_
    assert remote.loss_history_ == local.loss_history_
    np.testing.assert_array_equal(remote.coef_, local.coef_)
    workers = {task["worker"] for task in stream.data if "_block_losses" in str(task["key"])}
    assert len(workers) == 2, "both workers compute block losses"
