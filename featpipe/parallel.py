"""Chunked, parallel feature extraction over an image batch.

Extraction is a map over chunks of images: every chunk goes through the same
fitted extractor's vectorized ``transform``, and the rows land in one
preallocated float32 matrix. Under joblib's default ``loky`` backend the
chunks run in local worker processes; inside
``joblib.parallel_config(backend="dask")`` the very same calls run on a
``dask.distributed`` cluster. Results do not depend on ``n_jobs``: each row
is computed from its own image only.
"""

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_info

from featpipe.errors import ParameterError

DEFAULT_CHUNK_SIZE = 2000
"""Images per task (a run's extraction) or per shard (an extract job): about a second of HOG + colour
work on 32x32 images."""


def chunk_bounds(n_items, chunk_size):
    """Return the (start, stop) pairs that cut ``n_items`` into chunks."""
    if chunk_size < 1:
        raise ParameterError(f"chunk_size must be at least 1; got {chunk_size}")
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


def blas_threads():
    """Threads the BLAS in use may run now (1 if none is found).

    The compiled encoders and the block-wise loss run one BLAS thread per
    worker thread, and start this many worker threads.
    """
    counts = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    return max(counts, default=1)
