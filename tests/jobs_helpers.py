"""Helpers of the job tests: roots with real files, slowed shard writes, an app and a server with the job router.

A plain module, imported as ``from jobs_helpers import ...``.
"""

import os
import shutil
import time

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
