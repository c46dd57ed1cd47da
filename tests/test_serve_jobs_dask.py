"""``featpipe serve --scheduler tcp://HOST:PORT``: an extract job's chunks run on the Dask cluster.

The cluster is a dask.distributed LocalCluster in this process (one worker thread on loopback);
a scheduler plugin counts the chunk tasks it finished, and the store must be byte-identical to a
local ``featpipe extract`` of the same images.
"""

import math

import distributed
import httpx
from distributed.diagnostics.plugin import SchedulerPlugin

from featpipe.pipeline.extract_job import run_extract_job
from helpers import read_shard_bytes
from jobs_helpers import job_folders, job_server, wait_for
from serve_support import free_port

CHUNK = 50


class _FinishedTasks(SchedulerPlugin):
    """Keys of the tasks the scheduler saw finish."""

    def __init__(self):
        self.keys = []

    def transition(self, key, start, finish, *args, **kwargs):
        if finish == "memory":
            self.keys.append(str(key))


def test_extract_job_runs_its_chunks_on_the_scheduler_and_writes_the_local_bytes(tmp_path, small_npz):
    folders = job_folders(tmp_path, small_npz)
    finished_tasks = _FinishedTasks()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=":0") as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        cluster.scheduler.add_plugin(finished_tasks)
        with job_server(folders, free_port(), "--scheduler", cluster.scheduler_address) as (_, base):
            answer = httpx.post(f"{base}/v1/jobs", json={"kind": "extract", "features": "hog+color",
                                                         "data": "small.npz", "store": "small", "chunk_size": CHUNK})
            assert answer.status_code == 202
            job = wait_for(lambda: (job := httpx.get(f"{base}{answer.headers['location']}").json())["state"]
                           not in ("queued", "running") and job, timeout=120)
    reference = run_extract_job("hog+color", small_npz, tmp_path / "reference", n_jobs=1, chunk_size=CHUNK,
                                progress=False)
    n_chunks = math.ceil(reference.manifest["n_rows"] / CHUNK)
    assert job["state"] == "done", job["error"]
    assert job["progress"]["chunks_done"] == job["progress"]["chunks_total"] == n_chunks
    assert len([key for key in finished_tasks.keys if key.startswith("_extract_chunk-")]) == n_chunks
    assert read_shard_bytes(folders["stores"] / "small") == read_shard_bytes(reference.path)
    assert len(read_shard_bytes(reference.path)) == n_chunks
