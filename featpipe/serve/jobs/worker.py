"""A job's worker process: ``python -m featpipe.serve.jobs.worker SETTINGS_JSON``.

The server's :class:`featpipe.serve.jobs.runner.JobRunner` starts one such
process per running job, in a session of its own, with ``FEATPIPE_JOB_ID``
in its environment (which its own extraction workers inherit). The process:

- lowers its CPU priority (:data:`NICE_INCREMENT`), so inference requests
  stay fast while it runs (its extraction workers inherit the priority);
- watches its parent: when the server dies, even by SIGKILL, a thread sees
  the new parent pid within :data:`WATCH_SECONDS` and kills the worker's
  whole process group (the worker and its extraction workers);
- answers SIGTERM by stopping at the next chunk boundary (an extract job:
  the chunks in progress finish and are kept) or at once (anywhere else),
  then puts the job back in the queue, or marks it cancelled when a
  cancellation was asked;
- runs the job with the same functions as ``featpipe extract`` and
  ``featpipe run``, reporting an extract job's progress into the job store
  (a run job first takes back the run folder a killed attempt left, so it
  resumes from its cached stages);
- ends the job ``done``, or ``failed`` with one error line (the traceback of
  an unexpected error goes to the job's log file under ``--state-dir``).
"""

import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from featpipe.errors import FeatpipeError
from featpipe.serve.jobs.job_store import JobStore
from featpipe.serve.jobs.paths import JobRoots, confine

NICE_INCREMENT = 10
"""How much lower than the server's the CPU priority of a job worker is."""
WATCH_SECONDS = 0.2
"""How often the worker checks that the server that started it is alive."""
JOB_ID_VARIABLE = "FEATPIPE_JOB_ID"
"""Environment variable naming the job; every process of a job carries it."""


class StopRequested(BaseException):
    """SIGTERM arrived: stop the job where it can resume (a BaseException, so no handler swallows it)."""


def _watch_parent(parent_pid):
    """Kill this process group as soon as the parent ``parent_pid`` is gone."""
    while os.getppid() == parent_pid:
        time.sleep(WATCH_SECONDS)
    os.killpg(os.getpgrp(), signal.SIGKILL)


class _Stopper:
    """SIGTERM handler: stop at the next chunk boundary inside the chunk loop, at once outside it."""

    def __init__(self):
        self.requested = False
        self.in_chunks = False

    def on_signal(self, signum, frame):
        self.requested = True
        if not self.in_chunks:
            raise StopRequested

    def check(self):
        if self.requested:
            raise StopRequested


class _ProgressReporter:
    """on_progress of an extract job: writes progress and the images-per-second rate of this attempt."""

    def __init__(self, store, job_id, stopper):
        self.store, self.job_id, self.stopper = store, job_id, stopper
        self.first = None

    def __call__(self, progress):
        self.stopper.in_chunks = True
        now = time.monotonic()
        if self.first is None:
            self.first = (now, progress["images_done"])
        seconds, images = now - self.first[0], progress["images_done"] - self.first[1]
        rate = round(images / seconds, 2) if seconds > 0 and images > 0 else None
        self.store.update_progress(self.job_id, images_per_second=rate, **progress)
        self.stopper.check()


def _paths(request, roots):
    """The job's folders, confined to the roots again (a link may have changed since submission)."""
    return {key: confine(root, request[key], key) if request.get(key) else None
            for key, root in (("data", roots.data), ("store", roots.stores), ("run", roots.runs))}


def _run_extract(request, roots, settings, reporter):
    from featpipe.pipeline.extract_job import run_extract_job
    from featpipe.pipeline.options import ExtractOptions

    paths = _paths(request, roots)
    options = ExtractOptions(n_jobs=request.get("n_jobs"), chunk_size=request.get("chunk_size"),
                             scheduler=settings.get("scheduler"), image_size=request.get("image_size"),
                             seed=request.get("seed", 0), strict=request.get("strict", False),
                             cache_dir=roots.cache, progress=False)
    run_extract_job(request["features"], str(paths["data"]), paths["store"], options=options, on_progress=reporter)


def _run_folder_written(run_dir, attempts):
    """Take back the run folder an earlier attempt of this job left; True when that attempt wrote it whole.

    A worker killed in training leaves its reserved folder empty (and,
    killed while writing, a ``.<name>.partial-*`` staging folder beside
    it): both are removed, so the run starts again from its cached stages.
    A folder holding ``metrics.json`` on a later attempt is this job's own
    finished run (its worker died before recording it).
    """
    if attempts > 1 and (run_dir / "metrics.json").is_file():
        return True
    for staging in run_dir.parent.glob(f".{run_dir.name}.partial-*"):
        shutil.rmtree(staging, ignore_errors=True)
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()
    return False


def _run_pipeline(request, roots, attempts):
    from featpipe.pipeline.options import RunOptions
    from featpipe.pipeline.run import run_pipeline
    from featpipe.pipeline.spec import resolve

    paths = _paths(request, roots)
    if _run_folder_written(paths["run"], attempts):
        return
    options = RunOptions(n_jobs=request.get("n_jobs") or -1, image_size=request.get("image_size"),
                         seed=request.get("seed", 0), search=request.get("search", False),
                         cache_dir=roots.cache, quiet=True)
    run_pipeline(resolve(request["pipeline"]), str(paths["store"] or paths["data"]), options=options,
                 out=paths["run"])


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


def run_job(settings):
    """Run the job ``settings["job"]`` to its end, or until SIGTERM; record the outcome."""
    roots = JobRoots(**{key: Path(value) for key, value in settings["roots"].items()})
    store = JobStore(roots.database)
    job_id = settings["job"]
    stopper = _Stopper()
    signal.signal(signal.SIGTERM, stopper.on_signal)
    job = store.get(job_id)
    if job is None or job["state"] != "running":
        return
    try:
        if job["kind"] == "extract":
            _run_extract(job["request"], roots, settings, _ProgressReporter(store, job_id, stopper))
        else:
            _run_pipeline(job["request"], roots, job["attempts"])
    except StopRequested:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if store.get(job_id)["cancel_requested"]:
            store.finish(job_id, "cancelled", "cancelled; finished shards are kept: submit the same job to resume")
        else:
            store.requeue(job_id)
        return
    except (FeatpipeError, OSError) as error:
        store.finish(job_id, "failed", _one_line(error))
        return
    except Exception as error:
        traceback.print_exc()
        store.finish(job_id, "failed", f"internal error: {type(error).__name__}: {_one_line(error)}")
        return
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    store.finish(job_id, "done")


def main(argv=None):
    """Entry point of the worker process: settings JSON (job, parent, roots, scheduler) in argv[1]."""
    settings = json.loads((sys.argv[1:] if argv is None else argv)[0])
    threading.Thread(target=_watch_parent, args=(settings["parent"],), daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(NICE_INCREMENT)
    run_job(settings)


if __name__ == "__main__":
    main()
