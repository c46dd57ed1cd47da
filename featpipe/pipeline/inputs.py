"""Where a pipeline's features come from: images to extract, or a feature store.

Both sources give the pipeline the same four things, each fetched only when
a later stage needs it: a key for the data, the fitted extractors, the
feature matrices per split, and the labels (as a
:class:`featpipe.datasets.Dataset`, the training split augmented as the
spec says). An image source runs the cached load
and extract stages; a store source reads what ``featpipe extract`` wrote.
"""

import numpy as np

from featpipe.cache import fingerprint
from featpipe.datasets import Dataset, describe_source
from featpipe.pipeline import stages
from featpipe.pipeline.augment import append_permuted_rows, augment_training_set, mirror_permutation_for
from featpipe.pipeline.spec import SpecError
from featpipe.store.reader import open as open_store


def _stack(arrays):
    return arrays[0] if len(arrays) == 1 else np.hstack(arrays)


class ImageSource:
    """Features extracted from a data set of images, stage by cached stage."""

    def __init__(self, spec, data, image_size, val_size, seed, strict, cache_dir,
                 n_jobs, chunk_size, feature_params, cached, clock):
        self.cached, self.clock = cached, clock
        self.load_args = (data, image_size, val_size, seed, strict, cache_dir)
        self.n_jobs, self.chunk_size = n_jobs, chunk_size
        with clock.timed("load"):
            self.data_key = describe_source(data, image_size=image_size, val_size=val_size,
                                            seed=seed)["fingerprint"]
        self.names = [step.name for step in spec.features]
        self.params = feature_params
        self.augment = spec.augment
        self.feature_keys = [fingerprint(self.data_key, name, params)
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
            with self.clock.bar("load", None) as bar:
                self._dataset = self.clock.run("load", self.cached["load"], self.data_key,
                                               *self.load_args, bar.update)
        return self._dataset

    def training_dataset(self):
        """The data set with its training split augmented (the same object without augmentation)."""
        if self._training_dataset is None:
            self._training_dataset = augment_training_set(self.dataset(), self.augment)
        return self._training_dataset

    def fitted_extractors(self):
        """Each feature's extractor, fitted on the original training images (cached)."""
        fit = self.cached["fit_extractor"]
        fitted = []
        for name, params, key in zip(self.names, self.params, self.feature_keys):
            if fit.check_call_in_cache(key, name, params, None, None):
                fitted.append(self.clock.run("extract", fit, key, name, params, None, None))
            else:
                dataset = self.dataset()
                fitted.append(self.clock.run("extract", fit, key, name, params,
                                             dataset.X_train, dataset.y_train))
        self._extractors = fitted
        return fitted

    def features(self):
        """Stacked float32 features per split (the extract stage).

        Call :meth:`fitted_extractors` first: extraction uses its extractors.
        An extractor with a mirror permutation (see
        :func:`featpipe.augment.mirror_permutation_for`) extracts the
        original images only (cached like a run without augmentation) and
        gets its mirrored training rows by permuting columns.
        """
        if self._features is None:
            parts = []
            for name, extractor, feature_key, extract_key in zip(
                    self.names, self._extractors, self.feature_keys, self.extract_keys):
                permutation = mirror_permutation_for(extractor, self.augment) if self.augment else None
                if permutation is None:
                    parts.append(self._extract(name, extractor, extract_key, self.training_dataset))
                else:
                    part = self._extract(name, extractor, feature_key, self.dataset)
                    with self.clock.timed("extract"):
                        parts.append(dict(part, train=append_permuted_rows(part["train"], permutation)))
            self._features = {split: _stack([part[split] for part in parts]) for split in stages.SPLITS}
        return self._features

    def _extract(self, name, extractor, key, get_dataset):
        """One feature's extract stage (cached under ``key``) on the data set ``get_dataset`` returns."""
        extract = self.cached["extract"]
        dataset = None
        if not extract.check_call_in_cache(key, None, None, None, None, None):
            dataset = get_dataset()
        total = None if dataset is None else sum(len(getattr(dataset, f"y_{split}")) for split in stages.SPLITS)
        with self.clock.bar(f"extract {name}", total) as bar:
            return self.clock.run("extract", extract, key, extractor, dataset, self.n_jobs, self.chunk_size,
                                  bar.update)


class StoreSource:
    """Features read from a finished feature store: nothing is extracted again."""

    def __init__(self, spec, path, clock):
        if spec.augment:
            raise SpecError(f"feature store {path} holds features, not images, so it cannot be augmented "
                            f"({', '.join(spec.augment)}); run on the images, or drop augment")
        with clock.timed("load"):
            self.store = open_store(path)
        stored = self.store.feature_names
        wanted = [step.name for step in spec.features]
        if stored != wanted:
            raise SpecError(
                f"feature store {path} holds {'+'.join(stored)} features; "
                f"the pipeline asks for {'+'.join(wanted)}"
            )
        self.clock = clock
        self.image_size = int(self.store.manifest["plan"]["image_size"])
        self.key = fingerprint(self.store.manifest["shards"])
        self._dataset = None
        self._features = None

    def dataset(self):
        """Labels and class names per split; the store keeps no images."""
        if self._dataset is None:
            labels = {split: self.store.labels[self.store.splits == split] for split in stages.SPLITS}
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
        """Each split's stored rows, read into memory."""
        if self._features is None:
            with self.clock.timed("extract"):
                self._features = {split: np.ascontiguousarray(self.store.split(split)[0])
                                  for split in stages.SPLITS}
        return self._features
