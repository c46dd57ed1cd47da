"""The heads' full-batch loss as a map-reduce over row blocks on a Dask cluster.

:class:`DistributedBlocks` wraps a picklable block source that reads its own
data (a feature store's :class:`~featpipe.store.shards.StoreBlocks`, maybe
standardized and restricted to a split) and hands its blocks to the workers
of a ``dask.distributed`` cluster. Each evaluation of the full-batch loss
sends the weights to every worker, each worker reads its blocks from the
shared store and returns each block's ``(rows, loss, gradient)``, computed
with one BLAS thread, and the client adds them in block order, exactly as
local training does (:func:`featpipe.heads.blocks.block_losses`), so a
cluster takes the same optimizer steps to the bit; only the weights go out
and only per-block gradients come back (the source description, the loss
function and the labels are sent once per fit). The heads see an ordinary block
source: L-BFGS, gradient descent and random search run unchanged, SGD and
the least-squares start read blocks locally. Standardizing wraps this
source in a :class:`~featpipe.heads.blocks.ScaledBlocks`, which folds the
scaler into the weights, so the workers read raw shards and receive folded
weights.

Workers must see the store at the same path (one machine, or a shared file
system on a cluster).
"""

from itertools import chain

from featpipe.heads.blocks import RowBlocks, add_block_losses, block_losses, non_empty_blocks


def _block_losses(source, blocks, data_loss, W, labels, first_row):
    """``(rows, loss, gradient)`` of each of ``blocks`` of ``source``, one BLAS thread each (runs on a worker).

    ``labels`` are those of the rows from ``first_row`` on, as far as the blocks reach.
    """
    return list(block_losses(data_loss, W, source, labels, blocks, first_row=first_row))


class DistributedBlocks(RowBlocks):
    """A block source whose full-batch loss is summed on the workers of a Dask cluster.

    Parameters
    ----------
    source : RowBlocks
        Picklable and light (it describes where its rows are, it does not
        hold them); it is sent once to every worker.
    client : distributed.Client
        The cluster to run on.
    blocks_per_task : int, default=1
        Blocks summed by one task; a few blocks per task keeps each task at
        a fraction of a second for small shards.
    """

    can_map_reduce = True

    def __init__(self, source, client, blocks_per_task=1):
        self.source = source
        self.client = client
        self.blocks_per_task = max(1, int(blocks_per_task))
        self.n_features = source.n_features
        self.dtype = source.dtype
        self.block_bounds = source.block_bounds
        self._sent_for = None
        self._sent = None

    def _read_block(self, index):
        return self.source.read_block(index)

    def summed_loss(self, data_loss, W, y):
        """The summed loss of every block, on the workers (:meth:`map_reduce_loss`)."""
        return self.map_reduce_loss(data_loss, W, y)

    def _send_fit_constants(self, data_loss, y, mask):
        """Scatter what stays the same during a fit (source, loss, labels) once; return the futures."""
        objects = (data_loss, y, mask)
        if self._sent_for is None or any(a is not b for a, b in zip(objects, self._sent_for)):
            source = self.source if mask is None else self.source.select(mask)
            scatter = self.client.scatter
            bounds = source.block_bounds
            self._sent = (
                scatter(source, broadcast=True, hash=False),
                scatter(data_loss, broadcast=True, hash=False),
                [(group, bounds[group[0]], scatter(y[bounds[group[0]]:bounds[group[-1] + 1]], hash=False))
                 for group in _groups(bounds, self.blocks_per_task)],
            )
            self._sent_for = objects
        return self._sent

    def map_reduce_loss(self, data_loss, W, y, mask=None):
        """Sum over every block (rows where ``mask`` is True) of ``rows * data_loss(W, block, labels)``.

        Parameters
        ----------
        data_loss : callable
            ``data_loss(W, X_block, y_block) -> (mean loss, dW)``; picklable.
        W : ndarray
            Current weights; the only array sent on every call.
        y : ndarray of shape (rows selected,)
            Labels of the selected rows, in order.
        mask : ndarray of bool or None
            Rows of the source taking part (``None``: all).

        Returns
        -------
        total : float
        gradient : ndarray of float64, shape of ``W``
        """
        source, loss, groups = self._send_fit_constants(data_loss, y, mask)
        weights = self.client.scatter(W, broadcast=True, hash=False)
        partials = [self.client.submit(_block_losses, source, group, loss, weights, labels, int(first_row),
                                       pure=False)
                    for group, first_row, labels in groups]
        return add_block_losses(chain.from_iterable(partial.result() for partial in partials), W.shape)


def _groups(block_bounds, blocks_per_task):
    """Consecutive non-empty block indices, ``blocks_per_task`` at a time."""
    non_empty = non_empty_blocks(block_bounds)
    return [non_empty[start:start + blocks_per_task] for start in range(0, len(non_empty), blocks_per_task)]
