"""Benchmark of k-means visual words on CIFAR-10: encoding speed and accuracy.

speed:    encode CIFAR-10 images (default all 60,000) with 1,600 words, 6x6
          patches, stride 1, triangle encoding and quadrant pooling, and set
          the rate of the distance products (N x 729 x 108 x 1600 x 2 flops)
          beside this machine's float32 GEMM rate measured in the same
          process: numpy matmul of the same shape (rows x 108) @ (108 x 1600)
          and of a large square product. Timed in this process (BLAS threads
          = worker threads) and through featpipe.parallel.transform_in_chunks
          with two worker processes (how the pipeline runs it).
kernels:  one thread, microseconds per patch for the triangle sums of 5
          images (3,645 patches), every implementation this CPU has (its
          compiled tiles and the numpy/BLAS block path), interleaved rounds;
          the design rows (patch extraction, normalization, whitening) beside.
patches:  one thread, the soft-threshold encoding of SoftThresholdPatches (1,600
          atoms, quadrants) against numpy's float32 GEMM in the same process,
          interleaved rounds, median: the whole transform of 20 images, the
          BLAS products of its blocks alone ((243 x 109) @ (109 x 1600), the
          arithmetic floor of the encoding), and a 4096^2 product; flops
          counted as images x 729 x 109 x 1600 x 2.
accuracy: fit the words on the 49,000 training images, encode train / val /
          test, standardize, train the head of pipelines/words+svm.toml
          (one-vs-rest LinearSVM(squared=True) by L-BFGS from the
          least-squares start) over a small grid of ``reg`` picked on the
          1,000 validation images; the hard-assignment bag of words (same
          dictionary) beside it.

Prints one JSON line per figure. Example (full size, about 10 minutes)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE nice -n 10 python benchmarks/bench_words.py
    python benchmarks/bench_words.py --part speed --limit 2000 --repeats 3
    python benchmarks/bench_words.py --part kernels --limit 3000
    python benchmarks/bench_words.py --part patches --limit 3000
"""

import argparse
import resource
import time
from functools import partial
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from featpipe.datasets import load_dataset
from featpipe.features._triangle import available_kernels
from featpipe.features.regions import RegionLayout, pyramid_levels
from featpipe.features.patches import SoftThresholdPatches
from featpipe.features.words import KMeansWords
from featpipe.heads.linear import LinearSVM
from featpipe.parallel import transform_in_chunks

from _common import emit, require_cifar, timed


def gemm_rate(rows, inner, cols, repeats):
    """Median GFLOP/s of numpy's float32 matmul (rows x inner) @ (inner x cols)."""
    rng = np.random.default_rng(0)
    left = rng.standard_normal((rows, inner), dtype=np.float32)
    right = rng.standard_normal((inner, cols), dtype=np.float32)
    product = np.empty((rows, cols), dtype=np.float32)
    seconds = timed(lambda: np.matmul(left, right, out=product), repeats).seconds
    return 2.0 * rows * inner * cols / seconds / 1e9


def peak_memory_gib():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 2**20, 2)


def bench_speed(images, n_words, repeats):
    n_images = len(images)
    flops = n_images * 729 * 108 * n_words * 2.0
    blas = [info for info in threadpool_info() if info["user_api"] == "blas"]
    emit(figure="blas", libraries=[{key: info.get(key) for key in ("internal_api", "architecture", "num_threads", "version")}
                                   for info in blas])
    words = KMeansWords(n_words=n_words, n_patches=20 * n_words, random_state=0).fit(images[:5000])
    reference_same = gemm_rate(729 * 32, 108, n_words, 5)
    reference_square = gemm_rate(4096, 4096, 4096, 3)
    seconds = timed(lambda: words.transform(images), repeats).seconds
    reference_same = max(reference_same, gemm_rate(729 * 32, 108, n_words, 5))
    reference_square = max(reference_square, gemm_rate(4096, 4096, 4096, 3))
    achieved = flops / seconds / 1e9
    emit(figure="gemm_reference", shape=f"({729 * 32} x 108) @ (108 x {n_words})", gflops=round(reference_same, 1))
    emit(figure="gemm_reference", shape="(4096 x 4096) @ (4096 x 4096)", gflops=round(reference_square, 1))
    emit(figure="encode_triangle_threads", images=n_images, n_words=n_words, seconds=round(seconds, 2),
         images_per_second=round(n_images / seconds), gflops=round(achieved, 1),
         ratio_to_same_shape_gemm=round(achieved / reference_same, 3),
         ratio_to_square_gemm=round(achieved / reference_square, 3))
    start = time.perf_counter()
    transform_in_chunks(words, images, n_jobs=2)
    seconds = time.perf_counter() - start
    emit(figure="encode_triangle_2_processes", images=n_images, seconds=round(seconds, 2),
         gflops=round(flops / seconds / 1e9, 1), ratio_to_same_shape_gemm=round(flops / seconds / 1e9 / reference_same, 3))
    hard = words.set_params(encoding="hard")
    seconds = timed(lambda: hard.transform(images), 1).seconds
    emit(figure="encode_hard_threads", images=n_images, seconds=round(seconds, 2), gflops=round(flops / seconds / 1e9, 1))


def bench_kernels(images, n_words, rounds=7):
    """Per-patch time of each triangle implementation on the same design rows."""
    words = KMeansWords(n_words=n_words, n_patches=50_000, kmeans_max_iter=3, whiten_eps=0.3,
                        random_state=0).fit(images[:3000])
    layout = RegionLayout(pyramid_levels(words.pooling), words._grid_shape(images.shape[1:3]))
    batch = images[:5]
    n_patches = len(batch) * layout.n_positions
    rows = words._design_rows(batch, layout, with_norm=True)
    implementations = {"design rows": lambda: words._design_rows(batch, layout, with_norm=True)}
    for kernel in available_kernels() + ["numpy"]:
        implementations[kernel] = words._triangle_encoder(layout, kernel)
    reference = implementations["numpy"](rows)
    times = {name: [] for name in implementations}
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(rounds):
            for name, run in implementations.items():
                start = time.perf_counter()
                for _ in range(4):
                    run() if name == "design rows" else run(rows)
                times[name].append((time.perf_counter() - start) / 4 / n_patches * 1e6)
    for name, measured in times.items():
        figure = dict(figure="triangle_implementation", name=name, us_per_patch_median=round(float(np.median(measured)), 2),
                      us_per_patch_min=round(float(np.min(measured)), 2))
        if name != "design rows":
            figure["speedup_over_numpy"] = round(float(np.median(times["numpy"]) / np.median(measured)), 2)
            figure["max_abs_diff_to_numpy"] = float(np.abs(implementations[name](rows) - reference).max())
        emit(**figure)


def bench_patches(images, n_atoms, rounds=7, n_images=20, n_components=(48, 56, 64)):
    """Seconds per patch of the soft-threshold encoding beside the GEMM of the same blocks, one thread.

    The same extractor with each of ``n_components`` (the whitened patches
    projected onto their leading components first) is timed beside it; its
    rate is counted in the unprojected encoding's multiply-adds (an
    effective rate), and its features' relative RMS difference from the
    unprojected ones is reported.
    """
    patches = SoftThresholdPatches(n_atoms=n_atoms, n_patches=50_000, whiten_eps=0.3, n_threads=1,
                                   random_state=0).fit(images[:3000])
    projected = {f"transform, n_components={k}": SoftThresholdPatches(**{**patches.get_params(), "n_components": k})
                 .fit(images[:3000]) for k in n_components}
    layout = patches._layout(images.shape[1:3])
    _, operand = patches._code_operands()
    batch = images[:n_images]
    rows = patches._design_rows(batch, layout)
    block = patches.patches_per_block
    codes = np.empty((block, n_atoms), dtype=np.float32)

    def block_products():
        for image_rows in rows:
            for first in range(0, layout.n_positions, block):
                last = min(first + block, layout.n_positions)
                np.matmul(image_rows[first:last], operand, out=codes[:last - first])

    rng = np.random.default_rng(0)
    square = rng.standard_normal((4096, 4096), dtype=np.float32)
    runs = {"transform": lambda: patches.transform(batch),
            **{name: partial(model.transform, batch) for name, model in projected.items()},
            "block GEMMs": block_products, "GEMM 4096^2": lambda: square @ square}
    times = {name: [] for name in runs}
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(rounds + 1):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    encoding_flops = n_images * layout.n_positions * operand.shape[0] * n_atoms * 2.0
    flops = {name: encoding_flops for name in runs}
    flops["GEMM 4096^2"] = 2.0 * 4096 ** 3
    rates = {name: flops[name] / np.median(measured[1:]) / 1e9 for name, measured in times.items()}
    for name, rate in rates.items():
        emit(figure="soft_threshold_one_thread", name=name, gflops=round(rate, 1),
             us_per_patch=round(flops[name] / rate / 1e3 / (n_images * layout.n_positions), 3)
             if name != "GEMM 4096^2" else None,
             ratio_to_block_gemms=round(rate / rates["block GEMMs"], 3),
             ratio_to_square_gemm=round(rate / rates["GEMM 4096^2"], 3))
    exact = patches.transform(batch)
    for (name, model), k in zip(projected.items(), n_components):
        approximate = model.transform(batch)
        emit(figure="soft_threshold_projection", n_components=k, n_atoms=n_atoms,
             speedup_over_transform=round(rates[name] / rates["transform"], 2),
             relative_rms_difference=float(np.sqrt(np.mean((approximate - exact) ** 2) / np.mean(exact ** 2))))


def standardize(train, *others):
    mean = train.mean(axis=0, dtype=np.float64).astype(np.float32)
    scale = train.std(axis=0, dtype=np.float64).astype(np.float32) + np.float32(1e-3)
    for features in (train, *others):
        features -= mean
        features /= scale


def fit_head(features, dataset, regs, n_epochs):
    """Best one-vs-rest L2-SVM (L-BFGS, least-squares start) over ``regs`` by validation accuracy."""
    best = None
    for reg in regs:
        start = time.perf_counter()
        head = LinearSVM(squared=True, multi_class="ovr", optimizer="lbfgs", init="least_squares", reg=reg,
                         n_epochs=n_epochs, random_state=0)
        head.fit(features["train"], dataset.y_train)
        val = head.score(features["val"], dataset.y_val)
        emit(figure="head_search", reg=reg, n_epochs=n_epochs, val_accuracy=round(val, 4),
             seconds=round(time.perf_counter() - start, 1))
        if best is None or val > best[0]:
            best = (val, reg, head)
    return best


def bench_accuracy(dataset, n_words, n_patches, kmeans_max_iter, whiten_eps, power, encodings, regs, n_epochs):
    start = time.perf_counter()
    words = KMeansWords(n_words=n_words, n_patches=n_patches, kmeans_max_iter=kmeans_max_iter,
                        whiten_eps=whiten_eps, power=power, random_state=0).fit(dataset.X_train)
    fit_seconds = time.perf_counter() - start
    emit(figure="fit_words", n_words=n_words, n_patches=n_patches, kmeans_max_iter=kmeans_max_iter,
         whiten_eps=whiten_eps, power=power,
         train_images=len(dataset.X_train), seconds=round(fit_seconds, 1))
    for encoding in encodings:
        words.set_params(encoding=encoding)
        start = time.perf_counter()
        features = {split: transform_in_chunks(words, getattr(dataset, f"X_{split}"), n_jobs=2)
                    for split in ("train", "val", "test")}
        extract_seconds = time.perf_counter() - start
        standardize(features["train"], features["val"], features["test"])
        start = time.perf_counter()
        val, reg, head = fit_head(features, dataset, regs, n_epochs)
        emit(figure=f"accuracy_{encoding}", n_words=n_words, width=features["train"].shape[1],
             n_train=len(dataset.X_train), n_val=len(dataset.X_val), n_test=len(dataset.X_test),
             reg=reg, val_accuracy=round(val, 4), test_accuracy=round(head.score(features["test"], dataset.y_test), 4),
             fit_words_seconds=round(fit_seconds, 1), extract_seconds=round(extract_seconds, 1),
             head_search_seconds=round(time.perf_counter() - start, 1), peak_memory_gib=peak_memory_gib())
        del features


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("speed", "kernels", "patches", "accuracy", "all"), default="all")
    parser.add_argument("--limit", type=int, default=None, help="use N random training and N/5 test images")
    parser.add_argument("--n-words", type=int, default=1600)
    parser.add_argument("--n-patches", type=int, default=400_000)
    parser.add_argument("--kmeans-max-iter", type=int, default=10)
    parser.add_argument("--encodings", nargs="+", choices=("triangle", "hard"), default=["triangle", "hard"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--whiten-eps", type=float, default=0.3)
    parser.add_argument("--power", type=float, default=0.5)
    parser.add_argument("--regs", type=float, nargs="+", default=[5e-3, 1.67e-3, 5e-4],
                        help="reg = 1 / (2 C): C = 100, 300, 1000")
    parser.add_argument("--n-epochs", type=int, default=150, help="L-BFGS iterations")
    parser.add_argument("--data", type=Path, default=None, help="the CIFAR-10 JPEG folder (default: _common.CIFAR_FOLDER)")
    args = parser.parse_args()
    start = time.perf_counter()
    dataset = load_dataset(args.data or require_cifar(), val_size=1000, seed=0)
    if args.limit:
        rng = np.random.default_rng(0)
        for split, size in (("train", args.limit), ("test", max(args.limit // 5, 1))):
            keep = np.sort(rng.permutation(len(getattr(dataset, f"y_{split}")))[:size])
            setattr(dataset, f"X_{split}", getattr(dataset, f"X_{split}")[keep])
            setattr(dataset, f"y_{split}", getattr(dataset, f"y_{split}")[keep])
    emit(figure="load", train=len(dataset.X_train), val=len(dataset.X_val), test=len(dataset.X_test),
         seconds=round(time.perf_counter() - start, 1))
    if args.part in ("speed", "all"):
        images = np.concatenate([dataset.X_train, dataset.X_val, dataset.X_test])
        bench_speed(images, args.n_words, args.repeats)
        del images
    if args.part in ("kernels", "all"):
        bench_kernels(dataset.X_train, args.n_words)
    if args.part in ("patches", "all"):
        bench_patches(dataset.X_train, args.n_words)
    if args.part in ("accuracy", "all"):
        bench_accuracy(dataset, args.n_words, args.n_patches, args.kmeans_max_iter, args.whiten_eps, args.power,
                       args.encodings, args.regs, args.n_epochs)
    emit(figure="peak_memory", gib=peak_memory_gib())


if __name__ == "__main__":
    main()
