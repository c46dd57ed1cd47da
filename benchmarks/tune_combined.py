"""Tune words+svm's combination of mirror-invariant features on a validation split only (never the test split).

Holds out ``--val-size`` (default 5,000) training images of CIFAR-10,
stratified with ``--seed``, exactly as ``tune_patches.py`` does, and reads
the patch encodings that ``tune_patches.py --cache-dir`` saved for that
split (``--patches FOLDER ...``: each folder's ``train.npy``, ``val.npy``
and ``permutation.npy``). Each encoding is made mirror-invariant by
:func:`featpipe.features.patches.sum_mirror_pairs`, as
``SoftThresholdPatches(mirror_invariant=True)`` makes it; ``--hog`` and
``--color`` add the ``hog+color+svm`` descriptors with ``mirror_invariant=True``, every block
is standardized on the training rows, and the head of
``pipelines/words+svm.toml`` is trained as the pipeline trains it: the
least-squares start (featpipe's own, from every training row), then
``--n-epochs`` L-BFGS iterations of the one-vs-rest squared hinge. Prints
one JSON line per ``--regs`` value with the ridge start's and the SVM's
validation accuracy. The test images are dropped as soon as the data set
is loaded.

Example (the shipped combination; about 5 minutes a reg on the idle 2-core machine)::

    python benchmarks/tune_combined.py --patches /tmp/tune-cache/n45000-*-atoms3200-*-quadrants-patch6 \\
        /tmp/tune-cache/n45000-*-atoms400-*-4-patch6 --hog --color --regs 0.003 0.005
"""

import argparse
import time
from functools import partial
from pathlib import Path

import numpy as np

from featpipe.datasets import load_dataset
from featpipe.features import HOG, ColorHistogram
from featpipe.features.patches import sum_mirror_pairs
from featpipe.heads.losses import accuracy, svm_loss
from featpipe.heads.optim import lbfgs
from featpipe.heads.starting_point import least_squares_weights

from _common import CIFAR_FOLDER, emit


def standardized(train, val):
    """Both splits scaled by the training rows' mean and standard deviation."""
    mean = train.mean(axis=0, dtype=np.float64)
    scale = train.std(axis=0, dtype=np.float64)
    scale[scale == 0] = 1
    return ((train - mean) / scale).astype(np.float32), ((val - mean) / scale).astype(np.float32)


def feature_blocks(args, dataset):
    """Standardized (train, val) column blocks, one per feature, and their names."""
    blocks = []
    for folder in args.patches:
        permutation = np.load(folder / "permutation.npy")
        blocks.append((folder.name, *standardized(
            sum_mirror_pairs(np.load(folder / "train.npy", mmap_mode="r"), permutation),
            sum_mirror_pairs(np.load(folder / "val.npy", mmap_mode="r"), permutation))))
    extractors = []
    if args.hog:
        extractors.append(("hog", HOG(pixels_per_cell=[(4, 4), (8, 8)], cells_per_block=(2, 2), block_norm="L2-Hys",
                                      mirror_invariant=True)))
    if args.color:
        extractors.append(("color", ColorHistogram(channels="hsv", bins=(8, 4, 4), joint=True, grid=(2, 2),
                                                   mirror_invariant=True)))
    for name, extractor in extractors:
        extractor.fit(dataset.X_train[:1])
        blocks.append((name, *standardized(extractor.transform(dataset.X_train), extractor.transform(dataset.X_val))))
    return blocks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--val-size", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--patches", type=Path, nargs="*", default=[],
                        help="tune_patches.py cache folders of the same split")
    parser.add_argument("--hog", action="store_true")
    parser.add_argument("--color", action="store_true")
    parser.add_argument("--regs", type=float, nargs="+", default=[0.003])
    parser.add_argument("--n-epochs", type=int, nargs="+", default=[40],
                        help="L-BFGS iterations; each value is a run of its own from the ridge start")
    parser.add_argument("--data", type=Path, default=CIFAR_FOLDER, help="the CIFAR-10 JPEG folder")
    args = parser.parse_args()
    dataset = load_dataset(args.data, val_size=args.val_size, seed=args.seed)
    dataset.X_test = dataset.y_test = None
    blocks = feature_blocks(args, dataset)
    names = [block[0] for block in blocks]
    train = np.hstack([block[1] for block in blocks])
    val = np.hstack([block[2] for block in blocks])
    del blocks[:]
    for reg in args.regs:
        start = time.perf_counter()
        W = least_squares_weights(train, dataset.y_train, 10, reg, 1.0)
        ridge_seconds = time.perf_counter() - start
        ridge_val = accuracy(W, val, dataset.y_val)
        for n_epochs in args.n_epochs:
            start = time.perf_counter()
            fitted, history = lbfgs(partial(svm_loss, reg=reg, squared=True, multi_class="ovr"), W, train,
                                    dataset.y_train, n_epochs=n_epochs)
            svm_val = accuracy(fitted, val, dataset.y_val)
            emit(figure="validation", features=names, width=train.shape[1], n_train=len(train), n_val=len(val),
                 reg=reg, ridge_val_accuracy=round(ridge_val, 4), val_accuracy=round(svm_val, 4),
                 lbfgs_iterations=len(history), ridge_seconds=round(ridge_seconds, 1),
                 lbfgs_seconds=round(time.perf_counter() - start, 1))


if __name__ == "__main__":
    main()
