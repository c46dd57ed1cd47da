"""Where a pipeline's features come from: images to extract, or a feature store.

Both sources give the pipeline the same four things, each fetched only when
a later stage needs it: a key for the data, the fitted extractors, the
feature matrices per split, and the labels (as a
:class:`featpipe.datasets.Dataset`, the training split augmented as the
spec says). An image source runs the cached load
and extract stages; a store source reads what ``featpipe extract`` wrote.
"""

import json
from contextlib import ExitStack

import numpy as np

from featpipe.cache import fingerprint
from featpipe.datasets import SPLITS, Dataset, DatasetError, describe_source
from featpipe.datasets.npz import count_npz_images
from featpipe.heads.mirrored_rows import MirroredRows
from featpipe.memory_budget import check_in_memory_load, default_budget
from featpipe.pipeline import stages
from featpipe.pipeline.augment import append_permuted_rows, augment_training_set, mirror_permutation_for
from featpipe.pipeline.dask_loss import DistributedBlocks
from featpipe.pipeline.registry import OWN_HEADS, make_feature
from featpipe.pipeline.spec import SpecError
from featpipe.store.reader import open as open_store


def _stack_splits(parts):
    """Each split's features side by side: ``{split: [part[split] for part in parts] stacked}``.

    Each part's array is released from its dict as soon as it is copied, so
    the peak memory is the stacked features plus the parts not yet copied,
    not twice all the features.
    """
    stacked = {}
    for split in SPLITS:
        arrays = [part[split] for part in parts]
        if len(arrays) == 1:
            stacked[split] = arrays[0]
            continue
        widths = np.cumsum([0] + [array.shape[1] for array in arrays])
        out = np.empty((arrays[0].shape[0], widths[-1]), dtype=np.result_type(*arrays))
        del arrays
        for part, start, stop in zip(parts, widths[:-1], widths[1:]):
            out[:, start:stop] = part[split]
            part[split] = None
        stacked[split] = out
    return stacked


KNOWN_IMAGE_COUNTS = {"cifar10-batches": 60_000, "cifar10-tarball": 60_000}
"""Images of sources whose description does not count them."""


def _format_version(name, params):
    """The format version the extractor class of feature ``name`` declares (1 when it declares none)."""
    return getattr(make_feature(name, params), "format_version", 1)


def _check_same_parameters(path, spec, feature_params, manifest):
    """Refuse a store whose extractors were made with other parameters than the pipeline's.

    Both sides are every parameter of the extractor (defaults included), as
    JSON, so ``hog`` with two cell sizes differs from a store of default
    ``hog``; the message names the first difference.
    """
    stored = [block.get("params", {}) for block in manifest["plan"].get("features", [])]
    for step, params, stored_params in zip(spec.features, feature_params, stored):
        wanted = jsonable(make_feature(step.name, params).get_params(deep=False))
        for key in sorted(set(wanted) | set(stored_params)):
            if wanted.get(key) != stored_params.get(key):
                raise SpecError(
                    f"feature store {path} has {step.name} {key}={json.dumps(stored_params.get(key))}; "
                    f"the pipeline asks for {key}={json.dumps(wanted.get(key))}: "
                    "run on the images, or extract a store with these parameters"
                )


def check_store_serves(path, spec, seed, manifest):
    """Refuse, from a store's manifest alone, a pipeline whose features the store does not hold.

    The feature names, their order and every extractor parameter are
    compared as a run compares them when it opens the store (``random_state``
    seeded with ``seed``, as a run seeds it), without reading a shard: how a
    run job on a store is refused at submission rather than failing in its
    worker.

    Raises
    ------
    SpecError
        Naming the first difference.
    """
    stored = [block["name"] for block in manifest["features"]]
    wanted = [step.name for step in spec.features]
    if stored != wanted:
        raise SpecError(f"feature store {path} holds {'+'.join(stored)} features; "
                        f"the pipeline asks for {'+'.join(wanted)}")
    feature_params = []
    for step in spec.features:
        params = dict(step.params)
        if "random_state" in make_feature(step.name, params).get_params(deep=False):
            params.setdefault("random_state", seed)
        feature_params.append(params)
    _check_same_parameters(path, spec, feature_params, manifest)


def jsonable(value):
    """``value`` as JSON would give it back (tuples become lists), for comparing parameters."""
    return json.loads(json.dumps(value, sort_keys=True, default=repr))


class ImageSource:
    """Features extracted from a data set of images, stage by cached stage.

    Parameters
    ----------
    spec : PipelineSpec
    data : None, str or Path
        The data set, as for :func:`featpipe.datasets.load_dataset`.
    options : RunOptions
        The run's options, with ``image_size`` resolved.
    feature_params : list of dict
        Each feature's parameters, seeds included.
    cached : CachedStages
    """

    def __init__(self, spec, data, options, feature_params, cached):
        self.data, self.options, self.cached = data, options, cached
        with cached.clock.timed("load"):
            source = describe_source(data, options)
        self.augment = spec.augment
        self.head_mirrors = spec.head.name in OWN_HEADS
        n_images = source["n_images"] or KNOWN_IMAGE_COUNTS.get(source["kind"])
        if source["kind"] == "npz":
            n_images = count_npz_images(source["path"])
        if n_images is not None:
            budget = default_budget() if options.memory_budget is None else options.memory_budget
            check_in_memory_load(n_images * (1 + len(self.augment)), options.image_size, budget)
        self.data_key = fingerprint(source["fingerprint"], options.max_pixels, stages.code_version())
        self.names = [step.name for step in spec.features]
        self.params = feature_params
        self.feature_keys = [fingerprint(self.data_key, name, params, _format_version(name, params))
                             for name, params in zip(self.names, feature_params)]
        # Extractors are fitted on the original images; only extraction sees the augmented ones.
        self.extract_keys = [fingerprint(key, "augment", list(self.augment)) if self.augment else key
                             for key in self.feature_keys]
        self.key = fingerprint(self.extract_keys)
        self._dataset = None
        self._training_dataset = None
        self._extractors = None
        self._features = None

    def dataset(self):
        """The decoded data set (the load stage)."""
        if self._dataset is None:
            with self.cached.clock.bar("load", None) as bar:
                dataset = self.cached.call("load", self.data_key, data=self.data, options=self.options,
                                           progress=bar.update)
            if self.options.strict and dataset.skipped:  # a cached load may come from a run without --strict
                path, reason = dataset.skipped[0]
                raise DatasetError(f"cannot read image {path}: {reason}")
            self._dataset = dataset
        return self._dataset

    def training_dataset(self):
        """The data set with its training split augmented (the same object without augmentation)."""
        if self._training_dataset is None:
            self._training_dataset = augment_training_set(self.dataset(), self.augment)
        return self._training_dataset

    def fitted_extractors(self):
        """Each feature's extractor, fitted on the original training images (cached)."""
        def training_images():
            dataset = self.dataset()
            return {"images": dataset.X_train, "labels": dataset.y_train}

        self._extractors = [self.cached.lazily("fit_extractor", (key, name, params), training_images)
                            for name, params, key in zip(self.names, self.params, self.feature_keys)]
        return self._extractors

    def features(self):
        """Stacked float32 features per split (the extract stage).

        Call :meth:`fitted_extractors` first: extraction uses its extractors.
        An extractor with a mirror permutation (see
        :func:`featpipe.pipeline.augment.mirror_permutation_for`) extracts the
        original images only (cached like a run without augmentation) and
        gets its mirrored training rows by permuting columns. When every
        extractor has one and the head is featpipe's own, the training split
        is a :class:`featpipe.heads.mirrored_rows.MirroredRows`: the head
        uses the permutation itself and the mirrored rows are never
        materialized (half the memory, half the Gram matrix's work).
        """
        if self._features is None:
            permutations = [mirror_permutation_for(extractor, self.augment) if self.augment else None
                            for extractor in self._extractors]
            if self.head_mirrors and permutations and all(p is not None for p in permutations):
                self._features = self._mirrored_features(permutations)
                return self._features
            parts = []
            for name, extractor, feature_key, extract_key, permutation in zip(
                    self.names, self._extractors, self.feature_keys, self.extract_keys, permutations):
                if permutation is None:
                    parts.append(self._extract(name, extractor, extract_key, self.training_dataset))
                else:
                    part = self._extract(name, extractor, feature_key, self.dataset)
                    with self.cached.clock.timed("extract"):
                        parts.append(dict(part, train=append_permuted_rows(part["train"], permutation)))
            self._features = _stack_splits(parts)
        return self._features

    def _mirrored_features(self, permutations):
        """Every split's features, the training split as :class:`MirroredRows` (originals + permutation).

        The permutations of the stacked features are each feature's, shifted
        by the widths of the features before it.
        """
        parts = [self._extract(name, extractor, key, self.dataset)
                 for name, extractor, key in zip(self.names, self._extractors, self.feature_keys)]
        offsets = np.cumsum([0] + [len(permutation) for permutation in permutations[:-1]])
        permutation = np.concatenate([offset + p for offset, p in zip(offsets, permutations)])
        features = _stack_splits(parts)
        features["train"] = MirroredRows(features["train"], permutation)
        return features

    def _extract(self, name, extractor, key, get_dataset):
        """One feature's extract stage (cached under ``key``) on the data set ``get_dataset`` returns."""
        with ExitStack() as stack:
            def images_to_extract():
                dataset = get_dataset()
                total = sum(len(getattr(dataset, f"y_{split}")) for split in SPLITS)
                bar = stack.enter_context(self.cached.clock.bar(f"extract {name}", total))
                return {"extractor": extractor, "dataset": dataset, "options": self.options,
                        "progress": bar.update}

            return self.cached.lazily("extract", (key,), images_to_extract)


class StoreSource:
    """Features read from a finished feature store: nothing is extracted again.

    A store extracted with ``augment`` (its mirrored training images as
    extra training rows) serves only a pipeline with the same ``augment``.
    """

    def __init__(self, spec, path, clock, feature_params):
        with clock.timed("load"):
            self.store = open_store(path)
        stored_augment = list(self.store.manifest["plan"].get("augment", []))
        if stored_augment != list(spec.augment):
            if not stored_augment:
                raise SpecError(f"feature store {path} holds features, not images, so it cannot be augmented "
                                f"({', '.join(spec.augment)}); run on the images, or drop augment")
            raise SpecError(f"feature store {path} holds augmented training rows ({', '.join(stored_augment)}); "
                            f"the pipeline asks for augment = {json.dumps(list(spec.augment))}")
        stored = self.store.feature_names
        wanted = [step.name for step in spec.features]
        if stored != wanted:
            raise SpecError(
                f"feature store {path} holds {'+'.join(stored)} features; "
                f"the pipeline asks for {'+'.join(wanted)}"
            )
        _check_same_parameters(path, spec, feature_params, self.store.manifest)
        self.clock = clock
        self.image_size = int(self.store.manifest["plan"]["image_size"])
        self.key = fingerprint(self.store.manifest["shards"])
        self._dataset = None
        self._features = None
        self._streamed = False
        self._client = None

    def train_bytes(self):
        """Bytes the training split's float32 features take in memory."""
        return int(np.count_nonzero(self.store.splits == "train")) * self.store.features.shape[1] * 4

    def stream(self, client=None):
        """From now on, give the train and test features as row blocks read shard by shard.

        The validation split, which the heads score after every epoch, is
        still read into memory. With a ``distributed.Client``, the heads'
        full-batch losses are summed on its workers
        (:class:`featpipe.pipeline.dask_loss.DistributedBlocks`).
        """
        self._streamed, self._client = True, client

    def dataset(self):
        """Labels and class names per split; the store keeps no images."""
        if self._dataset is None:
            labels = {split: self.store.labels[self.store.splits == split] for split in SPLITS}
            self._dataset = Dataset(
                name=f"store:{self.store.path}", X_train=None, y_train=labels["train"], X_val=None,
                y_val=labels["val"], X_test=None, y_test=labels["test"], classes=self.store.classes,
                fingerprint=self.key,
                skipped=[(entry["path"], entry["reason"]) for entry in self.store.skipped],
            )
        return self._dataset

    training_dataset = dataset

    def fitted_extractors(self):
        """The extractors the store was made with."""
        with self.clock.timed("extract"):
            return [extractor for _, extractor in self.store.load_extractors()]

    def features(self):
        """Each split's stored rows as row blocks, one per shard: read into memory, or streamed after :meth:`stream`.

        In memory, each split is one array kept with the shard boundaries
        (:meth:`featpipe.heads.blocks.RowBlocks.in_memory`), so the heads sum
        their losses over the same blocks in the same order as when they
        stream: both train along the same path to the same weights. The
        validation split, which the heads score after every epoch, is
        always an array.
        """
        if self._features is None:
            blocks = self.store.blocks(verify=False)  # checked when the store was opened
            if self._streamed and self._client is not None:
                blocks = DistributedBlocks(blocks, self._client)
            self._features = {split: blocks.select(self.store.splits == split) for split in SPLITS}
            with self.clock.timed("extract"):
                self._features["val"] = np.asarray(self._features["val"])
                if not self._streamed:
                    self._features = {split: (features if split == "val" else features.in_memory())
                                      for split, features in self._features.items()}
        return self._features
