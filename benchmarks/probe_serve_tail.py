"""Where the latency tail of ``featpipe serve`` comes from: one server, instrumented, under load.

The server runs in this process (the app ``featpipe serve`` builds, under
uvicorn), with probes attached from outside the package:

- per request: arrival, body read, images decoded, handed to the batcher,
  batch start, batch end, response sent (``time.monotonic``);
- per batch: images, and how many batches were computing at once;
- the event loop's lag: a task sleeping 1 ms that records its oversleep;
- garbage collections: generation and pause (``gc.callbacks``);
- CPU seconds of this process and of the load client.

The load client is bench_serve.py's closed-loop client in its own process
(single images, ``--concurrency`` clients). One JSON line per figure:
client-side percentiles, server-side percentiles of each stage, and for the
slowest 1 % of requests (server side) where their time went and which
pauses overlapped them.

``--variant`` runs the same probe on a changed server (comma-separated:
``blas1``, BLAS and OpenMP at one thread; ``switch1``, a 1 ms GIL switch
interval; ``workers1``, one batch at a time; ``unfreeze``, the heap given
back to the collector once warm, as before the fix); run variants
alternately to compare them in the same conditions::

    python benchmarks/probe_serve_tail.py --run RUN --duration 10 --variant baseline
"""

import argparse
import asyncio
import dataclasses
import functools
import gc
import json
import sys
import time
from contextvars import ContextVar
from pathlib import Path

import numpy as np
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serve import free_port, test_jpegs  # noqa: E402
from serve_load_client import run_client  # noqa: E402

from featpipe.serve import batcher as batcher_module  # noqa: E402
from featpipe.serve import routes  # noqa: E402
from featpipe.serve.app import create_app  # noqa: E402
from featpipe.serve.limits import Limits  # noqa: E402
from featpipe.serve.server import ServeOptions, build_service  # noqa: E402

_RECORD = ContextVar("probe_record", default=None)
PATH = "/v1/models/hog+color+svm/predict"


class Probes:
    """Everything recorded while the load runs."""

    def __init__(self):
        self.requests = []
        self.batches = []
        self.loop_lags = []
        self.gc_pauses = []
        self.computing = 0
        self._gc_started = None

    def on_gc(self, phase, info):
        if phase == "start":
            self._gc_started = time.monotonic()
        elif self._gc_started is not None:
            self.gc_pauses.append((self._gc_started, time.monotonic(), info["generation"]))


def _stamped_after(step, stage):
    """The coroutine function ``step``, stamping ``stage`` on the current request once it returns."""

    async def stamped(*args, **kwargs):
        result = await step(*args, **kwargs)
        _stamp(stage)
        return result

    return stamped


def attach(probes, app, service):
    """Wrap the app and the service's steps so that each request and batch leaves its times."""

    async def envelope(scope, receive, send):
        if scope["type"] != "http" or scope["path"] != PATH:
            await app(scope, receive, send)
            return
        record = {"arrived": time.monotonic()}
        _RECORD.set(record)

        async def timed_send(message):
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                record["sent"] = time.monotonic()

        await app(scope, receive, timed_send)
        probes.requests.append(record)

    routes.read_body = _stamped_after(routes.read_body, "body_read")
    service.decode = _stamped_after(service.decode, "decoded")

    @dataclasses.dataclass
    class RecordedWaiting(batcher_module._Waiting):
        def __post_init__(self):
            self.record = _RECORD.get() or {}
            self.record["queued"] = self.enqueued

    batcher_module._Waiting = RecordedWaiting
    original_run = batcher_module.MicroBatcher._run

    async def run(self, batch):
        started = time.monotonic()
        probes.computing += 1
        computing = probes.computing
        try:
            await original_run(self, batch)
        finally:
            probes.computing -= 1
        ended = time.monotonic()
        probes.batches.append((started, ended, sum(len(item.images) for item in batch), computing))
        for item in batch:
            item.record.update(batch_start=started, batch_end=ended, batch_images=len(batch))

    batcher_module.MicroBatcher._run = run
    return envelope


def _stamp(name):
    record = _RECORD.get()
    if record is not None:
        record[name] = time.monotonic()


async def watch_loop(probes, stop):
    """Record every oversleep of a 1 ms sleep over 2 ms (the loop was busy or starved)."""
    while not stop.is_set():
        asked = time.monotonic()
        await asyncio.sleep(0.001)
        lag = time.monotonic() - asked - 0.001
        if lag > 0.002:
            probes.loop_lags.append((asked, lag))


def apply_variant(variant, service):
    """Change the server as ``variant`` says (comma-separated)."""
    for part in filter(None, variant.split(",")):
        if part in ("baseline", "unfreeze"):  # unfreeze: applied once the models are warm
            continue
        if part == "blas1":
            from threadpoolctl import threadpool_limits
            threadpool_limits(limits=1)
        elif part.startswith("switch"):
            sys.setswitchinterval(float(part[len("switch"):]) / 1000)
        elif part.startswith("workers"):
            service.n_workers = int(part[len("workers"):])
        else:
            raise SystemExit(f"unknown variant {part}")


def percentiles(values_ms):
    values = np.asarray(values_ms)
    if not len(values):
        return {}
    return {f"p{q}": round(float(np.percentile(values, q)), 2) for q in (50, 95, 99)} | {
        "max": round(float(values.max()), 2)}


STAGES = (("read", "arrived", "body_read"), ("decode", "body_read", "decoded"),
          ("to_queue", "decoded", "queued"), ("queue_wait", "queued", "batch_start"),
          ("compute", "batch_start", "batch_end"), ("respond", "batch_end", "sent"),
          ("total", "arrived", "sent"))


def overlap_ms(start, end, intervals):
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in intervals) * 1000


async def main_async(args):
    import psutil

    options = ServeOptions(run_dirs=(str(args.run),), limits=Limits())
    service = build_service(options)
    apply_variant(args.variant, service)
    probes = Probes()
    app = attach(probes, create_app(service), service)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not service.registry.ready:
        await asyncio.sleep(0.1)
    if "unfreeze" in args.variant.split(","):
        gc.unfreeze()
    jpegs = test_jpegs(args.limit)
    url = f"http://127.0.0.1:{port}{PATH}"
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, run_client, "closed", url, [[j] for j in jpegs[:500]], args.concurrency, 2.0,
                               False)
    probes.requests.clear()
    probes.batches.clear()
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_loop(probes, stop))
    gc.callbacks.append(probes.on_gc)
    me = psutil.Process()
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu_before = me.cpu_times()
    begun = time.monotonic()
    latencies, statuses, images, elapsed = await loop.run_in_executor(
        None, functools.partial(run_client, "closed", url, [[j] for j in jpegs], args.concurrency, args.duration,
                                False, loop=args.client_loop))
    cpu_after = me.cpu_times()
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
    threads = me.num_threads()
    ended = time.monotonic()
    gc.callbacks.remove(probes.on_gc)
    stop.set()
    await watcher
    server.should_exit = True
    await serving

    emit = lambda **figure: print(json.dumps({"variant": args.variant, **figure}), flush=True)  # noqa: E731
    emit(figure="client", client_loop=args.client_loop, concurrency=args.concurrency, images_per_s=round(images / elapsed, 1),
         **percentiles(np.asarray(latencies) * 1000), statuses={str(k): v for k, v in statuses.items()})
    done = [r for r in probes.requests if "sent" in r and "batch_end" in r and begun <= r["arrived"] <= ended]
    for name, first, last in STAGES:
        emit(figure=f"server_{name}_ms", **percentiles([(r[last] - r[first]) * 1000 for r in done]))
    sizes = np.asarray([b[2] for b in probes.batches])
    emit(figure="batches", count=len(sizes), mean_images=round(float(sizes.mean()), 2) if len(sizes) else 0,
         max_images=int(sizes.max()) if len(sizes) else 0,
         computing_at_once={str(k): int(v) for k, v in zip(*np.unique([b[3] for b in probes.batches],
                                                                        return_counts=True))},
         compute_ms=percentiles([(b[1] - b[0]) * 1000 for b in probes.batches]))
    gcs = [(a, b, g) for a, b, g in probes.gc_pauses if begun <= a <= ended]
    for generation in (0, 1, 2):
        pauses = [(b - a) * 1000 for a, b, g in gcs if g == generation]
        emit(figure=f"gc_gen{generation}", count=len(pauses), total_ms=round(sum(pauses), 1),
             **percentiles(pauses))
    emit(figure="loop_lag_over_2ms", count=len(probes.loop_lags), total_ms=round(sum(l for _, l in probes.loop_lags) * 1000, 1),
         **percentiles([lag * 1000 for _, lag in probes.loop_lags]))
    emit(figure="server_cpu_s", user=round(cpu_after.user - cpu_before.user, 2),
         system=round(cpu_after.system - cpu_before.system, 2), wall=round(ended - begun, 2),
         threads=threads)
    totals = np.asarray([(r["sent"] - r["arrived"]) * 1000 for r in done])
    if len(totals):
        cut = np.percentile(totals, 99)
        slow = [r for r, total in zip(done, totals) if total >= cut]
        gc_intervals = [(a, b) for a, b, _ in gcs]
        lag_intervals = [(asked, asked + 0.001 + lag) for asked, lag in probes.loop_lags]
        emit(figure="slowest_1pct", n=len(slow), cut_ms=round(float(cut), 1),
             **{f"mean_{name}_ms": round(float(np.mean([(r[last] - r[first]) * 1000 for r in slow])), 1)
                for name, first, last in STAGES},
             mean_gc_overlap_ms=round(float(np.mean([overlap_ms(r["arrived"], r["sent"], gc_intervals)
                                                     for r in slow])), 1),
             mean_loop_lag_overlap_ms=round(float(np.mean([overlap_ms(r["arrived"], r["sent"], lag_intervals)
                                                           for r in slow])), 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--limit", type=int, default=10_000)
    parser.add_argument("--variant", default="baseline")
    parser.add_argument("--profile", action="store_true",
                        help="profile the event loop's thread (cProfile) and print its top functions on stderr")
    parser.add_argument("--client-loop", choices=["uvloop", "asyncio"], default="uvloop")
    import uvloop  # uvicorn's loop when installed, as under `featpipe serve`

    uvloop.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
