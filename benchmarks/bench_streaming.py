"""Training a head from a feature store: in memory, streamed shard by shard, and map-reduced on Dask.

The same head (the shipped words+svm settings by default: one-vs-rest squared
hinge, L-BFGS, least-squares start, 100 iterations) is trained on the
training split of a store and scored on its test split, three ways:

- ``memory``: the training split read into memory once (one array, kept as
  blocks with the shards' boundaries, what ``featpipe run --data STORE``
  does under the budget);
- ``stream``: the training split read from the store's shards on every
  loss evaluation (each shard verified on its first read, memory-mapped
  after), what ``featpipe run --data STORE`` does over the budget;

both with the scaler fitted shard by shard and folded into the weights, test
rows predicted block by block, so both follow the same optimizer path;
- ``dask``: as ``stream``, the full-batch loss summed on a LocalCluster of
  ``--jobs`` single-threaded workers (:mod:`featpipe.pipeline.dask_loss`).

Each mode runs in its own child process; this script samples the resident
memory (RSS, memory-mapped pages included) of that child and all its
descendants every 50 ms and reports the peak of the sum, with the seconds,
test accuracy, final loss and iterations, one JSON line per mode and repeat.
The modes run one after the other, ``--repeats`` times in turn (memory,
stream, memory, stream, ...), so both see the same machine load; a last
line gives each mode's median seconds and the ratio of the medians.

``--shard-costs`` instead times, on the store's first shard, one read with
its sha256 check, one squared-hinge loss and gradient, and its share of the
least-squares Gram matrix (median of 3), for the extrapolation in
docs/scaling.md.

Usage::

    python benchmarks/bench_streaming.py STORE --modes memory stream --repeats 3
    python benchmarks/bench_streaming.py STORE --modes memory stream dask --jobs 2
    python benchmarks/bench_streaming.py STORE --shard-costs
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

from _common import peak_tree_rss


def measure(command):
    """Run ``command``; return its last stdout line as JSON, plus seconds and peak summed RSS."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peak = peak_tree_rss(child)
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


def train(store, head, mode, client=None):
    """Fit ``head`` on the store's training split in ``mode``; return it and its test accuracy."""
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    from featpipe.heads.blocks import fit_scaler_by_blocks

    masks = {split: store.splits == split for split in ("train", "val", "test")}
    blocks = store.blocks()
    if client is not None:
        from featpipe.pipeline.dask_loss import DistributedBlocks

        blocks = DistributedBlocks(blocks, client)
    train_rows = blocks.select(masks["train"])
    if mode == "memory":
        train_rows = train_rows.in_memory()
    scaler = fit_scaler_by_blocks(StandardScaler(), train_rows)
    X_val = np.asarray(blocks.select(masks["val"]).scaled(scaler.mean_, scaler.scale_))
    head.fit(train_rows.scaled(scaler.mean_, scaler.scale_), store.labels[masks["train"]], X_val=X_val,
             y_val=store.labels[masks["val"]])
    predicted = head.predict(blocks.select(masks["test"]).scaled(scaler.mean_, scaler.scale_))
    return head, float(np.mean(predicted == store.labels[masks["test"]]))


def run_mode(args):
    """The child's side: train once in ``args.mode``, print one JSON line."""
    from contextlib import ExitStack

    import featpipe.store

    started = time.perf_counter()
    store = featpipe.store.open(args.store, verify=False)
    head = head_from_args(args)
    with ExitStack() as stack:
        client = None
        if args.mode == "dask":
            from distributed import Client, LocalCluster

            cluster = stack.enter_context(LocalCluster(n_workers=args.jobs, threads_per_worker=1, processes=True,
                                                       host="127.0.0.1", dashboard_address=":0"))
            client = stack.enter_context(Client(cluster))
        head, accuracy = train(store, head, args.mode, client)
    print(json.dumps({"mode": args.mode, "seconds": round(time.perf_counter() - started, 2),
                      "test_accuracy": round(accuracy, 4), "final_loss": head.loss_history_[-1],
                      "n_iter": head.n_iter_, "n_train": int((store.splits == "train").sum()),
                      "n_features": store.features.shape[1]}), flush=True)


def shard_costs(store_path, repeats=3):
    """Seconds of the per-shard steps of streamed training on the store's first shard, medians."""
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
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--shard-costs", action="store_true")
    args = parser.parse_args()
    if args.shard_costs:
        shard_costs(args.store)
        return
    if args.mode is not None:
        run_mode(args)
        return
    seconds = {mode: [] for mode in args.modes}
    for _ in range(args.repeats):
        for mode in args.modes:
            command = [sys.executable, __file__, args.store, "--mode", mode, "--jobs", str(args.jobs),
                       "--iterations", str(args.iterations), "--reg", str(args.reg), "--init", args.init]
            figures = measure(command)
            seconds[mode].append(figures["wall_seconds"])
            print(json.dumps(figures), flush=True)
    medians = {mode: statistics.median(values) for mode, values in seconds.items()}
    summary = {"median_wall_seconds": medians, "repeats": args.repeats}
    if "memory" in medians:
        summary["ratio_to_memory"] = {mode: round(value / medians["memory"], 3) for mode, value in medians.items()}
    print(json.dumps(summary), flush=True)

if __name__ == "__main__":
    main()
