"""Benchmark: JPEG draft decoding (reduced DCT scale) against a full decode, in accuracy and speed.

Three ways to bring a JPEG to ``image_size``: a full decode then the
antialiased resize (``full``); featpipe's draft, which decodes at the
smallest 1/2, 1/4 or 1/8 scale that keeps at least twice ``image_size``
(``draft2x``, as shipped); and a draft that keeps only ``image_size``
(``draft1x``, the earlier code). For each: decode seconds for the whole
set (median of ``--repeat`` interleaved runs), the mean absolute pixel
difference from ``full``, and the test accuracy of HOG + featpipe's
multiclass SVM trained on the decoded images.

Two image sets: a CIFAR-10 subset (32x32 JPEGs: draft never reduces them, so
all three must agree exactly), and "large photos" made here from the same
CIFAR images: upscaled to ``--photo-size`` (bicubic), with Gaussian noise
(sigma 10) for fine texture, saved as JPEG quality 90.

Usage::

    nice -n 19 python benchmarks/bench_draft_accuracy.py --workdir /tmp/draft --per-class 100 --test-per-class 40
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.pipeline import make_pipeline

from featpipe.datasets import images as decoding
from featpipe.datasets import read_images
from featpipe.features.hog import HOG
from featpipe.heads.linear import LinearSVM

CIFAR = Path(__file__).resolve().parents[2] / "shared/datasets/cifar10-jpg"
MODES = {"full": 10**6, "draft2x": 2, "draft1x": 1}
"""Mode -> DRAFT_MARGIN (a huge margin never reduces: a full decode)."""


def _subset(per_class, test_per_class):
    classes = sorted(path.name for path in (CIFAR / "train").iterdir())
    split_paths, labels = {"train": [], "test": []}, {"train": [], "test": []}
    for label, name in enumerate(classes):
        for split, count in (("train", per_class), ("test", test_per_class)):
            files = sorted((CIFAR / split / name).iterdir())[:count]
            split_paths[split] += [str(path) for path in files]
            labels[split] += [label] * len(files)
    return split_paths, {split: np.asarray(values) for split, values in labels.items()}


def _large_photos(split_paths, workdir, photo_size):
    rng = np.random.default_rng(0)
    made = {}
    for split, paths in split_paths.items():
        made[split] = []
        for index, path in enumerate(paths):
            target = workdir / f"{split}-{index:05d}.jpg"
            if not target.exists():
                with Image.open(path) as image:
                    large = np.asarray(image.convert("RGB").resize(photo_size, Image.Resampling.BICUBIC), np.float32)
                noisy = np.clip(large + rng.normal(0, 10, size=large.shape), 0, 255).astype(np.uint8)
                Image.fromarray(noisy).save(target, quality=90)
            made[split].append(str(target))
    return made


def _decode(paths, image_size, margin):
    decoding.DRAFT_MARGIN = margin
    started = time.perf_counter()
    batch = read_images(paths, image_size=image_size, n_jobs=1, max_pixels=None)
    return batch.images, time.perf_counter() - started


def _accuracy(train_images, y_train, test_images, y_test):
    model = make_pipeline(HOG(), LinearSVM(random_state=0)).fit(train_images, y_train)
    return float((model.predict(test_images) == y_test).mean())


def _compare(name, split_paths, labels, image_size, repeat):
    decoded, seconds = {}, {mode: [] for mode in MODES}
    for _ in range(repeat):
        for mode, margin in MODES.items():
            total = 0.0
            for split, paths in split_paths.items():
                images, elapsed = _decode(paths, image_size, margin)
                decoded[mode, split] = images
                total += elapsed
            seconds[mode].append(total)
    decoding.DRAFT_MARGIN = 2
    for mode in MODES:
        difference = np.mean([np.abs(decoded[mode, split].astype(np.float32) - decoded["full", split]).mean()
                              for split in split_paths])
        accuracy = _accuracy(decoded[mode, "train"], labels["train"], decoded[mode, "test"], labels["test"])
        print(json.dumps({
            "set": name, "mode": mode, "n_train": len(labels["train"]), "n_test": len(labels["test"]),
            "image_size": image_size, "decode_seconds": round(statistics.median(seconds[mode]), 3),
            "speedup_over_full": round(statistics.median(seconds["full"]) / statistics.median(seconds[mode]), 2),
            "mean_abs_difference_from_full": round(float(difference), 4), "test_accuracy": round(accuracy, 4),
        }), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--test-per-class", type=int, default=40)
    parser.add_argument("--photo-size", type=int, nargs=2, default=(1024, 768))
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    split_paths, labels = _subset(args.per_class, args.test_per_class)
    _compare("cifar10", split_paths, labels, args.image_size, args.repeat)
    photos = _large_photos(split_paths, args.workdir, tuple(args.photo_size))
    _compare(f"large photos {args.photo_size[0]}x{args.photo_size[1]}", photos, labels, args.image_size, args.repeat)


if __name__ == "__main__":
    main()
