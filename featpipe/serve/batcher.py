"""Micro-batching: concurrent requests for one model become one vectorized call.

Requests put their decoded images in one waiting line per model. A few
worker coroutines (one per core) each take the first request waiting, add
the requests behind it while the batch stays within ``max_batch`` images and
the first one has waited less than ``max_wait_ms`` (and only while other
requests are on their way: a lone request does not wait), and run the model once,
in a thread, on the stacked images. Because the extractors and BLAS release
the GIL, two workers keep two cores busy.

What cannot wedge it:

- A request whose client went away (its future cancelled) is dropped when a
  worker reaches it, and a result for it is thrown away.
- A request past its deadline is answered 503 without being computed.
- When the model raises on a batch, each request of the batch is retried
  alone, so only the request that causes the error gets it.
- The workers catch everything; nothing a request does ends them.

Waits with a deadline use :func:`asyncio.timeout`, not :func:`asyncio.wait_for`:
in Python 3.11 ``wait_for`` runs a coroutine in a task of its own and relays
the outcome through one more future, and each of those hand-offs costs a
pass of the event loop, which under load is every other request's turn.
"""

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from featpipe.serve.problems import Problem

logger = logging.getLogger("featpipe.serve")


@dataclass
class _Waiting:
    images: np.ndarray
    future: asyncio.Future
    deadline: float
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Gather requests for one batch function into batches and run them off the event loop.

    Parameters
    ----------
    run_batch : callable
        ``run_batch(images) -> tuple of arrays`` whose first axis is the
        image axis (e.g. :meth:`ServedModel.predict_batch`).
    max_batch : int
        Most images per call (a single request with more runs alone).
    max_wait_ms : float
        Longest time a batch waits for more requests after its first one.
    executor : concurrent.futures.Executor
        Where ``run_batch`` runs.
    n_workers : int
        Batches in flight at once.
    observer : object or None
        Receives ``batch_started(n_images, waits)``, ``batch_done(n_images)``,
        ``queue_depth(n_images)`` and ``dropped(reason)``; see
        :class:`featpipe.serve.metrics.ServiceMetrics`.
    arriving : callable or None
        Returns how many requests are on their way (admitted, not yet
        queued). A batch waits for company only while some are: with
        nothing on its way, waiting would only add ``max_wait_ms`` to a
        lone request. None: always wait up to ``max_wait_ms``.
    """

    def __init__(self, run_batch, *, max_batch, max_wait_ms, executor, n_workers=1, observer=None,
                 arriving=None):
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.executor = executor
        self.n_workers = n_workers
        self.observer = observer
        self.arriving = arriving
        self._waiting = deque()
        self._arrived = None
        self._workers = []
        self._waiting_images = 0

    def start(self):
        """Start the workers on the running event loop."""
        self._arrived = asyncio.Event()
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.n_workers)]

    async def stop(self):
        """Cancel the workers and fail whatever still waits (503)."""
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        while self._waiting:
            item = self._waiting.popleft()
            if not item.future.done():
                item.future.set_exception(Problem(503, "the server is shutting down"))
        self._set_depth(0)

    @property
    def waiting_images(self):
        """Images queued and not yet in a batch."""
        return self._waiting_images

    async def submit(self, images, deadline):
        """Queue a batch of images; return ``run_batch``'s answer for exactly these images.

        Parameters
        ----------
        images : ndarray, shape (n, ...)
        deadline : float
            ``time.monotonic()`` after which the answer is no longer wanted
            (a 503 then).
        """
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(images, future, deadline))
        self._set_depth(self._waiting_images + len(images))
        self._arrived.set()
        remaining = deadline - time.monotonic()
        try:
            async with asyncio.timeout(max(remaining, 0.001)):
                return await future
        except TimeoutError:
            raise Problem(503, "the request waited past its deadline", reason="deadline") from None

    async def _work(self):
        while True:
            try:
                batch = await self._gather()
                if batch:
                    await self._run(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # a worker must outlive any one batch
                logger.exception("batch worker error")

    async def _gather(self):
        """Take the next batch: live requests within max_batch images and max_wait seconds."""
        while not self._waiting:
            self._arrived.clear()
            await self._arrived.wait()
        batch = [self._take()]
        count = len(batch[0].images)
        closes = time.monotonic() + self.max_wait
        while count < self.max_batch:
            if self._waiting:
                if count + len(self._waiting[0].images) > self.max_batch:
                    break
                batch.append(self._take())
                count += len(batch[-1].images)
                continue
            remaining = closes - time.monotonic()
            if remaining <= 0 or (self.arriving is not None and self.arriving() == 0):
                break
            self._arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                break
        return self._live(batch)

    def _take(self):
        item = self._waiting.popleft()
        self._set_depth(self._waiting_images - len(item.images))
        return item

    def _live(self, batch):
        """Drop requests nobody waits for; answer 503 to those past their deadline."""
        now = time.monotonic()
        live = []
        for item in batch:
            if item.future.done():
                self._drop("cancelled")
            elif item.deadline <= now:
                item.future.set_exception(Problem(503, "the request waited past its deadline", reason="deadline"))
                self._drop("deadline")
            else:
                live.append(item)
        return live

    async def _run(self, batch):
        loop = asyncio.get_running_loop()
        images = batch[0].images if len(batch) == 1 else np.concatenate([item.images for item in batch])
        if self.observer is not None:
            self.observer.batch_started(len(images), [time.monotonic() - item.enqueued for item in batch])
        try:
            outputs = await loop.run_in_executor(self.executor, self.run_batch, images)
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0].future, error=error)
            else:
                logger.warning("batch of %d requests failed (%s); retrying each alone", len(batch), error)
                for item in batch:
                    await self._run([item])
            return
        start = 0
        for item in batch:
            stop = start + len(item.images)
            _settle(item.future, result=tuple(output[start:stop] for output in outputs))
            start = stop
        if self.observer is not None:
            self.observer.batch_done(len(images))

    def _set_depth(self, n_images):
        self._waiting_images = n_images
        if self.observer is not None:
            self.observer.queue_depth(n_images)

    def _drop(self, reason):
        if self.observer is not None:
            self.observer.dropped(reason)


def _settle(future, result=None, error=None):
    """Give a future its answer unless its request is gone."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
