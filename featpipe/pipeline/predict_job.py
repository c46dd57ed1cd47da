"""Batch prediction of a whole collection: chunked, bounded in memory, resumable, local or on Dask.

:func:`run_predict_job` is what ``featpipe predict RUN_DIR --data ... --out
predictions.csv`` runs. It reuses the extract machinery rather than a
second engine: images are first extracted by the run's own fitted
extractors into a feature store (``featpipe extract --from RUN_DIR``,
resumable, under the cache folder), then every shard of the store is scored
by the run's scaler and head. A store given directly is scored as it is,
after checking that its extractors are the run's, exactly.

Each scored shard becomes one part file (rows of ``path,label,probability``)
in a folder beside the output, written atomically; a killed job resumes
from the parts already written, and the output file appears, complete, by a
final rename. Memory: one shard and its predictions at a time per worker.
"""

import csv
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from featpipe.store.format import StoreError, file_sha256
from featpipe.store.reader import is_store
from featpipe.store.reader import open as open_store
from featpipe.store.shards import read_shard

PARTS_SUFFIX = ".parts"
HEADER = ("path", "label", "probability")


def extractors_digest(pairs):
    """sha256 of fitted ``(name, extractor)`` pairs: names, parameters and every fitted attribute.

    Two sets of extractors with the same digest turn the same images into
    the same features.
    """
    digest = hashlib.sha256()
    for name, extractor in pairs:
        digest.update(f"{name}:{type(extractor).__qualname__}:".encode())
        digest.update(json.dumps(extractor.get_params(deep=False), sort_keys=True, default=repr).encode())
        for attribute in sorted(key for key in vars(extractor) if key.endswith("_") and not key.startswith("_")):
            value = getattr(extractor, attribute)
            digest.update(attribute.encode())
            if isinstance(value, np.ndarray):
                digest.update(f"{value.dtype.str}{value.shape}".encode())
                digest.update(np.ascontiguousarray(value).tobytes())
            else:
                digest.update(repr(value).encode())
    return digest.hexdigest()


def check_same_extractors(store, model, run_dir):
    """Refuse a store whose extractors are not exactly the run's."""
    run_pairs = list(model.named_steps["features"].transformer_list)
    store_pairs = store.load_extractors() or []
    run_names = "+".join(name for name, _ in run_pairs)
    store_names = "+".join(name for name, _ in store_pairs)
    if run_names != store_names:
        raise StoreError(f"store {store.path} holds {store_names or 'no'} features; run {run_dir} "
                         f"needs {run_names}")
    if extractors_digest(store_pairs) != extractors_digest(run_pairs):
        raise StoreError(f"store {store.path} was extracted with other {store_names} extractors than run "
                         f"{run_dir} (other parameters or another fit); extract it again with "
                         f"featpipe extract --from {run_dir}")


def score_shard(task, scorer):
    """Score one shard and write its part file atomically; return the number of rows written.

    ``task`` holds the ``store`` folder, the shard's manifest ``record``,
    ``n_features``, the ``part`` file to write, the ``paths`` of the
    shard's rows in order and the run's ``classes``; ``scorer`` is the
    run's Pipeline without its feature step.
    """
    paths, classes, part_path = task["paths"], task["classes"], task["part"]
    features = read_shard(task["store"], task["record"], task["n_features"])
    labels = scorer.predict(features) if len(features) else np.empty(0, dtype=int)
    probability = None
    if hasattr(scorer, "predict_proba") and len(features):
        probability = scorer.predict_proba(features).max(axis=1)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    for row, (path, label) in enumerate(zip(paths, labels)):
        writer.writerow([path, classes[int(label)], "" if probability is None else f"{probability[row]:.4f}"])
    part_path = Path(part_path)
    temporary = part_path.with_name(f".{part_path.name}.tmp-{os.getpid()}")
    temporary.write_text(text.getvalue(), encoding="utf-8")
    os.replace(temporary, part_path)
    return len(labels)


def _part_path(parts_dir, record):
    return Path(parts_dir) / f"{Path(record['file']).stem}-{record['sha256'][:16]}.csv"


def _open_parts(out, identity):
    """The parts folder beside ``out``, emptied first when it holds parts of another job."""
    parts_dir = out.with_name(out.name + PARTS_SUFFIX)
    parts_dir.mkdir(parents=True, exist_ok=True)
    job_file = parts_dir / "job.json"
    if job_file.is_file() and json.loads(job_file.read_text(encoding="utf-8")) != identity:
        for part in parts_dir.iterdir():
            part.unlink()
    job_file.write_text(json.dumps(identity, sort_keys=True), encoding="utf-8")
    return parts_dir


def score_store(store, model, out, identity, client=None, progress=None):
    """Write ``out`` (CSV: path, label, probability) for every row of ``store``, shard by shard.

    Parameters
    ----------
    store : FeatureStore
        Features made by the run's extractors.
    model : sklearn Pipeline
        The run's model (``features``, ``normalize``, ``head`` steps).
    out : path-like
        The CSV file; written by a final rename, so it exists only complete.
    identity : dict
        What the parts depend on: the model file's and the store's digests
        and ``classes``, the run's class names, indexed by the head's
        labels (not the store's own classes: a folder to predict may have
        other class folders, or none). Parts left by a job of another
        identity are deleted instead of being resumed from.
    client : distributed.Client or None
        Score the shards on this cluster's workers (they read the shards
        and write the parts themselves; the store and ``out`` must be on
        a file system they share).
    progress : callable or None
        Called with the rows of each finished shard.

    Returns
    -------
    n_rows : int
    """
    out = Path(out)
    parts_dir = _open_parts(out, identity)
    scorer = model[1:]
    n_features = int(store.manifest["n_features"])
    records = store.manifest["shards"]
    row_starts = np.cumsum([0] + [record["n_rows"] for record in records])
    todo = [index for index, record in enumerate(records) if not _part_path(parts_dir, record).is_file()]
    for index in range(len(records)):
        if index not in todo and progress is not None:
            progress(records[index]["n_rows"])
    tasks = [{"store": str(store.path), "record": records[index], "n_features": n_features,
              "part": str(_part_path(parts_dir, records[index])),
              "paths": store.paths[row_starts[index]:row_starts[index + 1]], "classes": list(identity["classes"])}
             for index in todo]
    if client is None:
        for task in tasks:
            rows = score_shard(task, scorer)
            if progress is not None:
                progress(rows)
    else:
        from distributed import as_completed

        scorer_future = client.scatter(scorer, broadcast=True, hash=False)
        futures = [client.submit(score_shard, task, scorer_future, pure=False) for task in tasks]
        for future in as_completed(futures):
            rows = future.result()
            if progress is not None:
                progress(rows)
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    with temporary.open("w", encoding="utf-8", newline="") as file:
        csv.writer(file, lineterminator="\n").writerow(HEADER)
        for record in records:
            with _part_path(parts_dir, record).open(encoding="utf-8") as part:
                for line in part:
                    file.write(line)
    os.replace(temporary, out)
    for part in parts_dir.iterdir():
        part.unlink()
    parts_dir.rmdir()
    return int(row_starts[-1])


def run_predict_job(run_dir, data, out, *, options=None, **option_values):
    """Predict every image of ``data`` (an image collection or a feature store) into the CSV ``out``.

    Parameters
    ----------
    run_dir : path-like
        A finished run folder (its ``model.skops`` and ``metrics.json``).
    data : str or path-like
        A feature store made with the run's extractors, images as
        ``featpipe extract`` reads them, or a flat folder of images without
        class folders; images are extracted first into a
        store under ``<cache_dir>/predict/`` by the run's extractors
        (resumable; a second prediction of the same images reuses it).
    out : path-like
        CSV file written: a header, then ``path,label,probability`` per row
        (probability empty for heads without ``predict_proba``).
    options : ExtractOptions or None
        As for :func:`featpipe.pipeline.extract_job.run_extract_job` (jobs,
        chunk size, Dask backend or scheduler, strictness, cache folder,
        progress); with ``backend="dask"`` or a scheduler, shards are
        scored on the workers as well. ``from_run`` is always ``run_dir``.
    **option_values
        Fields of :class:`ExtractOptions` to set on top of ``options``.

    Returns
    -------
    n_rows : int
        Rows written (unreadable images are skipped, as in ``extract``).
    """
    from contextlib import ExitStack

    from tqdm.auto import tqdm

    from featpipe.cache import default_cache_dir, fingerprint
    from featpipe.pipeline.extract_job import run_extract_job
    from featpipe.model_io import load_model
    from featpipe.pipeline.options import ExtractOptions, resolve_options
    from featpipe.pipeline.dask_backend import dask_backend

    options = resolve_options(ExtractOptions, options, dict(option_values, from_run=run_dir))
    run_dir = Path(run_dir)
    model_path = run_dir / "model.skops"
    model = load_model(model_path)
    model_digest = file_sha256(model_path)
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    on_dask = options.scheduler is not None or options.backend == "dask"
    if data is not None and is_store(data):
        store = open_store(data, verify=False)
        check_same_extractors(store, model, run_dir)
    else:
        from dataclasses import replace

        from featpipe.pipeline.extract_inputs import describe_inputs

        source, _ = describe_inputs(data, replace(options, image_size=metrics["dataset"]["image_size"]))
        root = Path(options.cache_dir) if options.cache_dir is not None else default_cache_dir()
        store_dir = root / "predict" / fingerprint(model_digest, source["fingerprint"])
        store = run_extract_job(list(model.named_steps["features"].transformer_list), data, store_dir,
                                options=options)
    identity = {"model": model_digest, "store": fingerprint(store.manifest["shards"]),
                "classes": list(metrics["dataset"]["classes"])}
    with ExitStack() as stack:
        client = None
        if on_dask:
            client = stack.enter_context(dask_backend(options.n_jobs, options.scheduler))
        bar = stack.enter_context(tqdm(total=len(store), unit="img", desc="predict", disable=not options.progress))
        return score_store(store, model, out, identity, client=client, progress=bar.update)
