"""CIFAR-10 test accuracy of HOG and colour features under linear heads.

Split: the 50,000 training images shuffled with ``--seed`` into 49,000 train
and 1,000 validation images; the 10,000 test images. Features of each
configuration are stacked, standardized per feature (mean and standard
deviation fitted on train), then fed to scikit-learn's LogisticRegression
and featpipe's LinearSVM and Softmax heads (default parameters, the
validation set passed for their histories). One JSON line per (features,
head) with validation and test accuracy, the feature width and seconds.

Usage::

    nice -n 10 python benchmarks/bench_hog_color_accuracy.py                 # every config
    nice -n 10 python benchmarks/bench_hog_color_accuracy.py --configs hog22+hue --heads logreg
    python benchmarks/bench_hog_color_accuracy.py --limit 200 --configs hog22+hue   # quick

CIFAR-10 is decoded once with Pillow from ../shared/datasets/cifar10-jpg.
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from featpipe.features.color import ColorHistogram
from featpipe.features.hog import HOG
from featpipe.features.raw import RawPixels
from featpipe.heads.linear import LinearSVM, Softmax
from featpipe.parallel import transform_in_chunks

from _common import emit, load_split

CONFIGS = {
    "raw": [RawPixels()],
    "hue": [ColorHistogram()],
    "hsv-grid2": [ColorHistogram("hsv", (10, 4, 4), grid=(2, 2))],
    "joint-hsv-grid2": [ColorHistogram("hsv", (8, 4, 4), joint=True, grid=(2, 2))],
    "hog22": [HOG()],
    "hog4-8": [HOG(pixels_per_cell=[(4, 4), (8, 8)])],
    "hog22+hue": [HOG(), ColorHistogram()],
    "hog11+hue": [HOG(cells_per_block=(1, 1)), ColorHistogram()],
    "hognone+hue": [HOG(block_norm="none"), ColorHistogram()],
    "hog22sqrt+hue": [HOG(transform_sqrt=True), ColorHistogram()],
    "hog4-8+hue": [HOG(pixels_per_cell=[(4, 4), (8, 8)]), ColorHistogram()],
    "hog22+hsv-grid2": [HOG(), ColorHistogram("hsv", (10, 4, 4), grid=(2, 2))],
    "hog22+joint-hsv": [HOG(), ColorHistogram("hsv", (8, 4, 4), joint=True)],
    "hog4-8+hsv-grid2": [HOG(pixels_per_cell=[(4, 4), (8, 8)]), ColorHistogram("hsv", (10, 4, 4), grid=(2, 2))],
    "hog4-8+joint-hsv-grid2": [
        HOG(pixels_per_cell=[(4, 4), (8, 8)]),
        ColorHistogram("hsv", (8, 4, 4), joint=True, grid=(2, 2)),
    ],
    "hog4-8sqrt+hsv-grid2": [
        HOG(pixels_per_cell=[(4, 4), (8, 8)], transform_sqrt=True),
        ColorHistogram("hsv", (10, 4, 4), grid=(2, 2)),
    ],
}
HEADS = {
    "logreg": lambda seed: LogisticRegression(max_iter=300, random_state=seed),
    "svm": lambda seed: LinearSVM(random_state=seed),
    "softmax": lambda seed: Softmax(random_state=seed),
}


def standardized_features(extractors, splits):
    """Stacked features of each split, standardized with train statistics."""
    blocks = []
    for extractor in extractors:
        extractor.fit(splits[0][:10])
        blocks.append([transform_in_chunks(extractor, images) for images in splits])
    stacked = [np.hstack([block[index] for block in blocks]) for index in range(len(splits))]
    mean = stacked[0].mean(axis=0)
    std = stacked[0].std(axis=0)
    std[std < 1e-6] = 1.0
    return [((features - mean) / std).astype(np.float32) for features in stacked]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=list(HEADS))
    parser.add_argument("--limit", type=int, default=None, help="images per class and split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    X_all, y_all = load_split("train", args.limit)
    X_test, y_test = load_split("test", args.limit)
    order = np.random.default_rng(args.seed).permutation(len(X_all))
    n_val = 1000 if args.limit is None else max(10, len(X_all) // 50)
    val, train = order[:n_val], order[n_val:]
    X_train, y_train, X_val, y_val = X_all[train], y_all[train], X_all[val], y_all[val]
    warnings.simplefilter("ignore", ConvergenceWarning)

    for name in args.configs:
        start = time.perf_counter()
        F_train, F_val, F_test = standardized_features(CONFIGS[name], [X_train, X_val, X_test])
        extract_seconds = time.perf_counter() - start
        for head_name in args.heads:
            head = HEADS[head_name](args.seed)
            start = time.perf_counter()
            if head_name == "logreg":
                head.fit(F_train, y_train)
            else:
                head.fit(F_train, y_train, X_val=F_val, y_val=y_val)
            train_seconds = time.perf_counter() - start
            emit(features=name, params=[repr(extractor) for extractor in CONFIGS[name]], head=head_name,
                 n_train=len(F_train), n_val=len(F_val), n_test=len(F_test), feature_width=F_train.shape[1],
                 val_accuracy=round(float(head.score(F_val, y_val)), 4),
                 test_accuracy=round(float(head.score(F_test, y_test)), 4),
                 extract_seconds=round(extract_seconds, 2), train_seconds=round(train_seconds, 2))


if __name__ == "__main__":
    main()
