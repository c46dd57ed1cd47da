"""Benchmark: what hostile images cost featpipe's decoder, with and without its guards.

Each measurement decodes one file in a fresh Python process and reports that
process's peak resident memory (``VmHWM``, Linux) and the seconds the decode
took, for featpipe's decoder as shipped (header check against
``--max-pixels``, Pillow's bomb warning as a skip, JPEG draft at 2x the
target) and for the same decoder with those guards switched off, which is
what a decode-first loader does. The inputs are built here: all-zero PNGs
whose headers announce 177 M (16-bit grey, the issue's 374 KB file), 64 M
(16-bit grey) and 49 M (8-bit palette) pixels, and a 48 M pixel JPEG photo.
It prints one JSON line per case with the medians of ``--repeat`` runs and
the ratios (unguarded / guarded).

Usage::

    nice -n 19 python benchmarks/bench_hostile_images.py --workdir /tmp/hostile --repeat 3
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hostile_images import write_flat_png  # noqa: E402

_CHILD = """
import json, sys, time
from featpipe.datasets import images


def peak_rss():
    # VmHWM: peak resident memory of this process image (ru_maxrss can carry a parent's peak over exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


path, image_size, guarded = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
if not guarded:
    images._refuse_bomb_warnings = lambda: None
    images.DRAFT_MARGIN = 10**6
    import warnings
    warnings.simplefilter("ignore")
baseline = peak_rss()
started = time.perf_counter()
try:
    images.decode_image(path, image_size, max_pixels=images.DEFAULT_MAX_PIXELS if guarded else None)
    outcome = "decoded"
except Exception as error:
    outcome = f"skipped: {type(error).__name__}"
seconds = time.perf_counter() - started
peak = peak_rss()
print(json.dumps({"seconds": seconds, "peak_rss": peak, "baseline_rss": baseline, "outcome": outcome}))
"""


def _photo(width, height, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([np.sin(x / (40 + 20 * c)) * np.cos(y / (55 + 10 * c)) for c in range(3)], axis=-1)
    noise = rng.normal(0, 12, size=(height, width, 3)).astype(np.float32)
    return np.clip(127 + 90 * base + noise, 0, 255).astype(np.uint8)


def _inputs(workdir):
    cases = {
        "png16_13300x13300": lambda path: write_flat_png(path, 13300, 13300, 16, "grey"),
        "png16_8000x8000": lambda path: write_flat_png(path, 8000, 8000, 16, "grey"),
        "palette_7000x7000": lambda path: write_flat_png(path, 7000, 7000, 8, "palette"),
        "jpeg_8000x6000": lambda path: Image.fromarray(_photo(8000, 6000)).save(path, quality=90),
    }
    paths = {}
    for name, build in cases.items():
        path = workdir / f"{name}.{'jpg' if name.startswith('jpeg') else 'png'}"
        if not path.exists():
            build(path)
        paths[name] = path
    return paths


def _measure(path, image_size, guarded):
    completed = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(image_size), "1" if guarded else "0"],
                               capture_output=True, text=True, check=True)
    return json.loads(completed.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    for name, path in _inputs(args.workdir).items():
        runs = {True: [], False: []}
        for _ in range(args.repeat):
            for guarded in (True, False):
                runs[guarded].append(_measure(path, args.image_size, guarded))
        summary = {"case": name, "file_bytes": path.stat().st_size, "image_size": args.image_size}
        for guarded, label in ((True, "featpipe"), (False, "unguarded")):
            summary[f"{label}_seconds"] = round(statistics.median(run["seconds"] for run in runs[guarded]), 4)
            summary[f"{label}_peak_rss_mib"] = round(
                statistics.median(run["peak_rss"] for run in runs[guarded]) / 2**20, 1)
            summary[f"{label}_outcome"] = runs[guarded][0]["outcome"]
        summary["baseline_rss_mib"] = round(runs[True][0]["baseline_rss"] / 2**20, 1)
        summary["ratio_seconds"] = round(summary["unguarded_seconds"] / max(summary["featpipe_seconds"], 1e-6), 1)
        summary["ratio_peak_rss"] = round(summary["unguarded_peak_rss_mib"] / summary["featpipe_peak_rss_mib"], 1)
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
