"""Tests for the job records (SQLite) and the confinement of request paths to their roots."""

import os
import sqlite3
import threading
from contextlib import closing

import pytest

from featpipe.serve.jobs.job_store import JobConflict, JobStore
from featpipe.serve.jobs.paths import (
    JOB_FOLDER_OPTIONS, JobFoldersError, JobRoots, PathRefused, check_links_inside, confine, job_folders_from,
)

IDENTITY = {"kind": "extract", "features": "hog", "data": "/d/a", "store": "/s/a"}


@pytest.fixture
def store(tmp_path):
    return JobStore(tmp_path / "jobs.sqlite3")


def test_database_is_one_wal_file_and_survives_reopening(tmp_path, store):
    job, created = store.submit("extract", IDENTITY, "/s/a", {"store": "a"})
    assert created and job["state"] == "queued" and job["request"] == {"store": "a"}
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reopened = JobStore(tmp_path / "jobs.sqlite3")
    assert reopened.get(job["id"]) == job
    assert [found["id"] for found in reopened.list()] == [job["id"]]


def test_equal_active_job_is_returned_and_another_on_the_same_target_refused(store):
    first, _ = store.submit("extract", IDENTITY, "/s/a", {})
    again, created = store.submit("extract", dict(IDENTITY), "/s/a", {})
    assert not created and again["id"] == first["id"]
    with pytest.raises(JobConflict, match=f"job {first['id']} \\(queued\\) already writes /s/a"):
        store.submit("extract", {**IDENTITY, "features": "color"}, "/s/a", {})
    assert store.request_cancel(first["id"])["state"] == "cancelled"
    second, created = store.submit("extract", IDENTITY, "/s/a", {})
    assert created and second["id"] != first["id"]
    assert [job["id"] for job in store.list()] == [second["id"], first["id"]]
    assert [job["id"] for job in store.list("cancelled")] == [first["id"]]


def test_concurrent_submissions_make_one_record(tmp_path):
    outcomes = []

    def submit():
        outcomes.append(JobStore(tmp_path / "jobs.sqlite3").submit("extract", IDENTITY, "/s/a", {}))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 8 and sum(created for _, created in outcomes) == 1
    assert len({job["id"] for job, _ in outcomes}) == 1
    assert len(JobStore(tmp_path / "jobs.sqlite3").list()) == 1


def test_opening_waits_for_a_writer_holding_the_new_file(tmp_path):
    # SQLite refuses a journal-mode change under another connection's write
    # lock at once, without its busy timeout: opening must wait instead.
    path = tmp_path / "jobs.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, holder.execute, ("COMMIT",))
    release.start()
    try:
        store = JobStore(path)
    finally:
        release.join()
        holder.close()
    job, created = store.submit("extract", IDENTITY, "/s/a", {})
    assert created and store.get(job["id"]) == job
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_state_changes_follow_the_job_life(store):
    job, _ = store.submit("extract", IDENTITY, "/s/a", {})
    assert store.mark_running(job["id"]) and not store.mark_running(job["id"])
    store.record_worker(job["id"], 4242)
    store.update_progress(job["id"], images_done=10, images_total=40, chunks_done=1, chunks_total=4,
                          images_per_second=5.5, skipped=1)
    running = store.get(job["id"])
    assert (running["state"], running["worker_pid"], running["attempts"]) == ("running", 4242, 1)
    assert (running["images_done"], running["chunks_total"], running["images_per_second"]) == (10, 4, 5.5)
    assert store.interrupted() == [(job["id"], 4242)]
    assert store.requeue(job["id"]) and store.get(job["id"])["state"] == "queued"
    assert store.queued()[0]["images_done"] == 10
    assert store.mark_running(job["id"]) and store.get(job["id"])["attempts"] == 2
    assert store.request_cancel(job["id"])["cancel_requested"]
    assert store.get(job["id"])["state"] == "running"
    assert store.finish(job["id"], "failed", "boom") and not store.finish(job["id"], "done")
    finished = store.get(job["id"])
    assert (finished["state"], finished["error"], finished["worker_pid"]) == ("failed", "boom", None)
    assert store.request_cancel(job["id"])["state"] == "failed"
    assert store.request_cancel("nope") is None
    with pytest.raises(TypeError):
        store.update_progress(job["id"], state="done")


@pytest.mark.parametrize("relative, message", [
    ("/etc", "not absolute"), ("~/x", "not absolute"), ("a/../../x", "must not contain '..'"),
    ("", "non-empty"), ("a\x00b", "non-empty"), ("out", "outside its root"), ("out/deeper", "outside its root"),
])
def test_paths_leaving_their_root_are_refused(tmp_path, relative, message):
    root = tmp_path / "root"
    (root / "inside").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "out")
    with pytest.raises(PathRefused, match=message):
        confine(root, relative, "data")


def test_paths_inside_their_root_resolve(tmp_path):
    root = tmp_path / "root"
    (root / "inside").mkdir(parents=True)
    os.symlink(root / "inside", root / "alias")
    assert confine(root, "inside/new", "store") == root / "inside" / "new"
    assert confine(root, "alias//./x", "store") == root / "inside" / "x"


def test_links_deep_in_a_data_folder_must_stay_inside(tmp_path):
    root = tmp_path / "root"
    (root / "images" / "cat").mkdir(parents=True)
    (root / "shared").mkdir()
    os.symlink(root / "shared", root / "images" / "linked")
    os.symlink(root / "images", root / "shared" / "cycle")
    check_links_inside(root / "images", root, "data")
    (tmp_path / "secret").write_text("x")
    os.symlink(tmp_path / "secret", root / "shared" / "0001.jpg")
    with pytest.raises(PathRefused, match="shared/0001.jpg is a symbolic link leading outside"):
        check_links_inside(root / "images", root, "data")


def test_job_folders_are_all_or_none(tmp_path):
    folders = {name: str(tmp_path / name) for name in JOB_FOLDER_OPTIONS}
    assert job_folders_from(["run"], {**folders, "port": 1}) == tuple(folders.values())
    assert job_folders_from(["run"], dict.fromkeys(JOB_FOLDER_OPTIONS)) is None
    with pytest.raises(JobFoldersError, match="give at least one RUN_DIR, or the job folders"):
        job_folders_from([], dict.fromkeys(JOB_FOLDER_OPTIONS))
    with pytest.raises(JobFoldersError, match="jobs need all four folders"):
        job_folders_from([], {**folders, "state_dir": None})
    with pytest.raises(JobFoldersError, match="is not a folder"):
        JobRoots.create(tmp_path / "missing", *list(folders.values())[1:])
    roots = JobRoots.create(tmp_path, *list(folders.values())[1:])
    assert all(folder.is_dir() for folder in (roots.stores, roots.runs, roots.state))
