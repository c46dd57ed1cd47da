"""Benchmark featpipe's linear heads against scikit-learn and against GEMM speed.

Three parts, one JSON line per figure (with its ratio to the bar or to the peer):

(a) raw pixels, mean-subtracted (0-255 scale), CIFAR-10 49,000 train / 1,000 val /
    10,000 test: test accuracy of ``svm`` and ``softmax`` with default parameters
    (bar: >= 0.38).
(b) fixed HOG + colour features (``featpipe.features.hog.HOG`` and
    ``featpipe.features.color.ColorHistogram`` with their defaults),
    standardized: LinearSVM vs ``LinearSVC`` and Softmax vs
    ``LogisticRegression(solver="lbfgs")``, test accuracy and training
    seconds side by side.
(c) one loss+gradient evaluation on X of (49000, 3073) float32, C = 10, against
    the two matrix products it needs, X @ W and X.T @ dS (bar: <= 3x).

Usage::

    python benchmarks/bench_heads.py                  # full size, 3 repeats
    python benchmarks/bench_heads.py --limit 500      # 500 train images per class
    python benchmarks/bench_heads.py --parts c --repeats 5
    python benchmarks/bench_heads.py --parts b --peers LogisticRegression --peer-C matched

CIFAR-10 is decoded once with Pillow from ../shared/datasets/cifar10-jpg.
"""

import argparse
import time
import warnings
from functools import partial

import numpy as np

from featpipe.features.color import ColorHistogram
from featpipe.features.hog import HOG
from featpipe.heads import LinearSVM, Softmax
from featpipe.heads.losses import softmax_loss, svm_loss

from _common import emit, load_split, timed

N_VAL = 1000
# Slow peers (LinearSVC takes minutes at full size) are timed fewer times once their calls pass this.
FIT_BUDGET_SECONDS = 120.0
timed_fit = partial(timed, warm_up=False, budget_seconds=FIT_BUDGET_SECONDS)


def load_cifar(limit=None):
    """Decode CIFAR-10 with Pillow; a fixed shuffle splits train into train/val."""
    splits = {"train": load_split("train", limit),
              "test": load_split("test", None if limit is None else max(limit // 5, 20))}
    images, labels = splits["train"]
    order = np.random.default_rng(0).permutation(len(labels))
    n_val = min(N_VAL, len(labels) // 10)
    train, val = order[n_val:], order[:n_val]
    return (images[train], labels[train], images[val], labels[val], *splits["test"])


def extract_features(images_by_split):
    """featpipe's default HOG + hue histogram of each split, fitted on the first."""
    extractors = [HOG().fit(images_by_split[0]), ColorHistogram().fit(images_by_split[0])]
    return [np.hstack([e.transform(images) for e in extractors]).astype(np.float32) for images in images_by_split]


def part_raw(data, repeats):
    X_train, y_train, X_val, y_val, X_test, y_test = data
    flat = [x.reshape(len(x), -1).astype(np.float32) for x in (X_train, X_val, X_test)]
    mean = flat[0].mean(axis=0)
    X_train, X_val, X_test = [x - mean for x in flat]
    for name, head in (("svm", LinearSVM), ("softmax", Softmax)):
        seconds, model, count = timed_fit(lambda: head(random_state=0).fit(X_train, y_train, X_val, y_val), repeats)
        accuracy = model.score(X_test, y_test)
        emit(part="a", figure=f"raw_{name}_test_accuracy", features="raw pixels, mean-subtracted",
             n_train=len(y_train), n_test=len(y_test), params="defaults", value=round(accuracy, 4),
             bar=0.38, ratio=round(accuracy / 0.38, 3), train_seconds=round(seconds, 2), repeats=count,
             val_accuracy=model.val_accuracy_history_[-1])


def part_features(data, repeats, peer_names=("LinearSVC", "LogisticRegression"), peer_C="both"):
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    warnings.filterwarnings("ignore", message=".*converge")
    X_train, y_train, X_val, y_val, X_test, y_test = data
    start = time.perf_counter()
    F_train, F_val, F_test = extract_features([X_train, X_val, X_test])
    extract_seconds = time.perf_counter() - start
    scaler = StandardScaler().fit(F_train)
    F_train, F_val, F_test = [scaler.transform(f).astype(np.float32) for f in (F_train, F_val, F_test)]
    emit(part="b", figure="features", source="featpipe HOG + ColorHistogram", width=F_train.shape[1],
         n_train=len(y_train), extract_seconds=round(extract_seconds, 2))
    n_train = len(y_train)
    ours = {"svm": LinearSVM(random_state=0), "svm2": LinearSVM(squared=True, random_state=0),
            "softmax": Softmax(random_state=0)}
    peers = {"svm": "LinearSVC", "svm2": "LinearSVC", "softmax": "LogisticRegression(lbfgs)"}
    ours_results = {}
    for name, head in ours.items():
        seconds, model, count = timed_fit(lambda: clone(head).fit(F_train, y_train), repeats)
        ours_results[name] = (seconds, model.score(F_test, y_test), count)
    for peer_name in ("LinearSVC", "LogisticRegression(lbfgs)"):
        if peer_name.split("(")[0] not in peer_names:
            continue
        reg = (ours["softmax"] if peer_name.startswith("Logistic") else ours["svm"]).reg
        settings = {"matched": (1.0 / (2.0 * reg * n_train), "C matched to reg: 1 / (2 reg N)"),
                    "default": (1.0, "default C")}
        for C, C_note in (settings.values() if peer_C == "both" else [settings[peer_C]]):
            peer = (LinearSVC(C=C, random_state=0) if peer_name == "LinearSVC"
                    else LogisticRegression(C=C, solver="lbfgs", max_iter=1000))
            peer_seconds, peer_model, peer_count = timed_fit(lambda: clone(peer).fit(F_train, y_train), repeats)
            peer_accuracy = peer_model.score(F_test, y_test)
            for name in (n for n, p in peers.items() if p == peer_name):
                ours_seconds, ours_accuracy, ours_count = ours_results[name]
                emit(part="b", figure=f"{name}_vs_{peer_name}", peer_C=round(C, 5), peer_note=C_note,
                     width=F_train.shape[1], n_train=n_train, n_test=len(y_test), ours_params="defaults",
                     ours_test_accuracy=round(ours_accuracy, 4), peer_test_accuracy=round(peer_accuracy, 4),
                     accuracy_difference_points=round(100 * (ours_accuracy - peer_accuracy), 2),
                     ours_seconds=round(ours_seconds, 3), peer_seconds=round(peer_seconds, 3),
                     speedup=round(peer_seconds / ours_seconds, 2), ours_repeats=ours_count,
                     peer_repeats=peer_count)


def part_gemm(repeats):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((49000, 3073), dtype=np.float32)
    y = rng.integers(0, 10, 49000)
    W = (0.001 * rng.standard_normal((3073, 10))).astype(np.float32)
    dscores = rng.standard_normal((49000, 10), dtype=np.float32)
    repeats = max(repeats, 3)
    gemm_seconds, _, _ = timed(lambda: (X @ W, X.T @ dscores), repeats)
    for name, loss in (("svm", lambda: svm_loss(W, X, y, reg=1e-4)),
                       ("softmax", lambda: softmax_loss(W, X, y, reg=1e-4))):
        loss_seconds, _, count = timed(loss, repeats)
        emit(part="c", figure=f"{name}_loss_grad_vs_gemm", shape=list(X.shape), n_classes=10,
             loss_seconds=round(loss_seconds, 4), gemm_seconds=round(gemm_seconds, 4),
             ratio=round(loss_seconds / gemm_seconds, 2), bar=3.0, repeats=count)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="train images per class (test: limit // 5)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", default="abc", help="any of a, b, c")
    parser.add_argument("--peers", default="LinearSVC,LogisticRegression",
                        help="peers of part b, comma-separated")
    parser.add_argument("--peer-C", default="both", choices=["matched", "default", "both"],
                        help="peers' C: matched to our reg (1 / (2 reg N)), scikit-learn's default 1, or both")
    args = parser.parse_args()
    if "c" in args.parts:
        part_gemm(args.repeats)
    if "a" in args.parts or "b" in args.parts:
        start = time.perf_counter()
        data = load_cifar(args.limit)
        emit(figure="decode_seconds", value=round(time.perf_counter() - start, 2), n_train=len(data[1]))
        if "a" in args.parts:
            part_raw(data, args.repeats)
        if "b" in args.parts:
            part_features(data, args.repeats, args.peers.split(","), args.peer_C)


if __name__ == "__main__":
    main()
