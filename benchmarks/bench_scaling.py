"""How `featpipe run` and `featpipe predict` grow with the number of images: seconds and peak memory.

Sizes 15,000, 30,000 and 60,000 are seeded subsets of the CIFAR-10 JPEG copy
(the same fraction of every class of its train and test folders, as links to
the files); 120,000 is all 60,000 plus their mirror images: for `featpipe
run`, the pipeline with ``augment = ["hflip"]`` (mirrored training images
are extra rows of the store), for `featpipe predict`, a folder holding the
60,000 files and a mirrored copy of each (written once, JPEG quality 95).

The pipeline is `hog+color+svm` (two-scale HOG + joint HSV per quadrant,
2,600 features; the shipped SVM head: SGD over the store's shards), run with
`--memory-budget 64M`, so every size takes the path that scales past
memory: extraction into a store under a fresh cache, then training and
scoring shard by shard. Each command runs cold (a new cache folder) in its
own process with `--jobs 2`; this script samples the resident memory (RSS,
memory-mapped pages included) of that process and all its children every
50 ms and reports the peak of the sum.

One JSON line per command and size: images processed (for `run` at 120,000:
60,000 plus the 49,000 mirrored training images, the validation and test
images are not mirrored), seconds, peak memory, shards, and the
stage seconds of the run (`metrics.json`), from which the per-shard costs
of docs/scaling.md's extrapolation are taken; ``--plot PNG`` draws seconds
and peak memory against images.

Usage::

    python benchmarks/bench_scaling.py --work /tmp/scaling --plot docs/scaling.png
    python benchmarks/bench_scaling.py --work /tmp/scaling --sizes 15000 30000
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CIFAR_FOLDER, peak_tree_rss  # noqa: E402

SIZES = (15_000, 30_000, 60_000, 120_000)
FULL = 60_000
CHUNK_SIZE = 2_000

PIPELINE = (Path(__file__).resolve().parents[1] / "pipelines" / "hog+color+svm.toml").read_text()


def measure(command):
    """Run ``command`` (stdout and stderr discarded); return (seconds, peak summed RSS in bytes)."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = peak_tree_rss(child)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed: {child.stderr.read()[-2000:]}")
    return seconds, peak


def class_files():
    """{(split, class): sorted JPEG paths} of the CIFAR-10 copy."""
    return {(split, folder.name): sorted(folder.glob("*.jpg"))
            for split in ("train", "test") for folder in sorted((CIFAR_FOLDER / split).iterdir())}


def subset_folder(work, n_images, files):
    """A folder of links to ``n_images`` / 60,000 of every class's files (seeded), made once."""
    folder = work / f"cifar-{n_images}"
    if folder.is_dir():
        return folder
    rng = np.random.default_rng(n_images)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for (split, name), paths in files.items():
        target = partial / split / name
        target.mkdir(parents=True)
        keep = sorted(rng.choice(len(paths), round(len(paths) * n_images / FULL), replace=False))
        for index in keep:
            os.symlink(paths[index], target / paths[index].name)
    partial.rename(folder)
    return folder


def mirrored_folder(work, files):
    """The 60,000 files (links) and a mirror image of each (``m-`` prefix): 120,000 images, made once."""
    folder = work / "cifar-120000"
    if folder.is_dir():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for (split, name), paths in files.items():
        target = partial / split / name
        target.mkdir(parents=True)
        for path in paths:
            os.symlink(path, target / path.name)
            with Image.open(path) as image:
                image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(target / f"m-{path.name}", quality=95)
    partial.rename(folder)
    return folder


def run_and_predict(work, n_images, folder, augment):
    """Time `featpipe run` then `featpipe predict` on ``folder``, cold; return two figure dicts."""
    spec = work / f"hog+color+svm-{n_images}.toml"
    spec.write_text(('augment = ["hflip"]\n' if augment else "") + PIPELINE)
    cache, run_dir = work / f"cache-{n_images}", work / f"run-{n_images}"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    featpipe = [str(Path(sys.executable).with_name("featpipe"))]  # the console script of this environment
    common = ["--cache-dir", str(cache), "--jobs", "2", "--chunk-size", str(CHUNK_SIZE), "--quiet"]
    run_seconds, run_peak = measure([*featpipe, "run", str(spec), "--data", str(folder["run"]), "--out",
                                     str(run_dir), "--memory-budget", "64M", *common])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    extract_seconds = _store_seconds(cache / "stores")
    n_rows = sum(metrics["dataset"][f"n_{split}"] for split in ("train", "val", "test"))
    figures = [{"command": "run", "size": n_images, "images": n_rows, "shards": -(-n_rows // CHUNK_SIZE),
                "seconds": round(run_seconds, 1), "peak_mib": round(run_peak / 2**20, 1),
                "extract_into_store_seconds": extract_seconds, "stage_seconds": metrics["seconds"],
                "test_accuracy": metrics["accuracy"]["test"]}]
    out = work / f"predictions-{n_images}.csv"
    predict_seconds, predict_peak = measure([*featpipe, "predict", str(run_dir), "--data", str(folder["predict"]),
                                             "--out", str(out), *common])
    with out.open() as file:
        n_predicted = sum(1 for _ in file) - 1
    figures.append({"command": "predict", "size": n_images, "images": n_predicted,
                    "shards": -(-n_predicted // CHUNK_SIZE),
                    "seconds": round(predict_seconds, 1), "peak_mib": round(predict_peak / 2**20, 1),
                    "extract_into_store_seconds": _store_seconds(cache / "predict")})
    shutil.rmtree(cache, ignore_errors=True)
    return figures


def _store_seconds(folder):
    """Seconds of the extract job that wrote the one store under ``folder`` (its ``timings.json``)."""
    (timings,) = folder.glob("*/timings.json")
    return json.loads(timings.read_text())["seconds"]


def plot(figures, path):
    """Seconds and peak memory against images, one line per command, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for command in ("run", "predict"):
        rows = sorted((f["images"], f["seconds"], f["peak_mib"]) for f in figures if f["command"] == command)
        images = [row[0] for row in rows]
        left.plot(images, [row[1] for row in rows], marker="o", label=f"featpipe {command}")
        right.plot(images, [row[2] for row in rows], marker="o", label=f"featpipe {command}")
    left.set(xlabel="images", ylabel="seconds (cold, shared 2-core machine)", title="Time")
    right.set(xlabel="images", ylabel="peak resident MiB (all processes)", title="Memory", ylim=(0, None))
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend()
    fig.suptitle("hog+color+svm streamed from a store (--memory-budget 64M, --jobs 2)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (subsets, runs, caches)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), choices=SIZES)
    parser.add_argument("--plot", type=Path, default=None, help="PNG of seconds and memory against images")
    args = parser.parse_args()
    if not CIFAR_FOLDER.is_dir():
        raise SystemExit(f"the CIFAR-10 JPEG copy is not at {CIFAR_FOLDER} (set FEATPIPE_CIFAR_FOLDER)")
    args.work.mkdir(parents=True, exist_ok=True)
    files = class_files()
    figures = []
    for n_images in args.sizes:
        if n_images == 120_000:
            folder = {"run": CIFAR_FOLDER, "predict": mirrored_folder(args.work, files)}
        else:
            subset = CIFAR_FOLDER if n_images == FULL else subset_folder(args.work, n_images, files)
            folder = {"run": subset, "predict": subset}
        for figure in run_and_predict(args.work, n_images, folder, augment=n_images == 120_000):
            print(json.dumps(figure), flush=True)
            figures.append(figure)
    if args.plot is not None:
        plot(figures, args.plot)


if __name__ == "__main__":
    main()
