"""What the service tests share: tiny trained runs, image files, an in-process app, a real server process."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import numpy as np
from click.testing import CliRunner
from PIL import Image

from featpipe.cli import cli
from featpipe.datasets import load_dataset
from featpipe.serve.app import create_app
from featpipe.serve.auth import KeyChecker
from featpipe.serve.limits import Limits
from featpipe.serve.models import ModelRegistry, load_served_model, parse_model_sources
from featpipe.serve.service import Service

RUN_SPECS = ("hog+color+softmax", "raw+svm")
"""A head with predict_proba (the shipped pipeline file) and one with decision scores only."""


def train_runs(root):
    """Train each of RUN_SPECS on the built-in data set into ``root/<spec>`` (once per test session)."""
    root = Path(root)
    for spec in RUN_SPECS:
        if not (root / spec / "metrics.json").is_file():
            result = CliRunner().invoke(cli, ["run", spec, "--out", str(root / spec), "--cache-dir",
                                              str(root / "cache"), "--jobs", "1", "--quiet"], catch_exceptions=False)
            assert result.exit_code == 0, result.output
    return {spec: root / spec for spec in RUN_SPECS}


def write_image_files(folder, n=6):
    """Built-in test images as PNG and JPEG files (one enlarged, so decoding resizes it); returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = load_dataset("builtin").X_test[:n]
    paths = []
    for index, image in enumerate(images):
        picture = Image.fromarray(image)
        if index == 0:
            picture = picture.resize((96, 80), Image.Resampling.NEAREST)
        suffix = ".jpg" if index % 2 else ".png"
        path = folder / f"image-{index}{suffix}"
        picture.save(path)
        paths.append(path)
    return paths


def make_service(run_dirs, limits=None, keys=(), n_workers=2):
    """A Service over ``run_dirs`` (RUN_DIR or NAME=RUN_DIR strings), as ``featpipe serve`` builds it."""
    sources = parse_model_sources([str(path) for path in run_dirs])
    registry = ModelRegistry(load_served_model(source) for source in sources)
    return Service(registry, limits or Limits(), KeyChecker(keys), n_workers=n_workers)


@asynccontextmanager
async def running_client(service, headers=None):
    """An httpx client talking to a started app in this event loop; waits until the models are warm."""
    app = create_app(service)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve.test", headers=headers) as client:
            for _ in range(500):
                if service.registry.ready:
                    break
                await asyncio.sleep(0.01)
            yield client


def run_async(scenario):
    """Run an async test body to completion."""
    return asyncio.run(scenario())


def multipart(paths_or_bytes):
    """httpx ``files=`` for several ``images`` parts."""
    files = []
    for index, item in enumerate(paths_or_bytes):
        if isinstance(item, (str, Path)):
            files.append(("images", (Path(item).name, Path(item).read_bytes(), "application/octet-stream")))
        else:
            files.append(("images", (f"part-{index}", item, "application/octet-stream")))
    return files


def metric_value(text, name, **labels):
    """The value of one sample in Prometheus text, or 0 when absent."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        sample_name, _, sample_labels = sample.partition("{")
        if sample_name == name and ",".join(sorted(sample_labels.rstrip("}").split(","))) == wanted:
            return float(value)
    return 0.0


def free_port():
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server_process(args, port):
    """``featpipe serve ARGS --port PORT`` as a real process, ready when this yields; killed afterwards."""
    command = [sys.executable, "-m", "featpipe.cli", "serve", *map(str, args), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


def wait_ready(base_url, process, timeout=60):
    """Poll /readyz until 200; fail with the server's stderr if it dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}: {process.stderr.read()}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready")


def model_outputs(run_dir, paths):
    """What the run folder's model gives in process for image files decoded as ``featpipe predict`` decodes them."""
    from featpipe.datasets import read_images
    from featpipe.model_io import load_model

    served = load_served_model(parse_model_sources([str(run_dir)])[0])
    batch = read_images([str(path) for path in paths], image_size=served.image_size, strict=True).images
    model = load_model(Path(run_dir) / "model.skops")
    values = model.predict_proba(batch) if hasattr(model, "predict_proba") else model.decision_function(batch)
    return model.predict(batch), np.asarray(values), served.classes


CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")


@contextmanager
def chromium():
    """Debian's headless Chromium driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()
