"""Run independent tasks in this process and in worker processes that share one queue.

With ``n_jobs`` cores, :class:`SharedWorkPool` starts ``n_jobs - 1`` worker
processes and lets this process work as the last one. That is what makes a
short job scale: a spawned worker needs a second or two to import numpy,
scikit-learn and featpipe, and with a pool of ``n_jobs`` workers every core
would sit idle for that time while this process only waits. Here this
process starts on the first task at once, the workers join when they are
ready, and each takes its next task only when it has finished the last, so
the job ends at most one task apart on every core.

Workers are spawned (not forked: this process may hold threads and a
started BLAS thread pool) and keep their BLAS to one thread, like joblib's
workers, so ``n_jobs`` processes never run more than ``n_jobs`` threads;
they ignore Ctrl-C, which the main process answers by closing the pool.
"""

import importlib
import queue
import signal
import threading
from collections import deque
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from joblib import effective_n_jobs
from threadpoolctl import threadpool_limits

_worker_limits = None


def _init_worker(preload):
    """Worker initializer: import ``preload``, one BLAS thread, Ctrl-C left to the main process.

    The main process answers Ctrl-C by closing the pool; a worker that took
    the signal itself would die with a traceback of its own.
    """
    global _worker_limits
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for module in preload:
        importlib.import_module(module)
    _worker_limits = threadpool_limits(limits=1, user_api="blas")


@contextmanager
def _sigint_ignored():
    """Ignore Ctrl-C in this process while workers are spawned, so they start with it ignored.

    A spawned worker spends a second or two importing before its
    initializer runs; a Ctrl-C then would kill it with a traceback of its
    own. An ignored SIGINT survives ``exec``, and Python leaves it ignored,
    so the workers never see it; this process gets its handler back at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _ready():
    """A no-op task: submitting it makes the executor start its workers now."""


class WorkerDied(ChildProcessError):
    """A worker process ended without finishing its task (killed, or out of memory)."""


class SharedWorkPool:
    """This process plus ``n_jobs - 1`` spawned workers, taking tasks from one queue.

    Parameters
    ----------
    n_jobs : int or None
        Processes working at once, this one included; ``None`` or -1 means
        every core (joblib's meaning). With 1, tasks simply run here.
    preload : str or None
        A module the workers import as soon as they start (the tasks'
        module: its imports are what make a worker slow to start).

    Examples
    --------
    >>> with SharedWorkPool(2) as pool:  # doctest: +SKIP
    ...     pool.run(pow, [(2, 3), (3, 2)], print)
    """

    def __init__(self, n_jobs, preload=None):
        self.n_workers = effective_n_jobs(-1 if n_jobs is None else n_jobs) - 1
        self._executor = None
        if self.n_workers > 0:
            self._executor = ProcessPoolExecutor(
                self.n_workers, mp_context=get_context("spawn"), initializer=_init_worker,
                initargs=(() if preload is None else (preload,),))
            with _sigint_ignored():
                for _ in range(self.n_workers):
                    self._executor.submit(_ready)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Stop the workers; a task a worker is running is finished first."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def run(self, function, argument_tuples, on_result):
        """Call ``function(*arguments)`` for every tuple, here and in the workers.

        ``on_result`` is called in this thread with each result, in the order
        the tasks finish. The first task that raises stops the handing out
        of tasks; its exception is raised here once the tasks already
        started have ended. A worker that dies raises :class:`WorkerDied`.
        """
        pending = deque(argument_tuples)
        total = len(pending)
        lock = threading.Lock()
        finished = queue.SimpleQueue()  # (True, result) or (False, exception)
        stopped = threading.Event()

        def take():
            with lock:
                return None if stopped.is_set() or not pending else pending.popleft()

        def feed_worker():
            arguments = take()
            if arguments is not None:
                self._executor.submit(function, *arguments).add_done_callback(collect)

        def collect(future):
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                error = WorkerDied("a worker process died before finishing its task (killed, or out of memory)")
            if error is not None:
                stopped.set()
                finished.put((False, error))
                return
            finished.put((True, future.result()))
            feed_worker()

        def hand_over_finished():
            ok, value = finished.get()
            if not ok:
                stopped.set()
                raise value
            on_result(value)

        received = 0
        try:
            for _ in range(self.n_workers):
                feed_worker()
            limits = threadpool_limits(limits=1, user_api="blas") if self.n_workers else None
            try:
                while (arguments := take()) is not None:
                    on_result(function(*arguments))
                    received += 1
                    while not finished.empty():
                        hand_over_finished()
                        received += 1
            finally:
                if limits is not None:
                    limits.restore_original_limits()
            while received + len(pending) < total:
                hand_over_finished()
                received += 1
        except BaseException:
            stopped.set()
            raise
