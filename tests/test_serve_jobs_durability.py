"""A real server process killed (SIGKILL) or stopped (SIGTERM) in the middle of an extract job, then started again.

The server is a uvicorn process holding the job router and runner (``jobs_helpers.SERVER``); its
job's shard records are slowed down (``slow_shards``) so the signal lands between chunks. After
the restart the job must end with shards byte-identical to an uninterrupted ``featpipe extract``
of the same images, as one record.
"""

import json
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from featpipe.pipeline.extract_job import run_extract_job
from featpipe.serve.jobs.job_store import JobStore
from featpipe.serve.jobs.paths import JobRoots
from featpipe.serve.jobs.runner import _processes_of_job
from featpipe.store import format as store_format
from helpers import CIFAR_FOLDER, read_shard_bytes
from jobs_helpers import SERVER, copy_cifar_folder, slow_shards, wait_for

pytestmark = [pytest.mark.cifar,
              pytest.mark.skipif(not CIFAR_FOLDER.is_dir(), reason=f"the CIFAR-10 JPEG copy {CIFAR_FOLDER} is absent")]

CHUNK = 8
REQUEST = {"kind": "extract", "features": "hog", "data": "images", "store": "cifar-hog", "chunk_size": CHUNK}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    copy_cifar_folder(root / "images", n_train=30, n_test=8)
    return root


@pytest.fixture(scope="module")
def reference(data_root, tmp_path_factory):
    """The store of an uninterrupted, single-process featpipe extract of the same images."""
    out = tmp_path_factory.mktemp("reference") / "store"
    return run_extract_job("hog", data_root / "images", out, n_jobs=1, chunk_size=CHUNK, progress=False)


@pytest.fixture(autouse=True)
def no_server_left():
    """Kill the servers a failed test left running."""
    yield
    for server in Server.started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
    Server.started.clear()


class Server:
    """``jobs_helpers.SERVER`` in a subprocess on a free loopback port."""

    started = []

    def __init__(self, tmp_path, roots):
        script = tmp_path / "server.py"
        script.write_text(SERVER)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([sys.executable, str(script), str(port), str(roots.data),
                                         str(roots.stores), str(roots.runs), str(roots.state)])
        Server.started.append(self)
        wait_for(self._answers, timeout=60, step=0.1)

    def _answers(self):
        assert self.process.poll() is None, "the server ended"
        try:
            return httpx.get(f"{self.url}/v1/jobs").status_code == 200
        except httpx.TransportError:
            return False

    def job(self, job_id):
        return httpx.get(f"{self.url}/v1/jobs/{job_id}").json()


def _stop(server):
    """SIGTERM, answered by uvicorn's shutdown (which re-raises the signal once the app has stopped)."""
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)


def _roots(tmp_path, data_root):
    return JobRoots.create(data_root, tmp_path / "stores", tmp_path / "runs", tmp_path / "state")


def _start_slow_job(tmp_path, roots, monkeypatch, n_jobs):
    slow_shards(monkeypatch, tmp_path, delay=0.3)
    server = Server(tmp_path, roots)
    answer = httpx.post(f"{server.url}/v1/jobs", json={**REQUEST, "n_jobs": n_jobs})
    assert answer.status_code == 202
    job_id = answer.json()["id"]
    wait_for(lambda: (server.job(job_id)["progress"]["chunks_done"] or 0) >= 3)
    return server, job_id


def _finish_after_restart(tmp_path, roots, monkeypatch, job_id, reference):
    monkeypatch.setenv("FEATPIPE_TEST_SHARD_DELAY", "0")
    server = Server(tmp_path, roots)
    try:
        job = wait_for(lambda: (job := server.job(job_id))["state"] not in ("queued", "running") and job)
        jobs = httpx.get(f"{server.url}/v1/jobs").json()["jobs"]
    finally:
        _stop(server)
    store_dir = roots.stores / "cifar-hog"
    assert job["state"] == "done" and job["attempts"] == 2
    assert [listed["id"] for listed in jobs] == [job_id]
    assert read_shard_bytes(store_dir) == read_shard_bytes(reference.path)
    assert store_format.read_manifest(store_dir)["shards"] == reference.manifest["shards"]
    assert not (store_dir / store_format.LOCK_NAME).exists()
    assert not [path for path in store_dir.rglob(".*") if path.is_file()]


def test_sigkill_of_the_server_then_restart_finishes_the_job_with_the_same_bytes(
        tmp_path, data_root, reference, monkeypatch):
    roots = _roots(tmp_path, data_root)
    server, job_id = _start_slow_job(tmp_path, roots, monkeypatch, n_jobs=2)
    assert len(_processes_of_job(job_id)) >= 2  # the job's worker, its second extraction process (and tracker)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    wait_for(lambda: not _processes_of_job(job_id), timeout=10)
    left = JobStore(roots.database).get(job_id)
    assert left["state"] == "running" and 3 <= left["chunks_done"] < left["chunks_total"]
    store_dir = roots.stores / "cifar-hog"
    assert json.loads((store_dir / store_format.LOCK_NAME).read_text())["pid"] == left["worker_pid"]
    _finish_after_restart(tmp_path, roots, monkeypatch, job_id, reference)


def test_sigterm_stops_the_job_at_a_chunk_boundary_and_the_next_start_resumes_it(
        tmp_path, data_root, reference, monkeypatch):
    roots = _roots(tmp_path, data_root)
    server, job_id = _start_slow_job(tmp_path, roots, monkeypatch, n_jobs=1)
    _stop(server)
    assert not _processes_of_job(job_id)
    stopped = JobStore(roots.database).get(job_id)
    store_dir = roots.stores / "cifar-hog"
    assert stopped["state"] == "queued" and stopped["worker_pid"] is None
    records = sorted((store_dir / store_format.SHARDS_DIR).glob("*.json"))
    assert stopped["chunks_done"] == len(records) == len(read_shard_bytes(store_dir)) < stopped["chunks_total"]
    assert not (store_dir / store_format.LOCK_NAME).exists()
    _finish_after_restart(tmp_path, roots, monkeypatch, job_id, reference)
