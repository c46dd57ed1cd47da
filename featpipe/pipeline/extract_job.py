"""Batch feature extraction into a feature store: resumable, bounded in memory, local or on Dask.

:func:`run_extract_job` is what ``featpipe extract`` runs. The unit of work
is a chunk of the input list: a worker reads the chunk's images (decoding
only those), extracts their features and writes one shard of the store
(:mod:`featpipe.store`). The driver holds only the file list, never the
images, so a million-image folder needs a few GiB at most. The same chunk
function runs here and in local worker processes sharing one task queue
(:mod:`featpipe.pipeline.workers`), or on a ``dask.distributed`` cluster
(joblib's ``dask`` backend); every shard's bytes
depend only on its images and the fitted extractors, so a resumed, a
parallel and a cluster run all write the same store.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import featpipe
from featpipe.datasets import read_images
from featpipe.datasets.options import DEFAULT_IMAGE_SIZE
from featpipe.errors import ParameterError, SpecError
from featpipe.features.base import ImageFeatureExtractor, is_whole_number
from featpipe.memory_budget import check_in_memory_load
from featpipe.parallel import DEFAULT_CHUNK_SIZE, chunk_bounds
from featpipe.pipeline.dask_backend import dask_backend
from featpipe.pipeline.extract_inputs import ExtractInputs, extract_budget
from featpipe.pipeline.inputs import jsonable
from featpipe.pipeline.options import ExtractOptions, resolve_options
from featpipe.pipeline.registry import make_feature
from featpipe.pipeline.spec import Step, parse_features
from featpipe.pipeline.workers import SharedWorkPool, WorkerDied
from featpipe.store import format as store_format
from featpipe.store.format import StoreError
from featpipe.store.lock import StoreLock
from featpipe.store.reader import open as open_store


def _feature_pairs(features, from_run):
    """[(name, extractor)] and whether they are already fitted."""
    steps = parse_features(features) if isinstance(features, str) else tuple(features)
    if all(isinstance(step, Step) for step in steps):
        names = [step.name for step in steps]
    elif all(isinstance(pair, tuple) and isinstance(pair[1], ImageFeatureExtractor) for pair in steps):
        names = [str(name) for name, _ in steps]
    else:
        raise SpecError("features must be a spec such as 'hog+color', Steps, or (name, extractor) pairs")
    if from_run is not None:
        from featpipe.model_io import load_model  # skops is slow to import; workers never need it

        fitted = list(load_model(Path(from_run) / "model.skops").named_steps["features"].transformer_list)
        if [name for name, _ in fitted] != names:
            raise StoreError(f"run {from_run} extracts {'+'.join(name for name, _ in fitted)}, "
                             f"not {'+'.join(names)}")
        return fitted, True
    if isinstance(steps[0], Step):
        return [(step.name, make_feature(step.name, step.params)) for step in steps], False
    return [(name, extractor) for name, (_, extractor) in zip(names, steps)], False


def _learns_from_data(extractor):
    return type(extractor)._fit_images is not ImageFeatureExtractor._fit_images


def _fit(pairs, collection, options):
    """Fit every extractor on a seeded sample of at most ``options.fit_samples`` training images.

    Extractors that learn nothing (the base class's ``_fit_images``) only
    need the image size, so a few images fit them.
    """
    train = np.flatnonzero((collection.splits == "train") & ~collection.mirrored)
    if not any(_learns_from_data(extractor) for _, extractor in pairs):
        train = train[:64]
    elif len(train) > options.fit_samples:
        train = np.sort(np.random.default_rng(options.seed).choice(train, options.fit_samples, replace=False))
    check_in_memory_load(len(train), options.image_size, extract_budget(options), what="fit sample of the extractors",
                         advice="lower --image-size or raise --memory-budget")
    images, labels = collection.read(train, options)
    if len(images) == 0:
        raise StoreError("none of the training images sampled to fit the extractors can be read")
    return [(name, extractor.fit(images, labels)) for name, extractor in pairs]


def _extract_chunk(store_dir, index, start, chunk, extractors, options):
    """Read one chunk, extract its features and write its shard; return the shard's record.

    ``chunk.inputs`` are file paths (decoded here; corrupt files are
    skipped unless ``options.strict``, missing ones stop the job) or a
    uint8 image array; ``chunk.mirrored`` (bool per path, or ``None``)
    marks the paths whose image is mirrored left to right before
    extraction (:class:`featpipe.pipeline.extract_inputs.Chunk`).
    """
    inputs, mirrored = chunk
    if isinstance(inputs, np.ndarray):
        images, skipped = inputs, []
    else:
        batch = read_images(inputs, options.image_size, strict=options.strict, max_pixels=options.max_pixels)
        missing = [path for path, reason in batch.skipped if reason.startswith("FileNotFoundError")]
        if missing:
            raise StoreError(f"{missing[0]} was listed when the job started but cannot be found now; on a "
                             "cluster, every worker must see the data at the same path")
        images = batch.images
        if mirrored is not None:
            flip = mirrored[batch.ok]
            images[flip] = images[flip][:, :, ::-1]
        skipped = [(int(position), path, reason)
                   for position, (path, reason) in zip(np.flatnonzero(~batch.ok), batch.skipped)]
    widths = [extractor.n_features_out_ for extractor in extractors]
    features = np.empty((len(images), sum(widths)), dtype=np.float32)
    if len(images):
        edges = np.cumsum([0] + widths)
        for extractor, left, right in zip(extractors, edges[:-1], edges[1:]):
            features[:, left:right] = extractor.transform(images)
    return store_format.write_shard(store_dir, index, features, (start, start + len(inputs)), skipped)


def _plan(pairs, fitted, collection, options):
    """Everything the bytes of the store depend on; a resumed job must match it."""
    return {
        "features": [{"name": name, "params": jsonable(extractor.get_params(deep=False))}
                     for name, extractor in pairs],
        "fitted_on": {"run": str(Path(options.from_run).resolve())} if fitted else
                     {"fit_samples": int(options.fit_samples), "seed": int(options.seed)},
        "source": {key: collection.source[key] for key in ("kind", "name", "fingerprint")},
        "inputs": {"n": len(collection), "sha256": collection.digest()},
        "image_size": int(options.image_size),
        "chunk_size": int(options.chunk_size),
        "max_pixels": options.max_pixels,
        **({"augment": list(options.augment)} if options.augment else {}),
    }


def _open_store(out, plan):
    """Create or reopen the store folder and return its manifest; refuse one made with another plan."""
    manifest = store_format.read_manifest(out)
    if manifest is None:
        foreign = sorted(path.name for path in out.iterdir() if path.name != store_format.LOCK_NAME)
        if foreign:
            raise StoreError(f"{out} is not a feature store and not empty ({', '.join(foreign[:3])}...); "
                             "give a new or empty folder")
        manifest = {"format": store_format.STORE_FORMAT_VERSION, "complete": False,
                    "featpipe_version": featpipe.__version__, "plan": plan}
        store_format.write_manifest(out, manifest)
    elif manifest.get("plan") != plan:
        changed = sorted(key for key in plan if manifest.get("plan", {}).get(key) != plan[key])
        raise StoreError(f"store {out} was made with other {', '.join(changed) or 'settings'}; "
                         "give a new folder, or delete this one to rebuild it")
    (out / store_format.SHARDS_DIR).mkdir(exist_ok=True)
    return manifest


def _fitted_extractors(out, pairs, fitted, collection, options, saver):
    """The store's fitted extractors and the future of their saving (``None`` when already saved).

    Extractors saved by an earlier run of this job are loaded. Otherwise
    they are fitted and saved in ``saver``'s thread while the chunks are
    extracted (importing skops takes seconds); shards left by a run that
    died before saving its extractors are deleted, since they cannot be
    told apart from shards of a different fit.
    """
    saved = store_format.load_extractors(out)
    if saved is not None:
        return saved, None
    store_format.remove_shards(out)
    if not fitted:
        pairs = _fit(pairs, collection, options)
    return pairs, saver.submit(store_format.save_extractors, out, pairs)


def _final_manifest(plan, pairs, collection, records):
    rows = []
    skipped = list(collection.skipped_at_load)
    for record in records:
        start, stop = record["inputs"]
        bad = {position for position, _, _ in record["skipped"]}
        rows.extend(start + position for position in range(stop - start) if position not in bad)
        skipped.extend({"path": path, "reason": reason} for _, path, reason in record["skipped"])
    rows = np.asarray(rows, dtype=np.int64)
    widths = [extractor.n_features_out_ for _, extractor in pairs]
    edges = np.cumsum([0] + widths).tolist()
    offsets = np.cumsum([0] + [record["n_rows"] for record in records]).tolist()
    return {
        "format": store_format.STORE_FORMAT_VERSION,
        "complete": True,
        "featpipe_version": featpipe.__version__,
        "plan": plan,
        "features": [{"name": name, "params": block["params"], "width": width, "columns": [left, right]}
                     for (name, _), block, width, left, right
                     in zip(pairs, plan["features"], widths, edges[:-1], edges[1:])],
        "n_features": int(edges[-1]),
        "n_rows": len(rows),
        "classes": list(collection.classes),
        "extractors": store_format.EXTRACTORS_NAME,
        "shards": [{"file": record["file"], "rows": [first, last], "inputs": record["inputs"],
                    "n_rows": record["n_rows"], "sha256": record["sha256"]}
                   for record, first, last in zip(records, offsets[:-1], offsets[1:])],
        "paths": [collection.paths[row] for row in rows],
        "labels": collection.labels[rows].tolist(),
        "splits": collection.splits[rows].tolist(),
        "mirrored": np.flatnonzero(collection.mirrored[rows]).tolist(),
        "skipped": skipped,
    }


def _on_cluster(client, tasks):
    """Run the chunk ``tasks`` on the Dask cluster of ``client``; yield their records as they finish.

    The tasks go to the cluster's workers directly: joblib's ``Parallel``
    runs every task in the calling process when the cluster has a single
    worker thread. The extractors and options every task shares are
    scattered once.
    """
    from distributed import as_completed

    if not tasks:
        return
    extractors, options = client.scatter(list(tasks[0][4:]), broadcast=True, hash=False)
    futures = [client.submit(_extract_chunk, store_dir, index, start, inputs, extractors, options, pure=False)
               for store_dir, index, start, inputs, _, _ in tasks]
    for future in as_completed(futures):
        yield future.result()


def run_extract_job(features, data, out, *, options=None, on_progress=None, **option_values):
    """Extract features of a whole image collection into a feature store, resumably.

    Parameters
    ----------
    features : str, sequence of Step, or sequence of (name, extractor)
        The feature half of a spec, e.g. ``"hog+color"``.
    data : None, str or Path
        As for :func:`featpipe.datasets.load_dataset`. An image folder is
        read lazily, chunk by chunk; other sources are loaded in memory.
    out : path-like
        The store folder; it must be reachable by every worker.
    options : ExtractOptions or None
        Worker processes, shard size, Dask scheduler or backend, the run
        to take fitted extractors from, image size (default the run's, else
        32), splits, seed, fit sample, strictness, progress bar
        (:class:`featpipe.pipeline.options.ExtractOptions`); ``None`` for
        the defaults.
    on_progress : callable or None
        Called in this process once the chunks to do are known, then after
        every finished chunk, with a dict of ``images_done``,
        ``images_total``, ``chunks_done``, ``chunks_total`` and ``skipped``
        (unreadable images so far); an exception it raises stops the job at
        that chunk boundary, finished shards kept (how ``featpipe serve``
        stops a job on SIGTERM).
    **option_values
        Fields of :class:`ExtractOptions` to set on top of ``options``,
        e.g. ``run_extract_job("hog", "images", "store", n_jobs=2)``.

    Returns
    -------
    store : featpipe.store.FeatureStore

    Raises
    ------
    StoreError
        When the store is locked by another job, was made with other
        settings, or the disk is full. ``DatasetError`` for bad data and,
        with ``strict``, the first unreadable image.

    Examples
    --------
    >>> store = run_extract_job("hog+color", "cifar10-jpg", "cifar-hog", n_jobs=2)  # doctest: +SKIP
    >>> store.features.shape  # doctest: +SKIP
    (60000, 334)
    """
    started = time.perf_counter()
    options = resolve_options(ExtractOptions, options, option_values)
    chunk_size = DEFAULT_CHUNK_SIZE if options.chunk_size is None else options.chunk_size
    if not is_whole_number(chunk_size) or chunk_size < 1:
        raise ParameterError(f"chunk_size must be a whole number >= 1; got {chunk_size!r}")
    if options.backend not in (None, "local", "dask"):
        raise ParameterError(f"backend must be 'local' (this machine's processes) or 'dask'; "
                             f"got {options.backend!r}")
    pairs, fitted = _feature_pairs(features, options.from_run)
    if not fitted:  # as `featpipe run` does: two jobs with the same plan write the same bytes
        for _, extractor in pairs:
            if extractor.get_params(deep=False).get("random_state", 0) is None:
                extractor.set_params(random_state=options.seed)
    on_dask = options.scheduler is not None or options.backend == "dask"
    with ExitStack() as stack:
        # The local workers start now: their imports overlap listing the images and fitting.
        pool = stack.enter_context(SharedWorkPool(1 if on_dask else options.n_jobs, preload=__name__))
        fitted_size = pairs[0][1].image_shape_[0] if fitted else None
        if fitted and options.image_size not in (None, fitted_size):
            raise StoreError(f"the extractors of run {options.from_run} were fitted on {fitted_size}-pixel "
                             f"images, not {options.image_size}")
        options = replace(options, chunk_size=chunk_size,
                          image_size=options.image_size or fitted_size or DEFAULT_IMAGE_SIZE)
        collection = ExtractInputs(data, options)
        processes = 1 if on_dask else pool.n_workers + 1
        in_flight = min(chunk_size, len(collection))
        check_in_memory_load(in_flight * processes, options.image_size, extract_budget(options),
                             what=f"extraction ({processes} process(es) x {in_flight:,} images a chunk)",
                             advice="lower --chunk-size or --jobs, or raise --memory-budget")
        plan = _plan(pairs, fitted, collection, options)
        out = Path(out).expanduser().resolve()
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create store folder {out}: {error.strerror or error}") from None
        stack.enter_context(StoreLock(out))
        store_format.remove_temporary_files(out)
        manifest = _open_store(out, plan)
        saver = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        pairs, saving = _fitted_extractors(out, pairs, fitted, collection, options, saver)
        extractors = [extractor for _, extractor in pairs]
        bounds = chunk_bounds(len(collection), chunk_size)
        records = [store_format.read_shard_record(out, index) for index in range(len(bounds))]
        todo = [index for index, record in enumerate(records)
                if record is None or not store_format.shard_is_intact(out, record)]
        done_images = len(collection) - sum(bounds[index][1] - bounds[index][0] for index in todo)
        bar = tqdm(total=len(collection), initial=done_images, unit="img", desc="extract",
                   disable=not options.progress, smoothing=0.1)
        tasks = [(str(out), index, bounds[index][0], collection.chunk(*bounds[index]), extractors, options)
                 for index in todo]

        def report():
            if on_progress is not None:
                finished_records = [record for record in records if record is not None]
                on_progress({
                    "images_done": sum(record["inputs"][1] - record["inputs"][0] for record in finished_records),
                    "images_total": len(collection), "chunks_done": len(finished_records),
                    "chunks_total": len(bounds),
                    "skipped": len(collection.skipped_at_load) + sum(len(record["skipped"])
                                                                     for record in finished_records)})

        def finished(record):
            records[record["index"]] = record
            bar.update(record["inputs"][1] - record["inputs"][0])
            report()

        for index in todo:
            records[index] = None
        report()
        with bar:
            if not on_dask:
                try:
                    pool.run(_extract_chunk, tasks, finished)
                except WorkerDied as error:
                    raise StoreError(f"{error}; finished shards are kept: run the same command again "
                                     "to resume") from None
            else:
                with dask_backend(options.n_jobs, options.scheduler) as client:
                    for record in _on_cluster(client, tasks):
                        finished(record)
        if saving is not None:
            saving.result()
        if todo or not manifest["complete"]:
            manifest = _final_manifest(plan, pairs, collection, records)
            store_format.write_manifest(out, manifest)
            store_format.write_timings(out, time.perf_counter() - started)
        store_format.remove_temporary_files(out)
    return open_store(out, verify=False)
