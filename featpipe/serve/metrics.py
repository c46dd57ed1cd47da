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
        self.ready = Gauge(
            "featpipe_ready", "1 when every model is loaded and warm and the server is not draining.",
            registry=self.registry)

    def for_model(self, name):
        """The observer a model's batcher reports to."""
        return _BatchObserver(self, name)

    def render(self):
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class _BatchObserver:
    """Translates a batcher's events into one model's metrics."""

    def __init__(self, metrics, model):
        self.metrics = metrics
        self.model = model

    def batch_started(self, n_images, waits):
        self.metrics.batch_size.labels(self.model).observe(n_images)
        for wait in waits:
            self.metrics.queue_wait.labels(self.model).observe(wait)

    def batch_done(self, n_images):
        self.metrics.images_processed.labels(self.model).inc(n_images)

    def queue_depth(self, n_images):
        self.metrics.queue_depth_gauge.labels(self.model).set(n_images)

    def dropped(self, reason):
        self.metrics.rejections.labels(reason).inc()
