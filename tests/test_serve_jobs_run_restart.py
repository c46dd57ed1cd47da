"""A real ``featpipe serve`` SIGKILLed while a run job trains, then started again with the same --state-dir.

The job's worker is held at the start of training (``slow_training``), after its load, extract
and normalize stages are cached under --state-dir. After the restart the same job record must
finish from those cached stages (their cache files untouched, ``cache_hits`` saying so), and the
model it trained must be served without another restart.
"""

import io
import os
import signal

import httpx
import numpy as np
from PIL import Image

from featpipe.model_io import load_model
from featpipe.serve.jobs.job_store import JobStore
from featpipe.serve.jobs.paths import STATE_FILE_NAME
from featpipe.serve.jobs.runner import _processes_of_job
from featpipe.serve.jobs.worker import NICE_INCREMENT
from jobs_helpers import job_folders, job_server, slow_training, wait_for
from serve_support import free_port

TRAIN = {"kind": "run", "pipeline": "color+logreg", "data": "small.npz", "run": "colours", "name": "colours",
         "n_jobs": 1}


def _cache_files(state_dir):
    """{path: modification time in ns} of every file of the run jobs' stage cache."""
    return {path: path.stat().st_mtime_ns for path in (state_dir / "cache").rglob("*") if path.is_file()}


def _png(image):
    encoded = io.BytesIO()
    Image.fromarray(image).save(encoded, format="PNG")
    return encoded.getvalue()


def test_run_job_killed_in_training_resumes_from_its_cached_stages_and_is_served(tmp_path, small_npz):
    folders = job_folders(tmp_path, small_npz)
    marker = tmp_path / "training-started"
    with job_server(folders, free_port(), env=slow_training(tmp_path, 600, marker)) as (server, base):
        answer = httpx.post(f"{base}/v1/jobs", json=TRAIN)
        assert answer.status_code == 202
        job_id = answer.json()["id"]
        wait_for(marker.exists, timeout=60)
        worker_pid = JobStore(folders["state"] / STATE_FILE_NAME).get(job_id)["worker_pid"]
        assert os.getpriority(os.PRIO_PROCESS, worker_pid) == min(19, os.getpriority(os.PRIO_PROCESS, server.pid)
                                                                  + NICE_INCREMENT)
        cached_before = _cache_files(folders["state"])
        assert any("extract" in path.parts for path in cached_before)
        server.send_signal(signal.SIGKILL)
        server.wait()
    wait_for(lambda: not _processes_of_job(job_id), timeout=10)
    left = JobStore(folders["state"] / STATE_FILE_NAME).get(job_id)
    assert left["state"] == "running" and left["attempts"] == 1
    assert list((folders["runs"] / "colours").iterdir()) == []  # reserved by the killed run, never written

    with job_server(folders, free_port(), env=slow_training(tmp_path, 0, tmp_path / "second-marker")) as (
            server, base):
        job = wait_for(lambda: (job := httpx.get(f"{base}/v1/jobs/{job_id}").json())["state"] not in (
            "queued", "running") and job, timeout=120)
        assert job["state"] == "done", job["error"]
        wait_for(lambda: "colours" in [model["name"] for model in httpx.get(f"{base}/v1/models").json()["models"]],
                 timeout=60)
        listed = httpx.get(f"{base}/v1/jobs").json()["jobs"]
        metrics = httpx.get(f"{base}/v1/jobs/{job_id}/result").json()
        image = np.zeros((32, 32, 3), dtype=np.uint8)
        image[..., 1] = 230
        prediction = httpx.post(f"{base}/v1/models/colours/predict", headers={"Content-Type": "image/png"},
                                content=_png(image)).json()
    assert job["attempts"] == 2 and job["error"] is None
    assert [entry["id"] for entry in listed] == [job_id]
    assert metrics["cache_hits"] == {"load": True, "extract": True, "normalize": True, "train": False,
                                     "evaluate": False}
    cached_after = _cache_files(folders["state"])
    assert {path: cached_after.get(path) for path in cached_before} == cached_before
    model = load_model(folders["runs"] / "colours" / "model.skops")
    assert prediction["predictions"][0]["class_index"] == int(model.predict(image[None])[0])
    assert metrics["accuracy"]["test"] > 0.6  # three classes: chance is 1/3
