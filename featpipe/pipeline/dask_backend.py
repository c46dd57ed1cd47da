"""Run joblib's parallel calls on a Dask cluster: a running scheduler, or a LocalCluster started here.

``featpipe extract --backend dask`` / ``--scheduler`` wrap the job's chunk map in
:func:`dask_backend`; the chunked code itself (:mod:`featpipe.parallel`) does not change.
"""

from contextlib import ExitStack, contextmanager

from joblib import parallel_config

from featpipe.errors import BackendError


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

    Yields
    ------
    client : distributed.Client
        The cluster's client, for work that is not a joblib call (the
        heads' map-reduced losses, prediction of a store's shards).

    Raises
    ------
    BackendError
        When dask.distributed is not installed or the scheduler cannot be
        reached.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise BackendError("the Dask backend needs dask.distributed: pip install -e \".[dask]\"") from None
    with ExitStack() as stack:
        if scheduler is not None:
            try:
                client = stack.enter_context(Client(scheduler, timeout="20s"))
            except (OSError, TimeoutError) as error:
                raise BackendError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
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
        yield client
