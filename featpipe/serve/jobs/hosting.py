"""The jobs inside ``featpipe serve``: the runner started and stopped with the app, trained models served.

:func:`start_jobs` and :func:`stop_jobs` run in the app's lifespan.
:class:`ModelPublisher` is the job runner's ``on_run_done``. One thread of
its own takes the finished run jobs in turn: it loads the run folder with
the service's hardened loader (:func:`featpipe.serve.models.load_served_model`),
warms the model up, and only then hands it to the service on the event
loop. The registry only ever holds warm models, so ``/readyz`` stays 200
while a model loads. A name that is served already is left as it is (a
submission under a served name is refused, so this happens only for run
folders given on the command line after the job ended).
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from starlette.concurrency import run_in_threadpool

from featpipe.serve.jobs.paths import confine
from featpipe.serve.models import ModelSource, load_served_model

logger = logging.getLogger("featpipe.serve.jobs")


class ModelPublisher:
    """Loads, warms and serves finished run jobs' models.

    Parameters
    ----------
    service : featpipe.serve.service.Service
        The service whose registry gains the models.
    loop : asyncio.AbstractEventLoop
        The service's event loop (models are added there).
    roots : featpipe.serve.jobs.paths.JobRoots
    """

    def __init__(self, service, loop, roots):
        self.service = service
        self.loop = loop
        self.roots = roots
        self._pending = set()
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="featpipe-publish")

    def served_names(self):
        """Names served now or about to be: no new run job may take one."""
        return {model.name for model in self.service.registry} | set(self._pending)

    def __call__(self, job):
        name = job["request"]["name"]
        if name in self.served_names():
            logger.warning("job %s: a model named %s is served already; its run folder %s is not served",
                           job["id"], name, job["request"]["run"])
            return
        self._pending.add(name)
        self._loader.submit(self._load, job)

    def _load(self, job):
        name = job["request"]["name"]
        try:
            run_dir = confine(self.roots.runs, job["request"]["run"], "run")
            served = load_served_model(ModelSource(name, run_dir))
            served.warm_up(self.service.limits.max_batch)
        except Exception:
            logger.exception("job %s: its model cannot be served", job["id"])
            self._pending.discard(name)
            return
        self.loop.call_soon_threadsafe(self._add, served)

    def _add(self, served):
        self._pending.discard(served.name)
        if self.service.registry.get(served.name) is None:
            self.service.add_model(served)
            logger.info("serving %s, trained by a job", served.name)

    def close(self):
        """Stop loading (a model being loaded is finished first)."""
        self._loader.shutdown(wait=True, cancel_futures=True)


def start_jobs(app, service):
    """Start ``app.state.jobs`` (a JobRunner, or None) with a publisher serving its models."""
    runner = getattr(app.state, "jobs", None)
    if runner is None:
        return
    publisher = ModelPublisher(service, asyncio.get_running_loop(), runner.roots)
    runner.on_run_done, runner.served_names = publisher, publisher.served_names
    runner.start()


async def stop_jobs(app):
    """Stop the runner (its jobs at a chunk boundary, to resume at the next start), off the event loop."""
    runner = getattr(app.state, "jobs", None)
    if runner is None:
        return
    await run_in_threadpool(runner.stop)
    await run_in_threadpool(runner.on_run_done.close)
