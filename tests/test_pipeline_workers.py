"""SharedWorkPool: every task runs once, here and in the workers; errors and dead workers surface."""

import os
import signal
import time

import pytest

from featpipe.pipeline.workers import SharedWorkPool, WorkerDied


def square_and_pid(value, seconds):
    time.sleep(seconds)
    return value * value, os.getpid()


def fail_on_seven(value):
    time.sleep(0.02)
    if value == 7:
        raise ValueError("seven is not allowed")
    return value


def die_in_a_worker(main_pid):
    time.sleep(0.05)
    if os.getpid() != main_pid:
        os.kill(os.getpid(), signal.SIGKILL)
    return main_pid


def test_every_task_runs_once_in_this_process_and_in_the_worker():
    results = []
    with SharedWorkPool(2) as pool:
        assert pool.n_workers == 1
        pool.run(square_and_pid, [(value, 0.05) for value in range(80)], results.append)
    assert sorted(square for square, _ in results) == [value * value for value in range(80)]
    pids = {pid for _, pid in results}
    assert os.getpid() in pids and len(pids) == 2


def test_one_job_runs_everything_here_in_order():
    results = []
    with SharedWorkPool(1) as pool:
        assert pool.n_workers == 0
        pool.run(square_and_pid, [(value, 0.0) for value in range(5)], results.append)
    assert results == [(value * value, os.getpid()) for value in range(5)]


def test_a_failing_task_stops_the_run_with_its_error():
    seen = []
    with SharedWorkPool(2) as pool, pytest.raises(ValueError, match="seven is not allowed"):
        pool.run(fail_on_seven, [(value,) for value in range(200)], seen.append)
    assert 7 not in seen and len(seen) < 200


def test_a_killed_worker_is_reported():
    with SharedWorkPool(2) as pool, pytest.raises(WorkerDied, match="worker process died"):
        pool.run(die_in_a_worker, [(os.getpid(),) for _ in range(400)], lambda result: None)
