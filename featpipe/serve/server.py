"""``featpipe serve``: load the run folders, then serve them with uvicorn until SIGTERM.

Everything that can be wrong with the command line (a missing run folder, a
clashing name, a model file the loader refuses, a non-loopback address
without keys) is found before the port is bound, so it ends as one
``featpipe: error:`` line. Then uvicorn serves the app; the models warm up
in the background and ``/readyz`` turns 200 when they are warm.

SIGTERM drains: ``/readyz`` answers 503 at once, new inference requests are
answered 503, the requests in flight finish, and the process exits 0.
A second SIGTERM or a SIGINT stops at once.
"""

import logging
import signal
import sys
from dataclasses import dataclass, field

import uvicorn

from featpipe.serve.app import create_app
from featpipe.serve.auth import KeyChecker, check_binding, read_api_keys
from featpipe.serve.jobs.paths import JobRoots, job_folders_from
from featpipe.serve.jobs.runner import JobRunner
from featpipe.serve.limits import Limits
from featpipe.serve.models import ModelRegistry, load_served_model, parse_model_sources
from featpipe.serve.service import Service

logger = logging.getLogger("featpipe.serve")

GRACEFUL_SHUTDOWN_SECONDS = 60
"""Longest time uvicorn waits for open connections once the requests in flight are done."""

CONNECTIONS_PER_QUEUE_PLACE = 4
"""Default ``--backlog``: this many times ``--queue-size``.

Above ``queue_size`` admitted requests, the service's own admission answers
503 (JSON, ``Retry-After``) while health probes still pass. uvicorn's
connection limit (``--max-connections``) is an opt-in guard behind it, off
by default because uvicorn answers its 503 in plain text, not the JSON
error every other answer carries."""

CONNECTION_LIMIT_MESSAGE = "Exceeded concurrency limit."
"""What uvicorn logs for every request its connection limit refuses (counted as a metric instead)."""


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``featpipe serve`` is told.

    Attributes
    ----------
    run_dirs : tuple of str
        ``RUN_DIR`` or ``NAME=RUN_DIR`` arguments.
    host, port : str, int
        Where to listen.
    api_key_file : str or None
        File of API keys, one per line.
    insecure : bool
        Allow a non-loopback address without keys.
    limits : Limits
    log_level : str
    job_folders : tuple of str or None
        ``(data_root, store_root, runs_root, state_dir)``: enables the job
        endpoints (see docs/jobs.md); None without jobs.
    max_running_jobs : int
        Jobs running at once.
    scheduler : str or None
        Dask scheduler address the extract jobs run their chunks on.
    max_connections : int or None
        Open connections (or requests in flight) at which uvicorn itself
        answers a plain-text 503 (before reading the body, then closes the
        connection); None or 0: no limit.
    backlog : int or None
        Connections the kernel holds before they are accepted; None:
        ``CONNECTIONS_PER_QUEUE_PLACE x queue_size``.
    """

    run_dirs: tuple
    host: str = "127.0.0.1"
    port: int = 8000
    api_key_file: str | None = None
    insecure: bool = False
    limits: Limits = field(default_factory=Limits)
    log_level: str = "info"
    job_folders: tuple | None = None
    max_running_jobs: int = 1
    scheduler: str | None = None
    max_connections: int | None = None
    backlog: int | None = None

    @property
    def connection_limit(self):
        """uvicorn's ``limit_concurrency``: ``max_connections``, None (no limit) when it is None or 0."""
        return self.max_connections or None

    @property
    def listen_backlog(self):
        """The listening socket's backlog: ``backlog``, derived from the queue when None."""
        return self.backlog if self.backlog is not None else CONNECTIONS_PER_QUEUE_PLACE * self.limits.queue_size


def serve_options_from(run_dirs, params):
    """The ServeOptions of ``featpipe serve``'s arguments and options (a dict of click's parameters)."""
    limits = Limits(
        max_image_bytes=params["max_image_bytes"], max_pixels=params["max_pixels"],
        max_images_per_request=params["max_images_per_request"], queue_size=params["queue_size"],
        request_timeout_ms=params["request_timeout_ms"], max_batch=params["max_batch"],
        max_wait_ms=params["max_wait_ms"],
    )
    return ServeOptions(run_dirs=tuple(run_dirs), host=params["host"], port=params["port"],
                        api_key_file=params["api_key_file"], insecure=params["insecure"], limits=limits,
                        log_level=params["log_level"], job_folders=job_folders_from(run_dirs, params),
                        max_running_jobs=params["max_running_jobs"], scheduler=params["scheduler"],
                        max_connections=params["max_connections"], backlog=params["backlog"])


def build_service(options):
    """Load every model and check the binding, before anything listens."""
    sources = parse_model_sources(options.run_dirs)
    keys = read_api_keys(options.api_key_file) if options.api_key_file else []
    check_binding(options.host, keys, options.insecure)
    registry = ModelRegistry(load_served_model(source) for source in sources)
    return Service(registry, options.limits, KeyChecker(keys))


def build_job_runner(options):
    """The job runner over ``options.job_folders`` (created if missing, and claimed), or None without them."""
    if options.job_folders is None:
        return None
    runner = JobRunner(JobRoots.create(*options.job_folders), max_running=options.max_running_jobs,
                       scheduler=options.scheduler)
    runner.claim()
    return runner


class DrainingServer(uvicorn.Server):
    """uvicorn's server, with SIGTERM turned into a drain that ends with exit status 0."""

    def __init__(self, config, service):
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig, frame):
        if sig == signal.SIGTERM and not self.service.registry.draining:
            logger.info("SIGTERM: draining (%d request(s) in flight)", self.service.in_flight)
            self.service.registry.draining = True
            return
        self.should_exit = True
        self.force_exit = self.force_exit or sig == signal.SIGTERM

    async def on_tick(self, counter):
        if self.service.registry.draining and self.service.in_flight == 0:
            return True
        return await super().on_tick(counter)


class ConnectionLimitCounter(logging.Filter):
    """Turn uvicorn's warning per request refused at the connection limit into a count.

    Under a flood, uvicorn logs one line per refused request; this filter
    drops those lines and counts them as
    ``featpipe_rejections_total{reason="connection_limit"}`` instead.
    """

    def __init__(self, metrics):
        super().__init__()
        self.metrics = metrics

    def filter(self, record):
        if record.getMessage() == CONNECTION_LIMIT_MESSAGE:
            self.metrics.rejections.labels("connection_limit").inc()
            return False
        return True


def run_server(options):
    """Serve until drained; return the exit status (0)."""
    service = build_service(options)
    logging.basicConfig(level=options.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    config = uvicorn.Config(
        create_app(service, build_job_runner(options)), host=options.host, port=options.port, access_log=False,
        log_level=options.log_level, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        timeout_keep_alive=5, lifespan="on", limit_concurrency=options.connection_limit,
        backlog=options.listen_backlog,
    )
    server = DrainingServer(config, service)
    logging.getLogger("uvicorn.error").addFilter(ConnectionLimitCounter(service.metrics))
    server.run()
    return 0
