"""Tune the soft-threshold patch features on a validation split only (never the test split).

Holds out ``--val-size`` (default 5,000) training images of CIFAR-10,
stratified with ``--seed``, optionally keeps a seeded random subset of the
rest (``--train-limit``), fits :class:`SoftThresholdPatches` on the
training images, encodes train and validation images (kept as ``.npy``
under ``--cache-dir`` when given, so a later run with other head settings
reads them instead of encoding again), adds the mirrored training rows by
:meth:`SoftThresholdPatches.mirror_permutation` (as ``augment = ["hflip"]``
does in a pipeline), standardizes, and trains the head of
``pipelines/words+svm.toml`` as the pipeline does: in the mirror-symmetric
coordinates of :class:`featpipe.heads.mirrored_rows.MirroredRows` (the
originals and their mirrors as N rows of half the width: the same optimum).
For every ``--regs`` value: the ridge fit of one-vs-rest targets (the
head's least-squares start; its Gram matrix computed once for all regs)
followed by ``--n-epochs`` L-BFGS iterations of the one-vs-rest squared
hinge. ``--power`` values are applied to the pooled sums of one encoding
(as the extractor's ``power`` does), so they cost no second encoding.
Prints one JSON line per setting with its validation accuracy. The test
images are dropped as soon as the data set is loaded.

Example (a 20,000-image subset; each setting took 8-15 minutes on the shared 2-core machine)::

    nice -n 19 python benchmarks/tune_patches.py --train-limit 20000 --whiten-eps 0.3 --dictionary omp1
"""

import argparse
import itertools
import resource
import time
from functools import partial
from pathlib import Path

import numpy as np

from featpipe.datasets import load_dataset
from featpipe.features.patches import SoftThresholdPatches
from featpipe.heads.cholesky import cholesky_in_place, cholesky_solve
from featpipe.heads.losses import accuracy, svm_loss
from featpipe.heads.mirrored_rows import MirroredRows
from featpipe.heads.optim import lbfgs

from _common import CIFAR_FOLDER, emit


def peak_memory_gib():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def encode(extractor, images, chunk=2000):
    features = np.empty((len(images), extractor.n_features_out_), dtype=np.float32)
    for start in range(0, len(images), chunk):
        features[start:start + chunk] = extractor.transform(images[start:start + chunk])
    return features


def cached_encoding(extractor, X_train, X_val, cache_dir, key):
    """Pooled train and validation features and the mirror permutation, from ``cache_dir`` when cached.

    A setting's encoding is saved as ``.npy`` files under ``cache_dir/key``
    (the key names every extractor parameter and the data subset), so
    head-side experiments re-read it instead of encoding again.
    """
    folder = None if cache_dir is None else cache_dir / key
    names = ("train", "val", "permutation")
    if folder is not None and all((folder / f"{name}.npy").exists() for name in names):
        return tuple(np.load(folder / f"{name}.npy", mmap_mode="r") for name in names) + (None, None)
    start = time.perf_counter()
    extractor.fit(X_train)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    arrays = (encode(extractor, X_train), encode(extractor, X_val), extractor.mirror_permutation())
    encode_seconds = time.perf_counter() - start
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in zip(names, arrays):
            np.save(folder / f"{name}.npy", array)
        arrays = tuple(np.load(folder / f"{name}.npy", mmap_mode="r") for name in names)
    return arrays + (round(fit_seconds, 1), round(encode_seconds, 1))


def standardize(train, permutation, val):
    """Scale by the statistics of the train rows and their mirrors (which the permutation gives)."""
    mean = train.mean(axis=0, dtype=np.float64)
    square = np.einsum("ij,ij->j", train, train, dtype=np.float64) / len(train)
    mean = (mean + mean[permutation]) / 2
    variance = (square + square[permutation]) / 2 - mean ** 2
    scale = np.sqrt(np.maximum(variance, 0))
    scale[scale == 0] = 1
    for features in (train, val):
        features -= mean.astype(np.float32)
        features /= scale.astype(np.float32)


def heads(reduced, expand_weights, y_train, val, y_val, regs, n_epochs):
    """Validation accuracy of the ridge start and the L-BFGS squared hinge for every reg.

    ``reduced`` holds the training rows in the mirror-symmetric coordinates
    of ``MirroredRows`` (the originals and their mirrors with the same
    labels, as the head of a pipeline trains them: N rows, half the width,
    the same optimum and iterates); ``expand_weights`` maps its weights
    back to the full width, where ``val`` lives. The Gram matrix is
    computed once for every reg.
    """
    n_classes = int(y_train.max()) + 1
    start = time.perf_counter()
    mean = reduced.mean(axis=0, dtype=np.float64)
    gram = (reduced.T @ reduced).astype(np.float64) / len(reduced) - np.outer(mean, mean)
    targets = np.full((len(y_train), n_classes), -1.0, dtype=np.float32)
    targets[np.arange(len(y_train)), y_train] = 1.0
    target_mean = targets.mean(axis=0, dtype=np.float64)
    cross = (reduced.T @ targets).astype(np.float64) / len(reduced) - np.outer(mean, target_mean)
    gram_seconds = time.perf_counter() - start
    for reg in regs:
        start = time.perf_counter()
        regularized = gram.copy()
        regularized[np.diag_indices(len(gram))] += reg
        # featpipe's blocked factor: scipy's 32-bit LAPACK crashes on matrices of 16,000 columns and more.
        weights = cholesky_solve(cholesky_in_place(regularized), cross)
        del regularized
        W = np.vstack([weights, target_mean - mean @ weights]).astype(np.float32)
        expanded = expand_weights(W)
        ridge_val = accuracy(expanded, val, y_val)
        W, history = lbfgs(partial(svm_loss, reg=reg, squared=True, multi_class="ovr"), W, reduced, y_train,
                           n_epochs=n_epochs)
        expanded = expand_weights(W)
        svm_val = accuracy(expanded, val, y_val)
        yield dict(reg=reg, ridge_val_accuracy=round(ridge_val, 4), val_accuracy=round(svm_val, 4),
                   lbfgs_iterations=len(history), gram_seconds=round(gram_seconds, 1),
                   head_seconds=round(time.perf_counter() - start, 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--val-size", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--n-atoms", type=int, nargs="+", default=[1600])
    parser.add_argument("--whiten-eps", type=float, nargs="+", default=[0.1])
    parser.add_argument("--alpha", type=float, nargs="+", default=[0.25])
    parser.add_argument("--dictionary", nargs="+", default=["random"])
    parser.add_argument("--pooling", nargs="+", default=["quadrants"], help="quadrants, global or levels like 1,2")
    parser.add_argument("--power", type=float, nargs="+", default=[1.0])
    parser.add_argument("--patch-size", type=int, nargs="+", default=[6])
    parser.add_argument("--n-components", type=int, default=None,
                        help="project the whitened patches onto this many leading components (default: none)")
    parser.add_argument("--regs", type=float, nargs="+", default=[1.67e-3])
    parser.add_argument("--n-epochs", type=int, default=100, help="L-BFGS iterations")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="keep each setting's encoding here as .npy files and reuse it")
    parser.add_argument("--data", type=Path, default=CIFAR_FOLDER, help="the CIFAR-10 JPEG folder")
    args = parser.parse_args()
    dataset = load_dataset(args.data, val_size=args.val_size, seed=args.seed)
    dataset.X_test = dataset.y_test = None
    X_train, y_train = dataset.X_train, dataset.y_train
    if args.train_limit:
        keep = np.sort(np.random.default_rng(args.seed).permutation(len(y_train))[:args.train_limit])
        X_train, y_train = X_train[keep], y_train[keep]
    emit(figure="load", train=len(y_train), val=len(dataset.y_val))
    settings = itertools.product(args.n_atoms, args.whiten_eps, args.alpha, args.dictionary, args.pooling,
                                 args.patch_size)
    for n_atoms, whiten_eps, alpha, dictionary, pooling, patch_size in settings:
        pooling_param = pooling if pooling in ("quadrants", "global") else tuple(int(v) for v in pooling.split(","))
        extractor = SoftThresholdPatches(n_atoms=n_atoms, whiten_eps=whiten_eps, alpha=alpha, dictionary=dictionary,
                                         pooling=pooling_param, patch_size=patch_size,
                                         n_components=args.n_components, random_state=args.seed)
        key = (f"n{len(y_train)}-seed{args.seed}-val{args.val_size}-atoms{n_atoms}-eps{whiten_eps}-alpha{alpha}"
               f"-{dictionary}-{pooling}-patch{patch_size}"
               + ("" if args.n_components is None else f"-pca{args.n_components}"))
        pooled_train, pooled_val, permutation, fit_seconds, encode_seconds = cached_encoding(
            extractor, X_train, dataset.X_val, args.cache_dir, key)
        for power in args.power:
            # The extractor's power applies to the pooled sums, so it can be applied afterwards.
            train, val = pooled_train.copy(), pooled_val.copy()
            if power != 1:
                np.power(train, np.float32(power), out=train)
                np.power(val, np.float32(power), out=val)
            standardize(train, permutation, val)
            reduced = MirroredRows(train, permutation).symmetric_rows()
            del train
            expand_weights = MirroredRows(np.empty((0, val.shape[1]), dtype=val.dtype), permutation).expand_weights
            setting = dict(n_atoms=n_atoms, whiten_eps=whiten_eps, alpha=alpha, dictionary=dictionary,
                           pooling=pooling, patch_size=patch_size, power=power, n_train=len(y_train),
                           n_val=len(dataset.y_val), width=val.shape[1], fit_seconds=fit_seconds,
                           encode_seconds=encode_seconds)
            for result in heads(reduced, expand_weights, y_train, val, dataset.y_val, args.regs, args.n_epochs):
                emit(figure="validation", **setting, **result, peak_memory_gib=peak_memory_gib())
            del reduced, val
        del pooled_train, pooled_val

if __name__ == "__main__":
    main()
