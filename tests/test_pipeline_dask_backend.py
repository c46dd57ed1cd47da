"""Tests for the extraction job on a Dask cluster (two worker processes on loopback)."""

import os
import signal
import subprocess
import sys
import time

import distributed
import pytest

from featpipe.pipeline.extract_job import run_extract_job
from featpipe.store import format as store
from featpipe.store.reader import open as open_store
from helpers import link_cifar_folder, read_shard_bytes

CHUNK = 4

_SLOW_SHARD_RECORDS = """
import time
import featpipe.store.format
if not hasattr(featpipe.store.format, "_fast_write_json"):
    featpipe.store.format._fast_write_json = featpipe.store.format._write_json

    def _slow_write_json(path, document):
        if "shard-" in str(path):
            time.sleep(0.15)
        featpipe.store.format._fast_write_json(path, document)

    featpipe.store.format._write_json = _slow_write_json
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return link_cifar_folder(tmp_path_factory.mktemp("images"), n_train=12, n_test=4)


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    """The store of a local, single-process run."""
    out = tmp_path_factory.mktemp("reference") / "store"
    return run_extract_job("hog", folder, out, n_jobs=1, chunk_size=CHUNK, progress=False)


def test_backend_dask_store_equals_the_local_store(folder, reference, tmp_path):
    stored = run_extract_job("hog", folder, tmp_path / "store", n_jobs=2, chunk_size=CHUNK, backend="dask",
                             progress=False)
    assert read_shard_bytes(stored.path) == read_shard_bytes(reference.path) and len(read_shard_bytes(stored.path)) == 12
    assert stored.manifest["shards"] == reference.manifest["shards"]
    assert stored.manifest["paths"] == reference.manifest["paths"]


_JOB = """
import sys
from featpipe.pipeline.extract_job import run_extract_job
if __name__ == "__main__":
    run_extract_job("hog", sys.argv[1], sys.argv[2], chunk_size=int(sys.argv[3]), scheduler=sys.argv[4],
                    progress=False)
"""


def test_job_on_a_scheduler_survives_a_killed_worker(folder, reference, tmp_path):
    out = tmp_path / "store"
    script = tmp_path / "job.py"
    script.write_text(_JOB)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        client.run(exec, _SLOW_SHARD_RECORDS, {})
        worker_pids = sorted(client.run(os.getpid).values())
        job = subprocess.Popen([sys.executable, str(script), str(folder), str(out), str(CHUNK),
                                cluster.scheduler_address], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(list((out / store.SHARDS_DIR).glob("*.json"))) < 2:
            assert job.poll() is None, job.stderr.read()
            assert time.monotonic() < deadline, "the job wrote no shard"
            time.sleep(0.01)
        os.kill(worker_pids[0], signal.SIGKILL)
        assert job.poll() is None, "the job ended before the worker was killed"
        assert job.wait(timeout=120) == 0, job.stderr.read()
        client.wait_for_workers(2, timeout=60)
        assert worker_pids[0] not in client.run(os.getpid).values()
    assert read_shard_bytes(out) == read_shard_bytes(reference.path)
    assert open_store(out).manifest["shards"] == reference.manifest["shards"]
