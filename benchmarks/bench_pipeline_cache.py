"""Cold versus warm `featpipe run`: what the stage cache saves.

Runs the same pipeline twice as a subprocess (the way a user runs it) with a
fresh cache directory: the first run computes every stage, the second must
find every stage cached and take at most a tenth of the time. Prints one
JSON line per figure.

    python benchmarks/bench_pipeline_cache.py                       # raw+logreg on CIFAR-10
    python benchmarks/bench_pipeline_cache.py --spec hog+svm --data builtin
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CIFAR_FOLDER, emit


def _run(spec, data, cache_dir, out):
    command = [sys.executable, "-m", "featpipe.cli", "run", spec, "--data", data,
               "--cache-dir", cache_dir, "--out", out, "--quiet"]
    started = time.perf_counter()
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    return seconds, metrics, completed.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="raw+logreg")
    parser.add_argument("--data", default=str(CIFAR_FOLDER),
                        help="a --data value (default: the CIFAR-10 folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        cache_dir = str(Path(scratch) / "cache")
        cold_seconds, cold, stdout = _run(args.spec, args.data, cache_dir, str(Path(scratch) / "cold"))
        warm_seconds, warm, _ = _run(args.spec, args.data, cache_dir, str(Path(scratch) / "warm"))
    print(stdout.strip(), file=sys.stderr)
    figures = {
        "spec": args.spec,
        "data": args.data,
        "n_train": cold["dataset"]["n_train"],
        "n_val": cold["dataset"]["n_val"],
        "n_test": cold["dataset"]["n_test"],
        "test_accuracy": cold["accuracy"]["test"],
        "cold_seconds": round(cold_seconds, 2),
        "warm_seconds": round(warm_seconds, 2),
        "warm_over_cold": round(warm_seconds / cold_seconds, 4),
        "cold_stage_seconds": cold["seconds"],
        "warm_stage_seconds": warm["seconds"],
        "warm_all_cached": all(warm["cache_hits"].values()),
        "same_accuracy": warm["accuracy"] == cold["accuracy"],
    }
    for name, value in figures.items():
        emit(figure=name, value=value)


if __name__ == "__main__":
    main()
