"""featpipe serve under load: throughput and latency against its own ceiling and LitServe.

A model trained by ``featpipe run hog+color+svm`` on the CIFAR-10 folder is
served on loopback; an asynchronous load client (aiohttp, in its own
process) sends the CIFAR-10 test JPEGs for ``--duration`` seconds per
point. Figures, one JSON line each:

- single-image requests at each ``--concurrency``, with batching (the
  defaults, ``--max-batch 64 --max-wait-ms 5``) and with ``--max-batch 1``;
- 64-image multipart requests;
- the in-process ceiling: decode + ``predict_batch`` on 64-image batches in
  as many threads as the server uses, no HTTP;
- LitServe serving the same ``model.skops`` (a ``LitAPI`` that decodes with
  featpipe's decoder, predicts, encodes; configured as its documentation
  says for a CPU server, see serve_litserve_peer.py) with the same batch
  size and wait, both swept over ``--litserve-concurrency`` with the same
  single-image multipart bodies: images/s and p99 at each load, and each
  server's best images/s among the points with p99 <= ``--p99-target-ms``
  and every answer a 200 (throughput at matched p99);
- overload: an open-loop client offering 4x the saturated throughput to a
  server with ``--queue-size 64`` (with the defaults, no connection limit,
  and with ``--max-connections 256``), counting answers by status, requests left
  without an answer, the latency of the 200s and of the 503s (from the
  request's creation, and from when it had one of the client's
  connections), and the server's peak RSS beside the bound the limits
  imply (docs/serve.md).

Usage::

    python benchmarks/bench_serve.py --run runs/cifar-hog-color-svm --duration 30

Without ``--run`` it trains the model first (a few minutes).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_load_client import OPEN_LOOP_CONNECTIONS, latency_figures, run_client  # noqa: E402

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpg"


def emit(**figure):
    print(json.dumps(figure), flush=True)


def test_jpegs(limit):
    paths = sorted((CIFAR / "test").glob("*/*.jpg"))[:limit]
    return [path.read_bytes() for path in paths]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url, process, timeout=180):
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered 200")


def start_featpipe(run_dir, port, *options):
    command = [sys.executable, "-m", "featpipe.cli", "serve", str(run_dir), "--port", str(port),
               "--log-level", "warning", *map(str, options)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_ready(f"http://127.0.0.1:{port}/readyz", process)
    return process


def start_litserve(run_dir, port, max_batch, max_wait_ms):
    command = [sys.executable, str(Path(__file__).with_name("serve_litserve_peer.py")), str(run_dir),
               "--port", str(port), "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    wait_ready(f"http://127.0.0.1:{port}/health", process)
    return process


def stop(process):
    """SIGTERM, then SIGKILL to the process and (for LitServe, in its own session) its workers."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)   # LitServe's workers, started in the peer's own session
    except (ProcessLookupError, PermissionError):
        pass


def closed_point(name, url, bodies, concurrency, duration, form=False, **labels):
    latencies, statuses, images, elapsed = run_client("closed", url, bodies, concurrency, duration, form)
    figure = {"figure": name, "concurrency": concurrency, "images_per_s": round(images / elapsed, 1),
              **latency_figures(latencies), "statuses": {str(k): v for k, v in statuses.items()},
              "seconds": round(elapsed, 1), **labels}
    emit(**figure)
    return figure


# ----------------------------------------------------------------------------- peers

def in_process_ceiling(run_dir, jpegs, duration, n_threads):
    from featpipe.serve.limits import decode_upload
    from featpipe.serve.models import load_served_model, parse_model_sources

    served = load_served_model(parse_model_sources([str(run_dir)])[0])
    batches = [jpegs[start:start + 64] for start in range(0, len(jpegs) - 63, 64)]
    done = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def work(offset):
        index = offset
        while time.monotonic() < stop_at:
            batch = batches[index % len(batches)]
            images = np.stack([decode_upload(data, served.image_size, 40_000_000) for data in batch])
            served.predict_batch(images)
            with lock:
                done[0] += len(batch)
            index += n_threads

    begun = time.monotonic()
    with ThreadPoolExecutor(n_threads) as pool:
        list(pool.map(work, range(n_threads)))
    rate = done[0] / (time.monotonic() - begun)
    emit(figure="in_process_ceiling", threads=n_threads, batch=64, images_per_s=round(rate, 1))
    return rate


# ----------------------------------------------------------------------------- memory

def peak_rss_during(pid, function):
    import psutil

    peak = [0]
    running = [True]

    def sample():
        process = psutil.Process(pid)
        while running[0]:
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = function()
    finally:
        running[0] = False
        sampler.join()
    return result, peak[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="run folder of hog+color+svm on CIFAR-10 (trained when absent)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per point")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--limit", type=int, default=10_000, help="test JPEGs cycled through")
    parser.add_argument("--parts", nargs="+", default=["ceiling", "sweep", "multipart", "litserve", "overload"])
    parser.add_argument("--litserve-concurrency", type=int, nargs="+", default=[4, 8, 16, 32, 64],
                        help="concurrencies at which featpipe and LitServe are both measured")
    parser.add_argument("--p99-target-ms", type=float, default=50.0,
                        help="p99 at which the two servers' throughputs are compared")
    args = parser.parse_args()
    run_dir = args.run or Path("benchmarks/out/serve-hog+color+svm")
    if not (run_dir / "model.skops").is_file():
        subprocess.run([sys.executable, "-m", "featpipe.cli", "run", "hog+color+svm", "--data", str(CIFAR),
                        "--out", str(run_dir), "--quiet"], check=True)
    jpegs = test_jpegs(args.limit)
    singles = [[data] for data in jpegs]
    sixty_fours = [jpegs[start:start + 64] for start in range(0, len(jpegs) - 63, 64)]
    n_threads = len(os.sched_getaffinity(0))
    emit(figure="setup", run=str(run_dir), images=len(jpegs), duration_s=args.duration, cores=n_threads,
         note="machine shared with other jobs: compare ratios, not absolute figures")

    ceiling = in_process_ceiling(run_dir, jpegs, args.duration, n_threads) if "ceiling" in args.parts else None
    path = "/v1/models/hog+color+svm/predict"

    if "sweep" in args.parts:
        for label, options in (("batched", ()), ("max_batch_1", ("--max-batch", "1"))):
            port = free_port()
            server = start_featpipe(run_dir, port, *options)
            try:
                for concurrency in args.concurrency:
                    closed_point("single_image", f"http://127.0.0.1:{port}{path}", singles, concurrency,
                                 args.duration, server=f"featpipe_{label}")
            finally:
                stop(server)

    if "multipart" in args.parts:
        port = free_port()
        server = start_featpipe(run_dir, port)
        try:
            for concurrency in (2, 4):
                figure = closed_point("multipart_64", f"http://127.0.0.1:{port}{path}", sixty_fours, concurrency,
                                      args.duration, form=True, server="featpipe_batched")
                if ceiling:
                    emit(figure="multipart_64_vs_ceiling", concurrency=concurrency,
                         ratio=round(figure["images_per_s"] / ceiling, 3))
        finally:
            stop(server)

    if "litserve" in args.parts:
        compare_with_litserve(run_dir, path, singles, args)

    if "overload" in args.parts:
        for label, options in (("defaults", ()), ("connection_limit_256", ("--max-connections", "256"))):
            overload(run_dir, path, singles, args.duration, label, options)


def best_within_p99(points, target_ms):
    """The point with the most images/s among those answering everything with p99 <= target_ms, or None."""
    within = [point for point in points if point.get("p99_ms", float("inf")) <= target_ms
              and set(point["statuses"]) == {"200"}]
    return max(within, key=lambda point: point["images_per_s"], default=None)


def compare_with_litserve(run_dir, path, singles, args):
    """Both servers swept over the same concurrencies (single-image forms); throughput compared at matched p99."""
    sweeps = {}
    for name in ("featpipe", "litserve"):
        port = free_port()
        if name == "featpipe":
            server, url = start_featpipe(run_dir, port), f"http://127.0.0.1:{port}{path}"
        else:
            server, url = start_litserve(run_dir, port, 64, 5.0), f"http://127.0.0.1:{port}/predict"
        try:
            sweeps[name] = [closed_point("single_image_form", url, singles, concurrency, args.duration, form=True,
                                         server=name) for concurrency in args.litserve_concurrency]
        finally:
            stop(server)
    for ours, theirs in zip(sweeps["featpipe"], sweeps["litserve"]):
        emit(figure="featpipe_vs_litserve_same_load", concurrency=ours["concurrency"],
             ratio=round(ours["images_per_s"] / max(theirs["images_per_s"], 1e-9), 3),
             featpipe_p99_ms=ours.get("p99_ms"), litserve_p99_ms=theirs.get("p99_ms"))
    best = {name: best_within_p99(points, args.p99_target_ms) for name, points in sweeps.items()}
    emit(figure="featpipe_vs_litserve_matched_p99", p99_target_ms=args.p99_target_ms,
         **{f"{name}_{key}": (point or {}).get(key) for name, point in best.items()
            for key in ("concurrency", "images_per_s", "p99_ms")},
         ratio=round(best["featpipe"]["images_per_s"] / best["litserve"]["images_per_s"], 3)
         if best["featpipe"] and best["litserve"] else None)


def overload(run_dir, path, singles, duration, label, options):
    """4x the saturated rate, open loop, against ``--queue-size 64``: statuses, 503 latency, peak memory."""
    queue_size, max_images, max_image_bytes = 64, 64, 10 * 1024**2
    port = free_port()
    server = start_featpipe(run_dir, port, "--queue-size", queue_size, *options)
    try:
        saturated = closed_point("saturation_probe", f"http://127.0.0.1:{port}{path}", singles, 64,
                                 min(duration, 10), server="featpipe_batched", options=label)
        rate = 4 * saturated["images_per_s"]
        (answers, sent, unanswered), peak = peak_rss_during(
            server.pid, lambda: run_client("open", f"http://127.0.0.1:{port}{path}", singles, rate, duration, 30.0))
    finally:
        stop(server)
    statuses = {}
    for status, _, _ in answers:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    by_status = {}
    for wanted in (200, 503):
        total = [latency for status, latency, _ in answers if status == wanted]
        on_connection = [latency for status, _, latency in answers if status == wanted]
        by_status[f"latency_{wanted}"] = latency_figures(total)
        by_status[f"latency_{wanted}_on_connection"] = latency_figures(on_connection)
    bound = queue_size * max_images * (max_image_bytes + 32 * 32 * 3)
    emit(figure="overload_4x", options=label, offered_per_s=round(rate, 1), sent=sent, unanswered=unanswered,
         statuses=statuses, **by_status, peak_rss_mb=round(peak / 2**20, 1),
         documented_bound_extra_mb=round(bound / 2**20, 1),
         note="latency: from the request's creation (includes waiting for one of the client's "
              f"{OPEN_LOOP_CONNECTIONS} connections); on_connection: from when it had a connection")

if __name__ == "__main__":
    main()
