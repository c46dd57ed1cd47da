"""Images whose features would not fit the memory budget: extract them into a store under the cache first.

``featpipe run SPEC --data IMAGES`` normally holds every image and every
feature in memory. When those (known before anything is decoded: images x
pixels x 3 bytes plus images x feature width x 4 bytes) exceed ``--memory-budget``,
the run hands the images to the extract job instead - the same chunked,
resumable engine as ``featpipe extract`` - writing a feature store under
``<cache>/stores/``, and trains from that store shard by shard. A second
run of the same pipeline on the same images reuses the store; an
interrupted one resumes it.

The extractors that learn (``words``) are then fitted on a seeded sample of
at most 50,000 training images, as ``featpipe extract`` fits them, instead
of on every training image. An augmented pipeline (``augment = ["hflip"]``)
gets its mirrored training images extracted as extra training rows of the
store, so it streams too.
"""

import sys
from pathlib import Path

from featpipe.cache import default_cache_dir, fingerprint
from featpipe.datasets import describe_source
from featpipe.memory_budget import image_bytes
from featpipe.pipeline.extract_job import run_extract_job
from featpipe.pipeline.registry import OWN_HEADS, make_feature


def in_memory_bytes(spec, data, options):
    """Bytes an in-memory run on ``data`` holds, or ``None`` when ``data`` is not a folder of image files.

    Every decoded image plus its float32 features: known before anything
    is decoded. Mirrored training images count twice, except where every
    extractor gives the mirrored features as a permutation of the
    original's (``mirror_permutation``): then no mirrored image is decoded,
    and featpipe's own heads do not materialize the mirrored rows either
    (:class:`featpipe.heads.mirrored_rows.MirroredRows`). Only a folder is read
    chunk by chunk by the extract job; other sources (the built-in set, a
    CIFAR-10 download, an ``.npz`` file) are loaded whole either way, so
    extracting them into a store would not bound the memory.
    """
    source = describe_source(data, options)
    if source["kind"] != "folder" or source["n_images"] is None:
        return None
    n_images = int(source["n_images"])
    extractors = [make_feature(step.name, step.params) for step in spec.features]
    width = sum(extractor.n_features_out((options.image_size, options.image_size)) for extractor in extractors)
    with_copies = n_images * (1 + len(spec.augment))
    permuted = tuple(spec.augment) == ("hflip",) and all(hasattr(e, "mirror_permutation") for e in extractors)
    decoded = n_images if permuted else with_copies
    rows = n_images if permuted and spec.head.name in OWN_HEADS else with_copies
    return image_bytes(decoded, options.image_size) + rows * width * 4


def extract_into_cache(spec, data, feature_params, options, client=None):
    """Extract the spec's features of ``data`` into a store under the cache; return the store's path.

    Parameters
    ----------
    spec : PipelineSpec
    data : str or path-like
        The images.
    feature_params : list of dict
        Each feature's parameters, seeds included.
    options : RunOptions
        The run's options (image size, split, seed, strictness, cache, jobs, chunk size).
    client : distributed.Client or None
        The run's Dask cluster: the extraction runs on it too.
    """
    source = describe_source(data, options)
    root = Path(options.cache_dir) if options.cache_dir is not None else default_cache_dir()
    store_dir = root / "stores" / fingerprint(source["fingerprint"], [step.name for step in spec.features],
                                              feature_params, options.image_size, options.val_size, options.seed,
                                              *([list(spec.augment)] if spec.augment else []))
    if not options.quiet:
        print(f"featpipe: the images of {data} and their features would not fit the memory budget: extracting them into "
              f"{store_dir}, then training from it shard by shard", file=sys.stderr)
    features = [(step.name, make_feature(step.name, params)) for step, params in zip(spec.features, feature_params)]
    run_extract_job(features, data, store_dir, n_jobs=options.n_jobs, chunk_size=options.chunk_size,
                    scheduler=None if client is None else client.scheduler.address, strict=options.strict,
                    cache_dir=options.cache_dir, progress=not options.quiet, image_size=options.image_size,
                    val_size=options.val_size, seed=options.seed, augment=tuple(spec.augment))
    return store_dir
