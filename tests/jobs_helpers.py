"""Helpers of the job tests: roots with real files, slowed shard writes and training, an app and servers with jobs.

A plain module, imported as ``from jobs_helpers import ...``.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx

from fastapi import FastAPI

from featpipe.serve.jobs.paths import JobRoots
from featpipe.serve.jobs.router import router
from helpers import CIFAR_FOLDER

_SLOW_SHARDS = """
import os, time
import featpipe.store.format as store_format

_write_json = store_format._write_json


def _slow_write_json(path, document):
    if path.parent.name == store_format.SHARDS_DIR:
        time.sleep(float(os.environ["FEATPIPE_TEST_SHARD_DELAY"]))
    _write_json(path, document)


store_format._write_json = _slow_write_json
"""

_SLOW_TRAINING = """
import os, pathlib, time

if os.environ.get("FEATPIPE_JOB_ID") and os.environ.get("FEATPIPE_TEST_TRAIN_MARKER"):
    from featpipe.pipeline import cached_stages

    _call = cached_stages.CachedStages.call

    def _slow_call(self, name, *keys, **data):
        if name == "train" and data.get("features") is not None:  # a cache miss: the data was fetched
            pathlib.Path(os.environ["FEATPIPE_TEST_TRAIN_MARKER"]).touch()
            time.sleep(float(os.environ["FEATPIPE_TEST_TRAIN_DELAY"]))
        return _call(self, name, *keys, **data)

    cached_stages.CachedStages.call = _slow_call
"""

SERVER = """
import sys
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from featpipe.serve.jobs.paths import JobRoots
from featpipe.serve.jobs.router import router
from featpipe.serve.jobs.runner import JobRunner

roots = JobRoots.create(*sys.argv[2:6])
runner = JobRunner(roots, max_running=1)


@asynccontextmanager
async def lifespan(app):
    runner.start()
    yield
    runner.stop()


app = FastAPI(lifespan=lifespan)
app.state.jobs = runner
app.include_router(router)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
"""A stand-alone job server: ``python server.py PORT DATA_ROOT STORE_ROOT RUNS_ROOT STATE_DIR``."""


def copy_cifar_folder(root, n_train, n_test, n_classes=3):
    """A small ROOT/{train,test}/<class>/ folder of CIFAR-10 JPEGs, copied (links would lead outside a root)."""
    for split, count in (("train", n_train), ("test", n_test)):
        for name in sorted(os.listdir(CIFAR_FOLDER / split))[:n_classes]:
            (root / split / name).mkdir(parents=True)
            for file_name in sorted(os.listdir(CIFAR_FOLDER / split / name))[:count]:
                shutil.copyfile(CIFAR_FOLDER / split / name / file_name, root / split / name / file_name)
    return root


def make_roots(tmp_path):
    """Fresh roots under ``tmp_path`` (an empty data root)."""
    (tmp_path / "data").mkdir()
    return JobRoots.create(*(tmp_path / name for name in ("data", "stores", "runs", "state")))


def slow_shards(monkeypatch, tmp_path, delay):
    """Make every Python process started from now on wait ``delay`` s before writing a shard record."""
    folder = tmp_path / "slow_site"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(_SLOW_SHARDS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("FEATPIPE_TEST_SHARD_DELAY", str(delay))


def slow_training(tmp_path, delay, marker):
    """Environment for processes whose job workers touch ``marker``, then wait ``delay`` s, before training a head."""
    folder = tmp_path / "slow_training_site"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(_SLOW_TRAINING)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])),
            "FEATPIPE_TEST_TRAIN_DELAY": str(delay), "FEATPIPE_TEST_TRAIN_MARKER": str(marker)}


_FOLDER_OPTIONS = {"data": "--data-root", "stores": "--store-root", "runs": "--runs-root", "state": "--state-dir"}


def job_folders(tmp_path, *data_files):
    """The four job folders under ``tmp_path`` (only the data root created), ``data_files`` copied into it."""
    folders = {name: tmp_path / name for name in ("data", "stores", "runs", "state")}
    folders["data"].mkdir()
    for path in data_files:
        shutil.copyfile(path, folders["data"] / path.name)
    return folders


@contextmanager
def job_server(folders, port, *options, env=None, log=None):
    """``featpipe serve --port PORT`` with the job folders and ``options``, ready when this yields; killed after.

    The server's output goes to ``log`` (a path; default ``STATE_DIR/../server-PORT.log``).
    """
    log = log or folders["state"].parent / f"server-{port}.log"
    command = [sys.executable, "-m", "featpipe.cli", "serve", "--port", str(port), *map(str, options)]
    for name, option in _FOLDER_OPTIONS.items():
        command += [option, str(folders[name])]
    with open(log, "a") as output:
        process = subprocess.Popen(command, stdout=output, stderr=output, env=env)
    base = f"http://127.0.0.1:{port}"

    def ready():
        assert process.poll() is None, f"the server ended: {open(log).read()}"
        try:
            return httpx.get(f"{base}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, timeout=60, step=0.1)
        yield process, base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


def jobs_app(runner):
    """A FastAPI app with only the job router, serving ``runner``'s jobs (None: jobs disabled)."""
    app = FastAPI()
    app.state.jobs = runner
    app.include_router(router)
    return app


def wait_for(condition, timeout=120, step=0.05):
    """Poll ``condition()`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(step)
    return value
