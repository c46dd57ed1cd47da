"""Tests for /v1/jobs through a small app holding the job router: submission checks, states, results, cancel."""

import json
import math
import os
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from featpipe.pipeline.extract_job import run_extract_job
from featpipe.serve.jobs.runner import JobRunner
from featpipe.store import format as store_format
from helpers import make_colour_images, read_shard_bytes
from jobs_helpers import jobs_app, make_roots, slow_shards, wait_for

CHUNK = 40


@pytest.fixture
def roots(tmp_path, small_npz):
    roots = make_roots(tmp_path)
    shutil.copyfile(small_npz, roots.data / "small.npz")
    (roots.data / "images").mkdir()
    return roots


@pytest.fixture
def idle(roots):
    """A client whose runner never starts: submitted jobs stay queued."""
    return TestClient(jobs_app(JobRunner(roots)))


@pytest.fixture
def running(roots):
    runner = JobRunner(roots)
    runner.start()
    yield TestClient(jobs_app(runner))
    runner.stop()


def extract(store="small-hog", **fields):
    return {"kind": "extract", "features": "hog", "data": "small.npz", "store": store, "chunk_size": CHUNK,
            "n_jobs": 1, **fields}


def finished(client, job_id):
    return wait_for(lambda: (job := client.get(f"/v1/jobs/{job_id}").json())["state"] not in ("queued", "running")
                    and job)


def test_extract_job_writes_the_store_featpipe_extract_writes(running, roots, tmp_path):
    answer = running.post("/v1/jobs", json=extract())
    assert answer.status_code == 202 and answer.headers["location"] == f"/v1/jobs/{answer.json()['id']}"
    job = finished(running, answer.json()["id"])
    reference = run_extract_job("hog", roots.data / "small.npz", tmp_path / "reference", n_jobs=1,
                                chunk_size=CHUNK, progress=False)
    assert job["state"] == "done" and job["error"] is None and job["output"] == "small-hog"
    n_images = reference.manifest["n_rows"]
    assert job["progress"] == {"images_done": n_images, "images_total": n_images, "skipped": 0,
                               "chunks_done": math.ceil(n_images / CHUNK), "chunks_total": math.ceil(n_images / CHUNK),
                               "images_per_second": job["progress"]["images_per_second"]}
    assert job["progress"]["images_per_second"] > 0
    assert read_shard_bytes(roots.stores / "small-hog") == read_shard_bytes(reference.path)
    result = running.get(f"/v1/jobs/{job['id']}/result").json()
    assert result["shards"] == reference.manifest["shards"] and result["n_rows"] == n_images
    assert job["started"] >= job["created"] and job["finished"] >= job["started"]


def test_run_job_trains_on_the_store_and_answers_its_metrics(running, roots):
    store_job = running.post("/v1/jobs", json=extract(features="color")).json()
    run_job = running.post("/v1/jobs", json={"kind": "run", "pipeline": "color+logreg", "store": "small-hog",
                                             "run": "colour"})
    assert run_job.status_code == 400 and "not a finished feature store" in run_job.json()["error"]
    assert finished(running, store_job["id"])["state"] == "done"
    run_job = running.post("/v1/jobs", json={"kind": "run", "pipeline": "color+logreg", "store": "small-hog",
                                             "run": "colour"}).json()
    assert run_job["request"]["name"] == "color+logreg"
    assert finished(running, run_job["id"])["state"] == "done"
    metrics = running.get(f"/v1/jobs/{run_job['id']}/result").json()
    assert metrics == json.loads((roots.runs / "colour" / "metrics.json").read_text())
    assert metrics["spec"] == "color+logreg" and metrics["accuracy"]["test"] > 0.6  # three classes: chance is 1/3
    assert (roots.runs / "colour" / "model.skops").is_file()
    again = running.post("/v1/jobs", json={"kind": "run", "pipeline": "color+logreg", "store": "small-hog",
                                           "run": "colour-again", "name": "again"}).json()
    assert finished(running, again["id"])["state"] == "done"
    repeated = running.get(f"/v1/jobs/{again['id']}/result").json()
    assert repeated["cache_hits"]["train"] and repeated["accuracy"] == metrics["accuracy"]
    assert not metrics["cache_hits"]["train"] and list((roots.state / "cache").iterdir())


@pytest.mark.parametrize("body, message", [
    (extract(features="hog+sift"), "unknown feature 'sift'"),
    (extract(data="missing"), "data 'missing' not found under the data root"),
    (extract(data="/etc"), "data path '/etc' must be relative to its root"),
    (extract(store="../escape"), "store path '../escape' must not contain '..'"),
    (extract(chunk_size=0), "chunk_size: Input should be greater than or equal to 1"),
    (extract(colour=True), "colour: Extra inputs are not permitted"),
    ({"kind": "train"}, "does not match any of the expected tags: 'extract', 'run'"),
    ({"kind": "run", "pipeline": "hog+svm"}, "either 'store' or 'data', exactly one"),
    ({"kind": "run", "pipeline": "/tmp/evil.toml", "data": "small.npz"}, "not a file"),
    ({"kind": "run", "pipeline": "hog+magic", "data": "small.npz"}, "unknown head 'magic'"),
    ({"kind": "run", "pipeline": "hog+svm", "data": "small.npz", "name": "a/b"}, "name may hold only"),
    ({"kind": "run", "pipeline": "\ud800+svm", "data": "small.npz"}, "not a file"),
    (extract(data="\ud800"), "is not valid text"),
    (extract(store="x" * 5000), "File name too long"),
])
def test_bad_submissions_are_400_with_one_line_and_write_nothing(idle, roots, body, message):
    answer = idle.post("/v1/jobs", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and message in answer.json()["error"]
    assert list(answer.json()) == ["error"] and "\n" not in answer.json()["error"]
    assert list(roots.stores.iterdir()) == [] and list(roots.runs.iterdir()) == []
    assert idle.get("/v1/jobs").json() == {"jobs": []}


def test_links_out_of_the_data_root_are_refused(idle, roots, tmp_path):
    os.symlink(tmp_path / "state", roots.data / "outside")
    assert "outside its root" in idle.post("/v1/jobs", json=extract(data="outside")).json()["error"]
    (tmp_path / "secret.jpg").write_bytes(b"not for jobs")
    (roots.data / "images" / "cat").mkdir()
    os.symlink(tmp_path / "secret.jpg", roots.data / "images" / "cat" / "0001.jpg")
    answer = idle.post("/v1/jobs", json=extract(data="images"))
    assert answer.status_code == 400 and "images/cat/0001.jpg is a symbolic link leading outside" in answer.json()["error"]


def test_store_locked_by_a_live_process_is_refused(idle, roots):
    (roots.stores / "busy").mkdir()
    (roots.stores / "busy" / store_format.LOCK_NAME).write_text(json.dumps(
        {"host": os.uname().nodename, "pid": os.getpid(), "started": "2026-01-01T00:00:00Z"}))
    answer = idle.post("/v1/jobs", json=extract(store="busy"))
    assert answer.status_code == 400 and f"store 'busy' is locked by another job (pid {os.getpid()}" in answer.json()["error"]


def test_resubmission_returns_the_active_job_and_other_writers_are_refused(idle):
    first = idle.post("/v1/jobs", json=extract())
    again = idle.post("/v1/jobs", json=extract(store="./small-hog", chunk_size=7))
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"] and again.headers["location"] == first.headers["location"]
    other = idle.post("/v1/jobs", json=extract(features="color"))
    assert other.status_code == 400 and f"job {first.json()['id']} (queued) already writes" in other.json()["error"]
    assert [job["id"] for job in idle.get("/v1/jobs").json()["jobs"]] == [first.json()["id"]]


def test_list_is_newest_first_and_filters_by_state(idle):
    ids = [idle.post("/v1/jobs", json=extract(store=f"s{number}")).json()["id"] for number in range(3)]
    idle.delete(f"/v1/jobs/{ids[1]}")
    assert [job["id"] for job in idle.get("/v1/jobs").json()["jobs"]] == ids[::-1]
    assert [job["id"] for job in idle.get("/v1/jobs?state=queued").json()["jobs"]] == [ids[2], ids[0]]
    assert [job["id"] for job in idle.get("/v1/jobs?state=cancelled").json()["jobs"]] == [ids[1]]
    assert idle.get("/v1/jobs?state=sleeping").status_code == 400


def test_cancel_unknown_and_unfinished_answers(idle):
    job_id = idle.post("/v1/jobs", json=extract()).json()["id"]
    assert idle.get(f"/v1/jobs/{job_id}/result").status_code == 409
    cancelled = idle.delete(f"/v1/jobs/{job_id}")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    assert idle.delete(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
    for answer in (idle.get("/v1/jobs/nope"), idle.delete("/v1/jobs/nope"), idle.get("/v1/jobs/nope/result")):
        assert answer.status_code == 404 and answer.json() == {"error": "no job nope"}


def test_without_roots_every_job_endpoint_is_404():
    client = TestClient(jobs_app(None))
    for answer in (client.get("/v1/jobs"), client.post("/v1/jobs", json=extract()), client.get("/v1/jobs/x"),
                   client.delete("/v1/jobs/x"), client.get("/v1/jobs/x/result")):
        assert answer.status_code == 404 and "jobs are not enabled" in answer.json()["error"]


def test_cancelled_running_job_keeps_its_shards_and_a_new_job_resumes(roots, tmp_path, monkeypatch):
    slow_shards(monkeypatch, tmp_path, delay=0.4)
    runner = JobRunner(roots)
    runner.start()
    client = TestClient(jobs_app(runner))
    try:
        job_id = client.post("/v1/jobs", json=extract(chunk_size=20)).json()["id"]
        wait_for(lambda: (client.get(f"/v1/jobs/{job_id}").json()["progress"]["chunks_done"] or 0) >= 2)
        assert client.delete(f"/v1/jobs/{job_id}").json()["cancel_requested"]
        job = finished(client, job_id)
        assert job["state"] == "cancelled" and "finished shards are kept" in job["error"]
        kept = read_shard_bytes(roots.stores / "small-hog")
        assert 2 <= len(kept) < job["progress"]["chunks_total"]
        monkeypatch.setenv("FEATPIPE_TEST_SHARD_DELAY", "0")
        resumed = client.post("/v1/jobs", json=extract(chunk_size=20))
        assert resumed.status_code == 202 and resumed.json()["id"] != job_id
        done = finished(client, resumed.json()["id"])
    finally:
        runner.stop()
    assert done["state"] == "done" and done["progress"]["images_done"] == done["progress"]["images_total"]
    reference = run_extract_job("hog", roots.data / "small.npz", tmp_path / "reference", n_jobs=1, chunk_size=20,
                                progress=False)
    final = read_shard_bytes(roots.stores / "small-hog")
    assert final == read_shard_bytes(reference.path)
    assert all(final[name] == data for name, data in kept.items())
    assert np.load(roots.stores / "small-hog" / store_format.SHARDS_DIR / next(iter(kept))).dtype == np.float32


def test_a_model_name_is_refused_when_served_or_trained_by_another_active_job(roots):
    runner = JobRunner(roots, served_names=lambda: {"taken"})
    client = TestClient(jobs_app(runner))
    train = {"kind": "run", "pipeline": "hog+svm", "data": "small.npz"}
    served = client.post("/v1/jobs", json={**train, "name": "taken"})
    assert served.status_code == 400 and "a model named 'taken' is served already" in served.json()["error"]
    first = client.post("/v1/jobs", json={**train, "run": "one"})
    assert first.status_code == 202 and first.json()["request"]["name"] == "hog+svm"
    assert client.post("/v1/jobs", json={**train, "run": "one"}).json()["id"] == first.json()["id"]
    second = client.post("/v1/jobs", json={**train, "run": "two"})
    assert second.status_code == 400
    assert f"job {first.json()['id']} (queued) trains a model named 'hog+svm' already" in second.json()["error"]
    assert client.post("/v1/jobs", json={**train, "run": "two", "name": "hog-2"}).status_code == 202


def test_a_run_folder_that_is_not_empty_is_refused(idle, roots):
    (roots.runs / "old").mkdir()
    (roots.runs / "old" / "metrics.json").write_text("{}")
    (roots.runs / "empty").mkdir()
    train = {"kind": "run", "pipeline": "hog+svm", "data": "small.npz"}
    refused = idle.post("/v1/jobs", json={**train, "run": "old"})
    assert refused.status_code == 400
    assert refused.json()["error"] == ("run folder 'old' exists and is not empty: a run never replaces another; "
                                       "give the job another 'run'")
    assert idle.post("/v1/jobs", json={**train, "run": "empty"}).status_code == 202


def test_a_run_job_on_a_store_of_other_features_is_refused_at_submission(idle, roots):
    run_extract_job("hog", roots.data / "small.npz", roots.stores / "hog", n_jobs=1, progress=False)
    train = {"kind": "run", "store": "hog"}
    answers = {pipeline: idle.post("/v1/jobs", json={**train, "pipeline": pipeline, "run": pipeline})
               for pipeline in ("hog+color+svm2", "hog+svm", "hog+svm2")}
    assert answers["hog+color+svm2"].json() == {
        "error": "feature store hog holds hog features; the pipeline asks for hog+color"}
    assert answers["hog+svm"].json() == {  # the shipped pipeline file hog+svm: two cell sizes
        "error": "feature store hog has hog pixels_per_cell=[8, 8]; the pipeline asks for pixels_per_cell=[[4, 4], "
                 "[8, 8]]: run on the images, or extract a store with these parameters"}
    assert answers["hog+svm2"].status_code == 202


def test_unreadable_images_are_skipped_and_counted(running, roots, tmp_path):
    images, labels = make_colour_images(3, n_classes=2, size=32)
    for number, (image, label) in enumerate(zip(images, labels)):
        folder = roots.data / "images" / ["red", "green"][label]
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"{number}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    job_id = running.post("/v1/jobs", json=extract(data="images", store="partial", features="color")).json()["id"]
    job = finished(running, job_id)
    reference = run_extract_job("color", roots.data / "images", tmp_path / "reference", n_jobs=1, chunk_size=CHUNK,
                                progress=False)
    assert job["state"] == "done" and len(reference.manifest["skipped"]) == 1
    assert job["progress"]["skipped"] == 1 and job["progress"]["images_total"] == 7
    assert read_shard_bytes(roots.stores / "partial") == read_shard_bytes(reference.path)
