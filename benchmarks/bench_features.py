"""Speed and memory of featpipe's HOG and hue histogram against the per-image peers.

Runs, on every CIFAR-10 image (60,000 32x32 RGB, train + test, decoded once
with Pillow) in one process:

- HOG, 9 orientations, 8x8 cells, (1, 1) and (2, 2) blocks, L2-Hys:
  featpipe's ``HOG`` through ``featpipe.parallel.transform_in_chunks``
  (n_jobs=1 for the single-core comparison, and n_jobs=2) vs a per-image
  ``skimage.feature.hog(..., channel_axis=-1)`` loop vs OpenCV's
  ``cv2.HOGDescriptor.compute`` per image (one OpenCV thread) and on
  mosaics of 2,000 images stacked vertically with a 32-pixel window
  stride (OpenCV's batch use; its gradients cross image borders, so it is a
  speed peer only).
- The hue histogram (10 bins): ``ColorHistogram()`` vs the per-image
  ``numpy.histogram(rgb2hsv(image)[..., 0] * 255, 10, (0, 255), density=True)``
  recipe, with the number of images whose bins differ (must be 0).
- Peak memory (tracemalloc) of extracting HOG (2, 2) + hue for all images in
  chunks of 2,000, beyond the images themselves, including the outputs.
- Every HOG setting against OpenCV (``--part settings``): on 5,000 CIFAR-10
  test images (every other one, 500 per class), 9 orientations, 8x8 cells,
  L2-Hys, (1, 1) and (2, 2) blocks, ``channel`` "gray" and "max", each with
  and without ``transform_sqrt``: featpipe's ``HOG`` on one core (the colour
  images; "gray" converts them inside) against ``cv2.HOGDescriptor.compute``
  per image on the same input (the grey images, converted beforehand with
  ``cv2.cvtColor``, for "gray"; the colour images for "max"). The two are
  timed alternately, ``--repeats`` times after a warm-up, and the ratio is
  of their medians; the largest difference from ``skimage.feature.hog`` on
  the first 300 images is reported with each row.

featpipe and OpenCV: one warm-up, median of ``--repeats`` (default 3). The
scikit-image loops: ``--peer-repeats`` (default 1) on the full set, since one
pass takes tens of seconds. One JSON line per figure, with the ratio.

Usage::

    nice -n 10 python benchmarks/bench_features.py
    python benchmarks/bench_features.py --limit 2000      # quick
    python benchmarks/bench_features.py --part settings   # only the HOG settings against OpenCV
"""

import argparse
import json
import statistics
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage.color import rgb2gray, rgb2hsv
from skimage.feature import hog

from featpipe.features.color import ColorHistogram
from featpipe.features.hog import HOG
from featpipe.parallel import transform_in_chunks

DATA = Path(__file__).resolve().parents[2] / "shared/datasets/cifar10-jpg"
MOSAIC_SIZE = 2000
SETTINGS_IMAGES = 5000
EXACTNESS_IMAGES = 300


def load_images(limit):
    """Decode CIFAR-10 train then test images, at most ``limit`` in all."""
    paths = sorted((DATA / "train").glob("*/*.jpg")) + sorted((DATA / "test").glob("*/*.jpg"))
    if limit is not None:
        paths = paths[:: max(1, len(paths) // limit)][:limit]
    return np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths])


def load_test_images(count):
    """Decode every other CIFAR-10 test image (sorted by class and name), ``count`` in all."""
    paths = sorted((DATA / "test").glob("*/*.jpg"))[::2][:count]
    return np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths])


def timed_pair(ours, peer, repeats):
    """Median seconds of ``ours`` and ``peer`` called alternately ``repeats`` times after one warm-up each."""
    ours()
    peer()
    seconds = {ours: [], peer: []}
    for _ in range(repeats):
        for function in (ours, peer):
            start = time.perf_counter()
            function()
            seconds[function].append(time.perf_counter() - start)
    return statistics.median(seconds[ours]), statistics.median(seconds[peer])


def timed(function, repeats, warm_up=True):
    """Median seconds of ``repeats`` calls (after one untimed call) and the last result."""
    if warm_up:
        function()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def emit(**figure):
    print(json.dumps(figure), flush=True)


def opencv_descriptor(cells_per_block):
    block = (8 * cells_per_block, 8 * cells_per_block)
    return cv2.HOGDescriptor((32, 32), block, (8, 8), (8, 8), 9)


def opencv_per_image(descriptor, images):
    return np.stack([descriptor.compute(image) for image in images])


def opencv_mosaics(descriptor, images):
    parts = []
    for start in range(0, len(images), MOSAIC_SIZE):
        mosaic = np.ascontiguousarray(images[start : start + MOSAIC_SIZE].reshape(-1, 32, 3))
        parts.append(descriptor.compute(mosaic, winStride=(32, 32)).reshape(-1, descriptor.getDescriptorSize()))
    return np.concatenate(parts)


def hue_recipe(images):
    rows = []
    for image in images:
        counts, edges = np.histogram(rgb2hsv(image)[..., 0] * 255, bins=10, range=(0, 255), density=True)
        rows.append(counts * np.diff(edges))
    return np.stack(rows)


def bench_hog(images, cells_per_block, repeats, peer_repeats):
    common = {"figure": "hog", "n_images": len(images), "image_size": [32, 32], "orientations": 9,
              "pixels_per_cell": [8, 8], "cells_per_block": [cells_per_block] * 2, "block_norm": "L2-Hys"}
    extractor = HOG(cells_per_block=(cells_per_block, cells_per_block)).fit(images[:10])
    ours, features = timed(lambda: transform_in_chunks(extractor, images, n_jobs=1), repeats)
    ours_2, _ = timed(lambda: transform_in_chunks(extractor, images, n_jobs=2), repeats)
    skimage_seconds, reference = timed(
        lambda: np.stack([hog(image, 9, (8, 8), (cells_per_block,) * 2, channel_axis=-1) for image in images]),
        peer_repeats, warm_up=False,
    )
    descriptor = opencv_descriptor(cells_per_block)
    opencv_seconds, _ = timed(lambda: opencv_per_image(descriptor, images), repeats)
    mosaic_seconds, _ = timed(lambda: opencv_mosaics(descriptor, images), repeats)
    max_diff = float(np.abs(features - reference).max())
    emit(**common, impl="featpipe n_jobs=1", seconds=round(ours, 3), max_abs_diff_vs_skimage=max_diff)
    emit(**common, impl="featpipe n_jobs=2", seconds=round(ours_2, 3), speedup_vs_n_jobs_1=round(ours / ours_2, 2))
    emit(**common, impl="skimage.feature.hog per image", seconds=round(skimage_seconds, 3),
         repeats=peer_repeats, ratio_to_featpipe=round(skimage_seconds / ours, 2), bar=15)
    emit(**common, impl="cv2.HOGDescriptor per image", seconds=round(opencv_seconds, 3),
         ratio_to_featpipe=round(opencv_seconds / ours, 2), bar=1)
    emit(**common, impl=f"cv2.HOGDescriptor on {MOSAIC_SIZE}-image mosaics", seconds=round(mosaic_seconds, 3),
         ratio_to_featpipe=round(mosaic_seconds / ours, 2))


def bench_hog_settings(images, repeats):
    """One row per HOG setting: featpipe against OpenCV on the same input, one core each."""
    grey = np.stack([cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in images])
    sample = images[:EXACTNESS_IMAGES]
    for cells_per_block in (1, 2):
        descriptor = opencv_descriptor(cells_per_block)
        for channel in ("gray", "max"):
            for transform_sqrt in (False, True):
                extractor = HOG(cells_per_block=(cells_per_block,) * 2, channel=channel,
                                transform_sqrt=transform_sqrt).fit(images[:10])
                peer_input = grey if channel == "gray" else images
                ours, opencv_seconds = timed_pair(
                    lambda: transform_in_chunks(extractor, images, n_jobs=1),
                    lambda: opencv_per_image(descriptor, peer_input),
                    repeats,
                )
                params = dict(pixels_per_cell=(8, 8), cells_per_block=(cells_per_block,) * 2,
                              transform_sqrt=transform_sqrt)
                reference = np.stack([hog(rgb2gray(image), **params) if channel == "gray"
                                      else hog(image, channel_axis=-1, **params) for image in sample])
                max_diff = float(np.abs(extractor.transform(sample) - reference).max())
                emit(figure="hog setting", n_images=len(images), image_size=[32, 32], orientations=9,
                     pixels_per_cell=[8, 8], cells_per_block=[cells_per_block] * 2, block_norm="L2-Hys",
                     channel=channel, transform_sqrt=transform_sqrt, repeats=repeats,
                     featpipe_seconds=round(ours, 4), opencv_seconds=round(opencv_seconds, 4),
                     opencv_input="grey images" if channel == "gray" else "colour images",
                     ratio_opencv_to_featpipe=round(opencv_seconds / ours, 2), bar=1,
                     max_abs_diff_vs_skimage=max_diff)


def bench_hue(images, repeats, peer_repeats):
    common = {"figure": "hue histogram", "n_images": len(images), "bins": 10}
    extractor = ColorHistogram().fit(images[:10])
    ours, features = timed(lambda: transform_in_chunks(extractor, images, n_jobs=1), repeats)
    ours_2, _ = timed(lambda: transform_in_chunks(extractor, images, n_jobs=2), repeats)
    recipe_seconds, reference = timed(lambda: hue_recipe(images), peer_repeats, warm_up=False)
    n_pixels = images.shape[1] * images.shape[2]
    differing = int(np.any(np.rint(features * n_pixels) != np.rint(reference * n_pixels), axis=1).sum())
    emit(**common, impl="featpipe n_jobs=1", seconds=round(ours, 3), images_with_different_bins=differing)
    emit(**common, impl="featpipe n_jobs=2", seconds=round(ours_2, 3), speedup_vs_n_jobs_1=round(ours / ours_2, 2))
    emit(**common, impl="skimage rgb2hsv + numpy.histogram per image", seconds=round(recipe_seconds, 3),
         repeats=peer_repeats, ratio_to_featpipe=round(recipe_seconds / ours, 2), bar=15)


def bench_memory(images):
    extractors = [HOG().fit(images[:10]), ColorHistogram().fit(images[:10])]
    tracemalloc.start()
    features = [transform_in_chunks(extractor, images, n_jobs=1, chunk_size=2000) for extractor in extractors]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    emit(figure="peak extra memory", n_images=len(images), features="hog (2,2) L2-Hys + hue",
         chunk_size=2000, output_mib=round(sum(block.nbytes for block in features) / 2**20, 1),
         images_mib=round(images.nbytes / 2**20, 1), peak_mib=round(peak / 2**20, 1),
         ratio_to_bar=round(peak / 2**30, 3), bar_mib=1024)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="number of images (default: all 60,000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-repeats", type=int, default=1)
    parser.add_argument("--part", choices=["all", "settings"], default="all",
                        help="settings: only the HOG settings against OpenCV on 5,000 test images")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    settings_images = load_test_images(args.limit or SETTINGS_IMAGES)
    bench_hog_settings(settings_images, args.repeats)
    if args.part == "settings":
        return
    start = time.perf_counter()
    images = load_images(args.limit)
    emit(figure="decode", n_images=len(images), seconds=round(time.perf_counter() - start, 2))
    for cells_per_block in (1, 2):
        bench_hog(images, cells_per_block, args.repeats, args.peer_repeats)
    bench_hue(images, args.repeats, args.peer_repeats)
    bench_memory(images)


if __name__ == "__main__":
    main()
