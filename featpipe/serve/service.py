"""The service's state and the steps every inference request goes through.

One :class:`Service` per app holds the models, their batchers, the limits,
the metrics and the thread pools. Routes (``routes.py``, ``kserve.py``) call
its steps in order, each of which answers with a :class:`Problem` before any
later work is done:

1. :meth:`Service.model` - unknown model: 404;
2. :meth:`Service.admit` - queue full: 503 with ``Retry-After``;
3. :func:`featpipe.serve.limits.read_body` - too large: 413, too slow: 408;
4. :meth:`Service.decode` - every image decoded in a thread, off the event
   loop, after the header-first pixel check (one error per bad image);
5. :meth:`Service.predict` / :meth:`Service.features` - the batcher.
"""

import asyncio
import contextvars
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import numpy as np

from featpipe.serve.batcher import MicroBatcher
from featpipe.serve.limits import decode_upload, image_pixels
from featpipe.serve.metrics import ServiceMetrics
from featpipe.serve.problems import Problem

logger = logging.getLogger("featpipe.serve")

_HANDED_TO_BATCHER = contextvars.ContextVar("handed_to_batcher", default=False)
"""Whether the current request has reached a batcher (each request runs in its own task)."""


INLINE_DECODE_PIXELS = 64 * 32 * 32
"""Pixels (from the headers) up to which a request's images are decoded on the event loop: 64 CIFAR-sized images."""


def _total_pixels(uploads):
    total = 0
    for upload in uploads:
        try:
            total += image_pixels(upload.data)
        except Exception:  # unreadable headers are reported by the decoder itself; nothing to size
            continue
    return total


def default_workers():
    """Batches computed at once per model: one per core."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class Service:
    """Everything a request needs: models, batchers, limits, metrics, thread pools.

    Parameters
    ----------
    registry : featpipe.serve.models.ModelRegistry
    limits : featpipe.serve.limits.Limits
    key_checker : featpipe.serve.auth.KeyChecker
    n_workers : int or None
        Batches in flight per model and decoding threads (default: cores).
    """

    def __init__(self, registry, limits, key_checker, n_workers=None):
        self.registry = registry
        self.limits = limits
        self.key_checker = key_checker
        self.n_workers = n_workers or default_workers()
        self.metrics = ServiceMetrics()
        self.admitted = 0
        self.handed = 0
        self.in_flight = 0
        self._batch_pool = None
        self._decode_pool = None
        self._predictors = {}
        self._extractors = {}
        self._warming = set()

    async def start(self):
        """Create the thread pools and batchers, then warm every model in the background."""
        self._batch_pool = ThreadPoolExecutor(self.n_workers, thread_name_prefix="featpipe-batch")
        self._decode_pool = ThreadPoolExecutor(self.n_workers, thread_name_prefix="featpipe-decode")
        for served in self.registry:
            self.add_model(served)

    def add_model(self, served):
        """Give a loaded model its batchers and warm it up off the event loop."""
        if self.registry.get(served.name) is not served:
            self.registry.add(served)
        def predictions(images):
            return served.predict_batch(images)

        def feature_rows(images):
            return (served.features_batch(images),)

        for table, function in ((self._predictors, predictions), (self._extractors, feature_rows)):
            batcher = MicroBatcher(
                function, max_batch=self.limits.max_batch, max_wait_ms=self.limits.max_wait_ms,
                executor=self._batch_pool, n_workers=self.n_workers,
                observer=self.metrics.for_model(served.name), arriving=self.arriving,
            )
            batcher.start()
            table[served.name] = batcher
        self._warming.add(asyncio.create_task(self._warm(served)))

    async def _warm(self, served):
        try:
            await self.run_in_pool(served.warm_up, self.limits.max_batch)
        except Exception:  # the model stays unready; /readyz keeps saying 503
            logger.exception("warming model %s failed", served.name)

    async def stop(self):
        """Stop the batchers and the thread pools."""
        for batcher in [*self._predictors.values(), *self._extractors.values()]:
            await batcher.stop()
        for pool in (self._batch_pool, self._decode_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def model(self, name):
        """The served model ``name``, or 404."""
        served = self.registry.get(name)
        if served is None:
            raise Problem(404, f"no model named {name!r}; GET /v1/models lists them", reason="unknown_model")
        return served

    def overloaded(self):
        """Whether a new inference request would be refused (queue full or draining)."""
        return self.registry.draining or self.admitted >= self.limits.queue_size

    def overload_problem(self):
        """The 503 that :meth:`overloaded` calls for."""
        if self.registry.draining:
            return Problem(503, "the server is shutting down", reason="draining")
        return Problem(503, f"the queue is full ({self.limits.queue_size} requests); retry shortly",
                       reason="queue_full")

    @asynccontextmanager
    async def admit(self):
        """Hold one of ``queue_size`` places for the whole request, or answer 503 at once."""
        if self.overloaded():
            raise self.overload_problem()
        self.admitted += 1
        token = _HANDED_TO_BATCHER.set(False)
        try:
            yield
        finally:
            self.admitted -= 1
            if _HANDED_TO_BATCHER.get():
                self.handed -= 1
            _HANDED_TO_BATCHER.reset(token)

    def arriving(self):
        """Requests admitted that have not reached a batcher yet (being read or decoded)."""
        return self.admitted - self.handed

    def _hand_over(self):
        if not _HANDED_TO_BATCHER.get():
            _HANDED_TO_BATCHER.set(True)
            self.handed += 1

    async def decode(self, uploads, image_size):
        """Decode uploads; return (images of the good ones, [(index, error)] of the bad).

        Small images (:data:`INLINE_DECODE_PIXELS` in all, by their headers)
        are decoded on the event loop, so a small request costs no hand-off
        to a thread; larger ones go to the decoding threads.
        """
        def decode_all():
            images, failures = [], []
            for index, upload in enumerate(uploads):
                try:
                    images.append(decode_upload(upload.data, image_size, self.limits.max_pixels))
                except ValueError as error:
                    failures.append((index, str(error)))
            batch = np.stack(images) if images else np.empty((0, image_size, image_size, 3), np.uint8)
            return batch, failures

        if _total_pixels(uploads) <= INLINE_DECODE_PIXELS:
            return decode_all()
        return await asyncio.get_running_loop().run_in_executor(self._decode_pool, decode_all)

    async def predict(self, served, images, deadline):
        """(labels, values) for ``images`` from the model's batcher."""
        if not len(images):
            return np.empty(0, np.int64), np.empty((0, len(served.classes)), np.float32)
        self._hand_over()
        return await self._predictors[served.name].submit(images, deadline)

    async def features(self, served, images, deadline):
        """The model's feature rows for ``images`` from its feature batcher."""
        if not len(images):
            return np.empty((0, served.feature_width), np.float32)
        self._hand_over()
        (rows,) = await self._extractors[served.name].submit(images, deadline)
        return rows

    async def transform(self, extractors, images):
        """Rows of fitted ``extractors`` for ``images``, one call in the batch pool (no batcher)."""
        self._hand_over()
        return await self.run_in_pool(extractors.transform, images)

    async def run_in_pool(self, function, *args):
        """Run a call in the batch pool."""
        return await asyncio.get_running_loop().run_in_executor(self._batch_pool, function, *args)


def request_deadline(request, limits):
    """``time.monotonic()`` by which a request must be answered (set when it arrived)."""
    arrived = request.scope.get("state", {}).get("arrived", time.monotonic())
    return arrived + limits.request_timeout_ms / 1000
