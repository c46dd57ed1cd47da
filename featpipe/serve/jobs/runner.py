"""Starting, watching, cancelling and stopping job worker processes, off the event loop.

:class:`JobRunner` owns one thread in the server process. Every
:data:`POLL_SECONDS` (or at once when :meth:`JobRunner.wake` is called) it
reaps workers that ended, signals the workers of jobs whose cancellation
was asked, and starts queued jobs, oldest first, while fewer than
``max_running`` run. Each job runs in its own process
(:mod:`featpipe.serve.jobs.worker`), never in the server's.

At start it takes back what a server that died left behind: processes
still carrying a running job's ``FEATPIPE_JOB_ID`` are killed (their store
lock then belongs to a dead process and is taken over), and the jobs go
back to the queue, to resume from their finished shards or cached stages.
:meth:`JobRunner.stop` sends SIGTERM to every worker; they stop at a chunk
boundary and their jobs resume at the next start.
"""

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from featpipe.serve.jobs.job_store import ACTIVE_STATES, JobConflict, JobStore
from featpipe.serve.jobs.submission import SubmissionError
from featpipe.serve.jobs.worker import JOB_ID_VARIABLE

STATE_LOCK_NAME = "server.lock"
"""File under ``--state-dir`` locked by the server using it."""
POLL_SECONDS = 0.2
"""How often the runner looks at its workers and the queue."""
STOP_TIMEOUT_SECONDS = 60
"""How long :meth:`JobRunner.stop` waits for workers to reach a chunk boundary before killing them."""

logger = logging.getLogger("featpipe.serve.jobs")


def _processes_of_job(job_id):
    """Pids of this user's processes whose environment names ``job_id``."""
    marker = f"{JOB_ID_VARIABLE}={job_id}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _kill_leftovers(job_id):
    for pid in _processes_of_job(job_id):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        logger.warning("job %s: killed process %d left by a previous server", job_id, pid)


def _death_line(returncode):
    if returncode < 0:
        return f"killed by signal {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


class JobRunner:
    """Runs the queued jobs of ``roots``' job store in worker processes.

    Parameters
    ----------
    roots : featpipe.serve.jobs.paths.JobRoots
        The folders (the job store is ``roots.database``).
    max_running : int, default=1
        Jobs running at once.
    scheduler : str or None, default=None
        A Dask scheduler address extract jobs run their chunks on.
    on_run_done : callable or None, default=None
        Called (in the runner's thread) with the job record of every
        ``run`` job that finished, and at start with those that finished
        before, newest first: how the server serves their models.
    served_names : callable or None, default=None
        Returns the names of the models served now; a run job may not be
        submitted under one of them.
    """

    def __init__(self, roots, max_running=1, scheduler=None, on_run_done=None, served_names=None):
        self.roots = roots
        self.max_running = max(1, int(max_running))
        self.scheduler = scheduler
        self.on_run_done = on_run_done
        self.served_names = served_names or set
        self.store = JobStore(roots.database)
        self._workers = {}  # job id -> Popen
        self._signalled = set()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = None
        self._state_lock = None

    def claim(self):
        """Take the state folder for this process (a lock the kernel drops when the process dies).

        Raises
        ------
        JobConflict
            When another running server uses the same ``--state-dir``.
        """
        if self._state_lock is not None:
            return
        descriptor = os.open(self.roots.state / STATE_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise JobConflict(f"another featpipe serve uses the state folder {self.roots.state}; "
                              "give each server its own --state-dir") from None
        self._state_lock = descriptor

    def start(self):
        """Claim the state folder, take back jobs a dead server left running, start the runner thread."""
        self.claim()
        self.roots.logs.mkdir(parents=True, exist_ok=True)
        for job_id, _ in self.store.interrupted():
            _kill_leftovers(job_id)
            self.store.requeue(job_id)
            logger.info("job %s: back in the queue after the previous server stopped", job_id)
        if self.on_run_done is not None:
            for job in self.store.list("done", limit=-1):
                if job["kind"] == "run":
                    self.on_run_done(job)
        self._thread = threading.Thread(target=self._loop, name="featpipe-jobs", daemon=True)
        self._thread.start()

    def check_model_name(self, name, identity):
        """Refuse a run job's model name that is served, or that another active run job will serve.

        Raises
        ------
        SubmissionError
        """
        if name in self.served_names():
            raise SubmissionError(f"a model named {name!r} is served already; give the job another 'name'")
        identity_text = json.dumps(identity, sort_keys=True)
        for state in ACTIVE_STATES:
            for job in self.store.list(state, limit=-1):
                if job["kind"] == "run" and job["request"]["name"] == name and job["identity"] != identity_text:
                    raise SubmissionError(f"job {job['id']} ({state}) trains a model named {name!r} already; "
                                          "give the job another 'name'")

    def wake(self):
        """Look at the queue and the cancellations now rather than at the next poll."""
        self._wake.set()

    def running_count(self):
        """Workers alive now."""
        return len(self._workers)

    def _loop(self):
        while not self._stopping:
            try:
                self._reap()
                self._signal_cancelled()
                self._start_queued()
            except Exception:
                logger.exception("job runner: unexpected error; retrying")
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def _reap(self):
        for job_id, process in list(self._workers.items()):
            if process.poll() is None:
                continue
            del self._workers[job_id]
            self._signalled.discard(job_id)
            job = self.store.get(job_id)
            if job["state"] == "running" and not self._stopping:
                if job["cancel_requested"]:
                    self.store.finish(job_id, "cancelled", "cancelled; finished shards are kept")
                else:
                    self.store.finish(job_id, "failed", f"the job's worker process died "
                                      f"({_death_line(process.returncode)}); finished shards are kept: "
                                      "submit the same job to resume")
            elif job["state"] == "done" and job["kind"] == "run" and self.on_run_done is not None:
                try:
                    self.on_run_done(job)
                except Exception:
                    logger.exception("job %s: serving the trained model failed", job_id)

    def _signal_cancelled(self):
        for job_id, process in self._workers.items():
            if job_id not in self._signalled and self.store.get(job_id)["cancel_requested"]:
                process.send_signal(signal.SIGTERM)
                self._signalled.add(job_id)

    def _start_queued(self):
        for job in self.store.queued():
            if len(self._workers) >= self.max_running or self._stopping:
                return
            if self.store.mark_running(job["id"]):
                self._spawn(job["id"])

    def _spawn(self, job_id):
        settings = {"job": job_id, "parent": os.getpid(), "scheduler": self.scheduler,
                    "roots": {key: str(getattr(self.roots, key)) for key in ("data", "stores", "runs", "state")}}
        environment = {**os.environ, JOB_ID_VARIABLE: job_id}
        try:
            with open(self.roots.logs / f"{job_id}.log", "ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "featpipe.serve.jobs.worker", json.dumps(settings)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=environment, start_new_session=True)
        except OSError as error:
            self.store.finish(job_id, "failed", f"cannot start a worker process: {error.strerror or error}")
            return
        self._workers[job_id] = process
        self.store.record_worker(job_id, process.pid)

    def stop(self, timeout=STOP_TIMEOUT_SECONDS):
        """SIGTERM every worker, wait for them to stop at a chunk boundary (killing them after ``timeout``)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        for process in self._workers.values():
            process.send_signal(signal.SIGTERM)
        for job_id, process in self._workers.items():
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            self.store.requeue(job_id)
        self._workers.clear()
        if self._state_lock is not None:
            os.close(self._state_lock)
            self._state_lock = None
