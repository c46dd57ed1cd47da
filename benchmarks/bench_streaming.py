"""Training a head from a feature store: in memory, streamed shard by shard, and map-reduced on Dask.

The same head (the shipped words+svm settings by default: one-vs-rest squared
hinge, L-BFGS, least-squares start, 100 iterations) is trained on the
training split of a store and scored on its test split, three ways:

- ``memory``: every split read into memory, scaler fitted and applied in place
  (what ``featpipe run --data STORE`` did before streaming);
- ``stream``: the scaler fitted shard by shard, the head trained on the
  store's shards as row blocks (:mod:`featpipe.heads.blocks`), test rows
  predicted shard by shard;
- ``dask``: as ``stream``, the full-batch loss summed on a LocalCluster of
  ``--jobs`` single-threaded workers (:mod:`featpipe.pipeline.dask_loss`).

Each mode runs in its own child process; this script samples the resident
memory (RSS, memory-mapped pages included) of that child and all its
descendants every 50 ms and reports the peak of the sum, with the seconds,
test accuracy, final loss and iterations, one JSON line per mode.

``--shard-costs`` instead times, on the store's first shard, one read with
its sha256 check, one squared-hinge loss and gradient, and its share of the
least-squares Gram matrix (median of 3), for the extrapolation in
docs/scaling.md.

Usage::

    python benchmarks/bench_streaming.py STORE --modes memory stream dask --jobs 2
    python benchmarks/bench_streaming.py STORE --shard-costs
"""

import argparse
import json
import subprocess
import sys
import time

import psutil


def tree_rss(process):
    """Resident bytes of ``process`` and all its descendants, summed."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def measure(command):
    """Run ``command``; return its last stdout line as JSON, plus seconds and peak summed RSS."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    process = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            peak = max(peak, tree_rss(process))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    output = child.stdout.read().strip().splitlines()
    if child.returncode != 0 or not output:
        raise SystemExit(f"{command} failed with status {child.returncode}")
    figures = json.loads(output[-1])
    figures.update(wall_seconds=round(time.perf_counter() - started, 2), peak_rss_mib=round(peak / 2**20, 1))
    return figures


def head_from_args(args):
    from featpipe.heads import LinearSVM

    return LinearSVM(squared=True, multi_class="ovr", optimizer="lbfgs", init=args.init, reg=args.reg,
                     n_epochs=args.iterations, random_state=0)


def train_in_memory(store, head):
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    from featpipe.heads.blocks import ArrayBlocks, fit_scaler_by_blocks

    X_train, y_train = store.split("train")
    X_val, y_val = store.split("val")
    X_test, y_test = store.split("test")
    scaler = fit_scaler_by_blocks(StandardScaler(), ArrayBlocks(X_train))
    for X in (X_train, X_val, X_test):
        X -= scaler.mean_.astype(np.float32)
        X /= scaler.scale_.astype(np.float32)
    head.fit(X_train, y_train, X_val=X_val, y_val=y_val)
    return head, head.score(X_test, y_test)


def train_streamed(store, head, client=None):
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    from featpipe.heads.blocks import ScaledBlocks, fit_scaler_by_blocks

    scaler = fit_scaler_by_blocks(StandardScaler(), store.blocks("train"))
    source = ScaledBlocks(store.blocks(), scaler.mean_, scaler.scale_)
    if client is not None:
        from featpipe.pipeline.dask_loss import DistributedBlocks

        source = DistributedBlocks(source, client)
    masks = {split: store.splits == split for split in ("train", "val", "test")}
    X_val = np.asarray(source.select(masks["val"]))
    head.fit(source.select(masks["train"]), store.labels[masks["train"]], X_val=X_val,
             y_val=store.labels[masks["val"]])
    predicted = head.predict(source.select(masks["test"]))
    return head, float(np.mean(predicted == store.labels[masks["test"]]))


def run_mode(args):
    """The child's side: train once in ``args.mode``, print one JSON line."""
    from contextlib import ExitStack

    import featpipe.store

    started = time.perf_counter()
    store = featpipe.store.open(args.store, verify=False)
    head = head_from_args(args)
    with ExitStack() as stack:
        if args.mode == "memory":
            head, accuracy = train_in_memory(store, head)
        elif args.mode == "stream":
            head, accuracy = train_streamed(store, head)
        else:
            from distributed import Client, LocalCluster

            cluster = stack.enter_context(LocalCluster(n_workers=args.jobs, threads_per_worker=1, processes=True,
                                                       host="127.0.0.1", dashboard_address=":0"))
            client = stack.enter_context(Client(cluster))
            head, accuracy = train_streamed(store, head, client)
    print(json.dumps({"mode": args.mode, "seconds": round(time.perf_counter() - started, 2),
                      "test_accuracy": round(accuracy, 4), "final_loss": head.loss_history_[-1],
                      "n_iter": head.n_iter_, "n_train": int((store.splits == "train").sum()),
                      "n_features": store.features.shape[1]}), flush=True)


def shard_costs(store_path, repeats=3):
    """Seconds of the per-shard steps of streamed training on the store's first shard, medians."""
    import statistics

    import numpy as np
    from scipy.linalg.blas import dsyrk

    import featpipe.store
    from featpipe.heads.losses import svm_loss
    from featpipe.store.shards import read_shard

    store = featpipe.store.open(store_path, verify=False)
    record, n_features = store.manifest["shards"][0], store.manifest["n_features"]
    W = np.zeros((n_features + 1, len(store.classes)), np.float32)
    labels = store.labels[: record["n_rows"]]
    gram = np.zeros((n_features, n_features), order="F")
    seconds = {"read_and_verify": [], "loss_and_gradient": [], "gram_share": []}
    for _ in range(repeats):
        started = time.perf_counter()
        X = read_shard(store.path, record, n_features, verify=True)
        seconds["read_and_verify"].append(time.perf_counter() - started)
        started = time.perf_counter()
        svm_loss(W, X, labels, squared=True, multi_class="ovr")
        seconds["loss_and_gradient"].append(time.perf_counter() - started)
        started = time.perf_counter()
        for first in range(0, len(X), 512):
            gram = dsyrk(1.0, np.asarray(X[first:first + 512], np.float64).T, beta=1.0, c=gram, overwrite_c=1)
        seconds["gram_share"].append(time.perf_counter() - started)
    figures = {name: round(statistics.median(values), 3) for name, values in seconds.items()}
    print(json.dumps({"shard_rows": record["n_rows"], "n_features": n_features, **figures}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--modes", nargs="+", default=["memory", "stream", "dask"])
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--reg", type=float, default=0.00167)
    parser.add_argument("--init", default="least_squares")
    parser.add_argument("--shard-costs", action="store_true")
    args = parser.parse_args()
    if args.shard_costs:
        shard_costs(args.store)
        return
    if args.mode is not None:
        run_mode(args)
        return
    for mode in args.modes:
        command = [sys.executable, __file__, args.store, "--mode", mode, "--jobs", str(args.jobs),
                   "--iterations", str(args.iterations), "--reg", str(args.reg), "--init", args.init]
        print(json.dumps(measure(command)), flush=True)


if __name__ == "__main__":
    main()
