"""Prometheus metrics of the service, in base units with the ``featpipe_`` prefix.

Each app has its own registry (two apps in one process, as in the tests, do
not share counts). What is measured:

- ``featpipe_request_duration_seconds`` (histogram; route, model, status)
- ``featpipe_batch_size_images`` (histogram; model): images per model call,
  the proof that batching works
- ``featpipe_queue_depth_images`` (gauge; model): images waiting for a batch
- ``featpipe_queue_wait_seconds`` (histogram; model): arrival to batch start
- ``featpipe_images_processed_total`` (counter; model)
- ``featpipe_rejections_total`` (counter; reason): every error answer and
  every dropped request, by why
- ``featpipe_requests_in_flight`` (gauge) and ``featpipe_ready`` (gauge, 0/1)
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""Media type of :meth:`ServiceMetrics.render`'s output."""


class ServiceMetrics:
    """The service's metrics, in their own registry."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.request_duration = Histogram(
            "featpipe_request_duration_seconds", "Time from request arrival to response, by route, model and status.",
            ["route", "model", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram(
            "featpipe_batch_size_images", "Images per vectorized model call.",
            ["model"], buckets=BATCH_SIZE_BUCKETS, registry=self.registry)
        self.queue_depth_gauge = Gauge(
            "featpipe_queue_depth_images", "Images waiting for a batch.", ["model"], registry=self.registry)
        self.queue_wait = Histogram(
            "featpipe_queue_wait_seconds", "Time a request waited from its arrival in the queue to its batch start.",
            ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.images_processed = Counter(
            "featpipe_images_processed", "Images run through a model.", ["model"], registry=self.registry)
        self.rejections = Counter(
            "featpipe_rejections", "Requests or images refused or dropped, by reason.", ["reason"],
            registry=self.registry)
        self.in_flight = Gauge(
            "featpipe_requests_in_flight", "Requests being served.", registry=self.registry)
        self._request_series = {}
        self.ready = Gauge(
            "featpipe_ready", "1 when every model is loaded and warm and the server is not draining.",
            registry=self.registry)

    def observe_request(self, route, model, status, seconds):
        """Add one request to ``featpipe_request_duration_seconds`` (each series looked up once)."""
        key = (route, model, status)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = self.request_duration.labels(route, model, status)
        series.observe(seconds)

    def for_model(self, name):
        """The observer a model's batcher reports to."""
        return _BatchObserver(self, name)

    def render(self):
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class _BatchObserver:
    """Translates a batcher's events into one model's metrics.

    The model's labelled series are looked up once: ``labels()`` takes a
    lock and builds a key on every call, and the batcher reports several
    events per request, all on the event loop.
    """

    def __init__(self, metrics, model):
        self.metrics = metrics
        self._batch_size = metrics.batch_size.labels(model)
        self._queue_wait = metrics.queue_wait.labels(model)
        self._images_processed = metrics.images_processed.labels(model)
        self._queue_depth = metrics.queue_depth_gauge.labels(model)

    def batch_started(self, n_images, waits):
        self._batch_size.observe(n_images)
        for wait in waits:
            self._queue_wait.observe(wait)

    def batch_done(self, n_images):
        self._images_processed.inc(n_images)

    def queue_depth(self, n_images):
        self._queue_depth.set(n_images)

    def dropped(self, reason):
        self.metrics.rejections.labels(reason).inc()
