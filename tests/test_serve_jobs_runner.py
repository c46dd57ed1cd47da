"""Tests for the job runner in this process: priority, at most N running, failures as one line, dead workers."""

import os
import shutil
import signal

import pytest

from featpipe.serve.jobs.job_store import JobConflict, JobStore
from featpipe.serve.jobs.paths import confine
from featpipe.serve.jobs.runner import JobRunner
from featpipe.serve.jobs.submission import ExtractRequest, prepare
from featpipe.serve.jobs.worker import NICE_INCREMENT, _run_folder_written
from jobs_helpers import make_roots, slow_shards, wait_for


@pytest.fixture
def roots(tmp_path, small_npz):
    roots = make_roots(tmp_path)
    shutil.copyfile(small_npz, roots.data / "small.npz")
    return roots


def submit(roots, store, data="small.npz", chunk_size=40):
    request = ExtractRequest(kind="extract", features="hog", data=data, store=store, chunk_size=chunk_size, n_jobs=1)
    job, _ = JobStore(roots.database).submit("extract", *prepare(request, roots))
    return job["id"]


def state_of(roots, job_id):
    return JobStore(roots.database).get(job_id)


@pytest.fixture
def runner(roots):
    runner = JobRunner(roots, max_running=1)
    yield runner
    runner.stop()


def test_at_most_max_running_jobs_run_at_once_below_the_server_priority(roots, tmp_path, monkeypatch):
    slow_shards(monkeypatch, tmp_path, delay=0.3)
    jobs = [submit(roots, name, chunk_size=60) for name in ("a", "b", "c")]
    runner = JobRunner(roots, max_running=2)
    runner.start()
    seen_running = set()

    def all_done():
        states = [state_of(roots, job_id)["state"] for job_id in jobs]
        seen_running.add(tuple(job_id for job_id, state in zip(jobs, states) if state == "running"))
        assert runner.running_count() <= 2
        return all(state == "done" for state in states)

    try:
        job = wait_for(lambda: (job := state_of(roots, jobs[0]))["chunks_done"] and job)
        assert os.getpriority(os.PRIO_PROCESS, job["worker_pid"]) == min(19, os.getpriority(os.PRIO_PROCESS, 0)
                                                                          + NICE_INCREMENT)
        wait_for(all_done)
    finally:
        runner.stop()
    assert tuple(jobs[:2]) in seen_running  # the oldest two ran together; the third only after one ended
    assert max(len(running) for running in seen_running) == 2 and tuple(jobs) not in seen_running


def test_a_job_that_fails_ends_failed_with_one_line(roots, runner):
    (roots.data / "empty").mkdir()
    job_id = submit(roots, "nothing", data="empty")
    runner.start()
    job = wait_for(lambda: (job := state_of(roots, job_id))["state"] in ("done", "failed") and job)
    assert job["state"] == "failed" and job["error"] and "\n" not in job["error"]
    assert "Traceback" not in job["error"] and job["worker_pid"] is None


def test_a_worker_killed_alone_fails_its_job_and_the_next_one_starts(roots, runner, tmp_path, monkeypatch):
    slow_shards(monkeypatch, tmp_path, delay=0.3)
    first, second = submit(roots, "a"), submit(roots, "b")
    runner.start()
    job = wait_for(lambda: (job := state_of(roots, first))["chunks_done"] and job)
    os.kill(job["worker_pid"], signal.SIGKILL)
    failed = wait_for(lambda: (job := state_of(roots, first))["state"] == "failed" and job)
    assert failed["error"].startswith("the job's worker process died (killed by signal SIGKILL)")
    monkeypatch.setenv("FEATPIPE_TEST_SHARD_DELAY", "0")
    assert wait_for(lambda: (state := state_of(roots, second)["state"]) in ("done", "failed") and state) == "done"
    assert len(list((confine(roots.stores, "a", "store") / "shards").glob("*.npy"))) >= failed["chunks_done"]


def test_two_servers_cannot_share_a_state_folder(roots):
    first = JobRunner(roots)
    first.start()
    try:
        with pytest.raises(JobConflict, match="another featpipe serve uses the state folder"):
            JobRunner(roots).claim()
    finally:
        first.stop()
    second = JobRunner(roots)
    second.claim()
    second.stop()


def test_a_later_attempt_takes_back_the_run_folder_a_killed_attempt_left(tmp_path):
    runs = tmp_path / "runs"
    run_dir, staging = runs / "r", runs / ".r.partial-x1"
    run_dir.mkdir(parents=True)
    staging.mkdir()
    (staging / "metrics.json").write_text("{}")
    (runs / ".other.partial-x2").mkdir()
    assert not _run_folder_written(run_dir, attempts=2)
    assert sorted(path.name for path in runs.iterdir()) == [".other.partial-x2"]
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text("{}")
    assert _run_folder_written(run_dir, attempts=2)
    assert not _run_folder_written(run_dir, attempts=1) and (run_dir / "metrics.json").is_file()
