"""Chunked, parallel feature extraction over an image batch.

Extraction is a map over chunks of images: every chunk goes through the same
fitted extractor's vectorized ``transform``, and the rows land in one
preallocated float32 matrix. Under joblib's default ``loky`` backend the
chunks run in local worker processes; inside
``joblib.parallel_config(backend="dask")`` the very same calls run on a
``dask.distributed`` cluster. Results do not depend on ``n_jobs``: each row
is computed from its own image only.
"""

from contextlib import ExitStack, contextmanager

import numpy as np
from joblib import Parallel, delayed, parallel_config

DEFAULT_CHUNK_SIZE = 2000


def chunk_bounds(n_items, chunk_size):
    """Return the (start, stop) pairs that cut ``n_items`` into chunks."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1; got {chunk_size}")
    return [(start, min(start + chunk_size, n_items)) for start in range(0, n_items, chunk_size)]


def _transform_chunk(extractor, images):
    return extractor.transform(images)


def transform_in_chunks(extractor, images, n_jobs=None, chunk_size=DEFAULT_CHUNK_SIZE, progress=None):
    """Transform ``images`` with a fitted extractor, chunk by chunk.

    Parameters
    ----------
    extractor : ImageFeatureExtractor
        A fitted extractor; it is sent once to each worker.
    images : ndarray of uint8, shape (N, H, W, 3)
        The batch to transform.
    n_jobs : int or None, default=None
        Number of worker processes; ``None`` or 1 runs in this process,
        -1 uses every core.
    chunk_size : int, default=2000
        Images per task. Large enough that a task takes a fraction of a
        second, small enough to bound memory and balance the workers.
    progress : callable or None
        Called with the number of images finished after each chunk.

    Returns
    -------
    features : ndarray of float32, shape (N, extractor.n_features_out_)
    """
    bounds = chunk_bounds(len(images), chunk_size)
    features = np.empty((len(images), extractor.n_features_out_), dtype=np.float32)
    if n_jobs in (None, 1) or len(bounds) == 1:
        for start, stop in bounds:
            features[start:stop] = extractor.transform(images[start:stop])
            if progress is not None:
                progress(stop - start)
        return features
    parallel = Parallel(n_jobs=n_jobs, return_as="generator", max_nbytes="1M")
    chunks = parallel(delayed(_transform_chunk)(extractor, images[start:stop]) for start, stop in bounds)
    for (start, stop), chunk in zip(bounds, chunks):
        features[start:stop] = chunk
        if progress is not None:
            progress(stop - start)
    return features


@contextmanager
def dask_backend(n_jobs, scheduler):
    """Run the joblib ``Parallel`` calls inside this block on Dask: on ``scheduler``, or on a new LocalCluster.

    Parameters
    ----------
    n_jobs : int or None
        Worker processes of the LocalCluster (None or -1: one per core);
        ignored with ``scheduler``.
    scheduler : str or None
        Address of a running scheduler, ``tcp://HOST:PORT``.

    Raises
    ------
    ValueError
        When dask.distributed is not installed or the scheduler cannot be
        reached.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("the Dask backend needs dask.distributed: pip install -e \".[dask]\"") from None
    with ExitStack() as stack:
        if scheduler is not None:
            try:
                client = stack.enter_context(Client(scheduler, timeout="20s"))
            except (OSError, TimeoutError) as error:
                raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        else:
            import dask

            n_workers = None if n_jobs in (None, -1) else n_jobs
            stack.enter_context(dask.config.set({"distributed.worker.profile.enabled": False}))
            cluster = stack.enter_context(LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=":0",
            ))
            client = stack.enter_context(Client(cluster))
        stack.enter_context(parallel_config(backend="dask", wait_for_workers_timeout=60))
        client.wait_for_workers(1, timeout=60)
        yield
