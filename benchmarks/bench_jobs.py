"""Predict latency of ``featpipe serve`` with no job running against the same server while an extract job runs.

Job workers run at lower CPU priority than the request path (nice +10), so
predictions should stay fast while a job extracts. One server serves a
trained run and has job folders; an aiohttp load client (its own process,
``serve_load_client.py``) sends single CIFAR-10 test JPEGs at ``--concurrency``
for ``--duration`` seconds per phase. Phases alternate, ``--repeats`` times
each (the order flips every repeat, so a machine whose load drifts
disturbs both alike):

- ``idle``: no job;
- ``extract_job``: extract jobs (``hog+color`` on the CIFAR-10 train
  folder, 50,000 JPEGs, chunks of 500, every core) submitted to the same
  server one after another, so one runs all along; measured from the first
  job's first finished chunk, the running job cancelled after the phase
  (every job extracts into a store of its own).

One JSON line per phase (p50 / p95 / p99 ms, images/s, and the job's own
images/s during the phase), then the medians of each phase and their
ratios (job / idle).

Usage::

    python benchmarks/bench_jobs.py --run /tmp/serve-bench/hog+color+svm --duration 20 --repeats 3

``--run`` is a folder of ``featpipe run hog+color+svm`` on the CIFAR-10
folder (trained first, a few minutes, when absent).
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench_serve import CIFAR, emit, free_port, stop, test_jpegs, wait_ready
from serve_load_client import latency_figures, run_client

JOB = {"kind": "extract", "features": "hog+color", "data": "cifar10-jpg/train", "chunk_size": 500}
"""The extract job of the ``extract_job`` phase (its store is named per phase)."""
WARM_UP_SECONDS = 5


def start_server(run_dir, port, work):
    """``featpipe serve RUN`` with job folders under ``work`` (the data root is CIFAR-10's parent folder)."""
    command = [sys.executable, "-m", "featpipe.cli", "serve", str(run_dir), "--port", str(port),
               "--log-level", "warning", "--data-root", str(CIFAR.resolve().parent),
               "--store-root", str(work / "stores"), "--runs-root", str(work / "runs"),
               "--state-dir", str(work / "state")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_ready(f"http://127.0.0.1:{port}/readyz", process)
    return process


def _job(base, job_id):
    return httpx.get(f"{base}/v1/jobs/{job_id}").json()


class JobKeeper(threading.Thread):
    """Keeps an extract job running on the server until :meth:`finish`: a new one whenever one ends.

    Each job extracts into a store of its own. ``images`` counts the images
    the jobs extracted from :meth:`start_counting` on.
    """

    def __init__(self, base, prefix):
        super().__init__(daemon=True)
        self.base, self.prefix = base, prefix
        self.stopping, self.first_chunk = threading.Event(), threading.Event()
        self.done_before, self.images_at_start, self.current, self.jobs, self.error = 0, None, None, 0, None

    def run(self):
        try:
            while not self.stopping.is_set():
                answer = httpx.post(f"{self.base}/v1/jobs", json={**JOB, "store": f"{self.prefix}-{self.jobs}"})
                answer.raise_for_status()
                self.current, self.jobs = answer.json()["id"], self.jobs + 1
                while not self.stopping.is_set():
                    job = _job(self.base, self.current)
                    if (job["progress"]["chunks_done"] or 0) >= 1:
                        self.first_chunk.set()
                    if job["state"] == "failed":
                        raise RuntimeError(f"extract job failed: {job['error']}")
                    if job["state"] == "done":
                        self.done_before += job["progress"]["images_done"]
                        break
                    time.sleep(0.2)
        except Exception as error:  # reported by finish(), in the main thread
            self.error = error
            self.first_chunk.set()

    def _images(self):
        running = (_job(self.base, self.current)["progress"]["images_done"] or 0) if self.current else 0
        return self.done_before + running

    def start_counting(self):
        self.images_at_start = self._images()

    def finish(self):
        """Stop submitting, cancel the running job; the images extracted since :meth:`start_counting`."""
        self.stopping.set()
        self.join()
        images = self._images() - self.images_at_start
        httpx.delete(f"{self.base}/v1/jobs/{self.current}")
        deadline = time.monotonic() + 600
        while _job(self.base, self.current)["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.error is not None:
            raise self.error
        return images


def measure(url, singles, concurrency, duration, phase, repeat, base=None):
    """One phase: the load client for ``duration`` s (extract jobs running all along when ``base`` is given)."""
    keeper = None
    if base is not None:
        keeper = JobKeeper(base, f"bench-{repeat}")
        keeper.start()
        keeper.first_chunk.wait()
        keeper.start_counting()
    latencies, statuses, images, elapsed = run_client("closed", url, singles, concurrency, duration, False)
    figure = {"figure": "single_image_predict", "phase": phase, "repeat": repeat, "concurrency": concurrency,
              "images_per_s": round(images / elapsed, 1), **latency_figures(latencies),
              "statuses": {str(key): value for key, value in statuses.items()}, "seconds": round(elapsed, 1)}
    if keeper is not None:
        figure["job_images_per_s"] = round(keeper.finish() / elapsed, 1)
        figure["jobs_started"] = keeper.jobs
    emit(**figure)
    return figure


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("benchmarks/out/serve-hog+color+svm"),
                        help="run folder of hog+color+svm on CIFAR-10 (trained when absent)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=10_000, help="test JPEGs cycled through")
    args = parser.parse_args()
    if not (args.run / "model.skops").is_file():
        subprocess.run([sys.executable, "-m", "featpipe.cli", "run", "hog+color+svm", "--data", str(CIFAR),
                        "--out", str(args.run), "--quiet"], check=True)
    singles = [[data] for data in test_jpegs(args.limit)]
    work = Path(tempfile.mkdtemp(prefix="featpipe-bench-jobs-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/v1/models/hog+color+svm/predict"
    emit(figure="setup", run=str(args.run), images=len(singles), duration_s=args.duration,
         concurrency=args.concurrency, repeats=args.repeats, job=JOB,
         note="compare the phases' ratios; absolute figures move with the machine's load")
    server = start_server(args.run, port, work)
    try:
        run_client("closed", url, singles, args.concurrency, WARM_UP_SECONDS, False)
        figures = {"idle": [], "extract_job": []}
        for repeat in range(args.repeats):
            phases = ("idle", "extract_job") if repeat % 2 == 0 else ("extract_job", "idle")
            for phase in phases:
                figures[phase].append(measure(url, singles, args.concurrency, args.duration, phase, repeat,
                                              base if phase == "extract_job" else None))
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)
    medians = {phase: {key: statistics.median(figure[key] for figure in phase_figures)
                       for key in ("p50_ms", "p99_ms", "images_per_s")}
               for phase, phase_figures in figures.items()}
    emit(figure="median", repeats=args.repeats, concurrency=args.concurrency, **medians,
         job_images_per_s=statistics.median(figure["job_images_per_s"] for figure in figures["extract_job"]),
         p50_ratio=round(medians["extract_job"]["p50_ms"] / medians["idle"]["p50_ms"], 2),
         p99_ratio=round(medians["extract_job"]["p99_ms"] / medians["idle"]["p99_ms"], 2),
         throughput_ratio=round(medians["extract_job"]["images_per_s"] / medians["idle"]["images_per_s"], 2))


if __name__ == "__main__":
    main()
