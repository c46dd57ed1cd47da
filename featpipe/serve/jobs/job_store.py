"""The job records: one SQLite file under ``--state-dir`` (standard library ``sqlite3``, WAL).

Every change is one transaction, so a record is never half-written, lost
or duplicated, whoever dies when. The server process and its job workers
each open their own connections (WAL lets readers and the one writer work
at once; writers wait up to :data:`BUSY_TIMEOUT_SECONDS` for each other).

States: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``;
a queued job can be cancelled directly, and a running job whose server
stopped goes back to ``queued`` at the next start. A partial unique index
lets at most one queued or running job write a given store or run folder.
"""

import json
import sqlite3
import time
import uuid
from contextlib import closing, contextmanager

from featpipe.errors import FeatpipeError

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
BUSY_TIMEOUT_SECONDS = 30
PROGRESS_FIELDS = ("images_done", "images_total", "chunks_done", "chunks_total", "images_per_second", "skipped")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    identity TEXT NOT NULL,
    target TEXT NOT NULL,
    request TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    images_done INTEGER, images_total INTEGER, chunks_done INTEGER, chunks_total INTEGER,
    images_per_second REAL, skipped INTEGER,
    error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker_pid INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_job_per_target ON jobs(target)
    WHERE state IN ('queued', 'running');
"""


class JobConflict(FeatpipeError):
    """Another queued or running job writes the same store or run folder."""


def _switch_to_wal(connection):
    """Put the file in WAL mode (it stays so), retrying while another connection holds it.

    SQLite answers a journal-mode change that meets another connection's
    lock with "database is locked" at once, without waiting out the busy
    timeout, so several processes or threads opening a new file together
    would fail; this waits up to :data:`BUSY_TIMEOUT_SECONDS` instead.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _row_to_job(row):
    job = dict(row)
    job["request"] = json.loads(job["request"])
    job["cancel_requested"] = bool(job["cancel_requested"])
    return job


class JobStore:
    """The job table in ``path`` (created on first use).

    Parameters
    ----------
    path : path-like
        The SQLite file, e.g. ``STATE_DIR/jobs.sqlite3``.
    """

    def __init__(self, path):
        self.path = str(path)
        with closing(self._connect()) as connection:
            _switch_to_wal(connection)
            connection.executescript(_SCHEMA)

    def _connect(self):
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA synchronous=FULL")
        return connection

    @contextmanager
    def _transaction(self):
        """A connection inside ``BEGIN IMMEDIATE``: committed on success, rolled back on any error."""
        with closing(self._connect()) as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def submit(self, kind, identity, target, request):
        """Queue a job, or return the active job it repeats.

        Parameters
        ----------
        kind : {"extract", "run"}
        identity : dict
            What makes two submissions the same job (e.g. features, data and
            store): an active job with an equal identity is returned instead
            of queueing a new one.
        target : str
            The folder the job writes; no two active jobs share one.
        request : dict
            Everything the worker needs, stored as JSON.

        Returns
        -------
        job : dict
        created : bool
            False when an equal active job was returned.

        Raises
        ------
        JobConflict
            When another active job writes ``target``.
        """
        identity_text = json.dumps(identity, sort_keys=True)
        with self._transaction() as connection:
            active = connection.execute(
                "SELECT * FROM jobs WHERE target = ? AND state IN ('queued', 'running')", (target,)).fetchone()
            if active is not None:
                if active["identity"] == identity_text:
                    return _row_to_job(active), False
                raise JobConflict(f"job {active['id']} ({active['state']}) already writes {target}; "
                                  "wait for it or cancel it first")
            job_id = uuid.uuid4().hex[:16]
            connection.execute(
                "INSERT INTO jobs (id, kind, state, identity, target, request, created) "
                "VALUES (?, ?, 'queued', ?, ?, ?, ?)",
                (job_id, kind, identity_text, target, json.dumps(request, sort_keys=True), time.time()))
            row = connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row_to_job(row), True

    def get(self, job_id):
        """The job ``job_id`` as a dict, or None."""
        with closing(self._connect()) as connection:
            row = connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _row_to_job(row)

    def list(self, state=None, limit=100):
        """Jobs newest first, optionally only those in ``state``."""
        query, arguments = "SELECT * FROM jobs", ()
        if state is not None:
            query, arguments = query + " WHERE state = ?", (state,)
        with closing(self._connect()) as connection:
            rows = connection.execute(query + " ORDER BY seq DESC LIMIT ?", (*arguments, int(limit))).fetchall()
        return [_row_to_job(row) for row in rows]

    def queued(self):
        """Queued jobs, oldest first (the order they start in)."""
        return list(reversed(self.list("queued", limit=-1)))

    def request_cancel(self, job_id):
        """Cancel a queued job now, or mark a running one to be cancelled by its worker.

        Returns the job as it is after the call (None when unknown); a
        finished job is left as it is.
        """
        with self._transaction() as connection:
            connection.execute("UPDATE jobs SET state = 'cancelled', finished = ? WHERE id = ? AND state = 'queued'",
                               (time.time(), job_id))
            connection.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = 'running'", (job_id,))
            row = connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _row_to_job(row)

    def mark_running(self, job_id):
        """queued -> running; False when the job is no longer queued (cancelled meanwhile)."""
        with self._transaction() as connection:
            changed = connection.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, started = COALESCE(started, ?) "
                "WHERE id = ? AND state = 'queued'", (time.time(), job_id)).rowcount
        return changed == 1

    def record_worker(self, job_id, worker_pid):
        """Note the pid of a running job's worker process."""
        with self._transaction() as connection:
            connection.execute("UPDATE jobs SET worker_pid = ? WHERE id = ? AND state = 'running'",
                               (worker_pid, job_id))

    def update_progress(self, job_id, **progress):
        """Store the progress fields (:data:`PROGRESS_FIELDS`) of a running job."""
        unknown = set(progress) - set(PROGRESS_FIELDS)
        if unknown:
            raise TypeError(f"not progress fields: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in progress)
        with self._transaction() as connection:
            connection.execute(f"UPDATE jobs SET {assignments} WHERE id = ? AND state = 'running'",
                               (*progress.values(), job_id))

    def finish(self, job_id, state, error=None):
        """running -> ``state`` (done, failed or cancelled); False when the job was not running."""
        if state not in ("done", "failed", "cancelled"):
            raise ValueError(f"not a final state: {state!r}")
        with self._transaction() as connection:
            changed = connection.execute(
                "UPDATE jobs SET state = ?, error = ?, finished = ?, worker_pid = NULL "
                "WHERE id = ? AND state = 'running'", (state, error, time.time(), job_id)).rowcount
        return changed == 1

    def requeue(self, job_id):
        """running -> queued (its worker stopped at a chunk boundary, or its server died)."""
        with self._transaction() as connection:
            changed = connection.execute(
                "UPDATE jobs SET state = 'queued', worker_pid = NULL, images_per_second = NULL "
                "WHERE id = ? AND state = 'running'", (job_id,)).rowcount
        return changed == 1

    def interrupted(self):
        """Jobs left running by a server that is gone, as (id, worker pid) pairs."""
        return [(job["id"], job["worker_pid"]) for job in self.list("running", limit=-1)]
