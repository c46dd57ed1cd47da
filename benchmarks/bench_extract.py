"""Benchmark: `featpipe extract` on CIFAR-10 with 1 and 2 local jobs and a 2-worker Dask LocalCluster.

Every measurement runs the job in a fresh Python process, as the command line
does (worker start-up included), into a new store, and samples the resident
memory of that process and all its children (workers included) every 50 ms.
It prints one JSON line per figure: images per second (images / seconds the
job took, from the store's timings.json), the process's wall time, peak memory
of the process tree, CPU seconds of the whole tree (workers included: on a
busy machine this shows the work done, which wall time does not), and the
speed-up of each configuration over 1 job. The bar: 2 jobs at least 1.7x
faster than 1, peak memory under 1.5 GiB.

Usage::

    nice -n 10 python benchmarks/bench_extract.py                # all 60,000 images
    python benchmarks/bench_extract.py --limit 5000 --repeat 1   # a quick look

``--limit N`` uses the first N/20 images of each class of train and of test
(linked into a temporary folder).
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from _common import emit, require_cifar, tree_rss

_JOB = """
import json, sys
from featpipe.pipeline.extract_job import run_extract_job
if __name__ == "__main__":
    options = json.loads(sys.argv[1])
    store = run_extract_job(progress=False, **options)
    seconds = json.loads((store.path / "timings.json").read_text())["seconds"]
    print(json.dumps({"seconds": seconds, "n_rows": len(store)}))
"""

CONFIGURATIONS = {
    "1 job": {"n_jobs": 1},
    "2 jobs": {"n_jobs": 2},
    "dask LocalCluster, 2 workers": {"n_jobs": 2, "backend": "dask"},
}


def run_job(options):
    """Run one job in a fresh process.

    Returns (job seconds, wall seconds, peak tree RSS bytes, rows, CPU
    seconds of the process and all its children).
    """
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", _JOB, json.dumps(options)], stdout=subprocess.PIPE, text=True)
    process = psutil.Process(child.pid)
    peak = [0]

    def sample():
        while child.poll() is None:
            try:
                peak[0] = max(peak[0], tree_rss(process))
            except psutil.Error:
                return
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output, _ = child.communicate()
    sampler.join()
    if child.returncode:
        raise SystemExit(f"job failed with status {child.returncode}")
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    report = json.loads(output.strip().splitlines()[-1])
    shutil.rmtree(options["out"])
    return report["seconds"], wall, peak[0], report["n_rows"], cpu


def subset_folder(limit, root):
    """Link the first ``limit / 20`` images of each class of train and test into ``root``."""
    per_class = max(1, limit // 20)
    cifar = require_cifar()
    for split in ("train", "test"):
        for name in sorted(os.listdir(cifar / split)):
            (root / split / name).mkdir(parents=True)
            for file_name in sorted(os.listdir(cifar / split / name))[:per_class]:
                os.symlink(cifar / split / name / file_name, root / split / name / file_name)
    return root


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="hog+color")
    parser.add_argument("--limit", type=int, default=None, help="use about N images instead of all 60,000")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per configuration (median reported)")
    parser.add_argument("--chunk-size", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as scratch:
        scratch = Path(scratch)
        data = subset_folder(args.limit, scratch / "images") if args.limit else require_cifar()
        base = {"features": args.features, "data": str(data), "chunk_size": args.chunk_size}
        run_job({**base, "n_jobs": 1, "out": str(scratch / "warm-up")})
        results = {}
        for label, options in CONFIGURATIONS.items():
            runs = [run_job({**base, **options, "out": str(scratch / f"{label}-{repeat}")})
                    for repeat in range(args.repeat)]
            job_seconds = statistics.median(run[0] for run in runs)
            n_images = runs[0][3]
            results[label] = job_seconds
            emit(figure="extract", configuration=label, features=args.features, images=n_images,
                 image_size=32, chunk_size=args.chunk_size, repeats=args.repeat,
                 images_per_second=round(n_images / job_seconds, 1), job_seconds=round(job_seconds, 2),
                 wall_seconds=round(statistics.median(run[1] for run in runs), 2),
                 peak_memory_gib=round(max(run[2] for run in runs) / 2**30, 3),
                 cpu_seconds=round(statistics.median(run[4] for run in runs), 1))
        for label, seconds in results.items():
            if label != "1 job":
                emit(figure="speedup over 1 job", configuration=label, ratio=round(results["1 job"] / seconds, 2))


if __name__ == "__main__":
    main()
