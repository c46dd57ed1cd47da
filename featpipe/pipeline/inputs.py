"""Where a pipeline's features come from: images to extract, or a feature store.

Both sources give the pipeline the same four things, each fetched only when
a later stage needs it: a key for the data, the fitted extractors, the
feature matrices per split, and the labels (as a
:class:`featpipe.datasets.Dataset`, the training split augmented as the
spec says). An image source runs the cached load
and extract stages; a store source reads what ``featpipe extract`` wrote.
"""

from contextlib import ExitStack

import numpy as np

from featpipe.cache import fingerprint
from featpipe.datasets import SPLITS, Dataset, describe_source
from featpipe.pipeline.augment import augment_training_set
from featpipe.pipeline.spec import SpecError
from featpipe.store.reader import open as open_store


def _stack(arrays):
    return arrays[0] if len(arrays) == 1 else np.hstack(arrays)


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
            self.data_key = describe_source(data, options)["fingerprint"]
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
            with self.cached.clock.bar("load", None) as bar:
                self._dataset = self.cached.call("load", self.data_key, data=self.data, options=self.options,
                                                 progress=bar.update)
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
        """
        if self._features is None:
            parts = []
            for name, extractor, key in zip(self.names, self._extractors, self.extract_keys):
                with ExitStack() as stack:
                    def images_to_extract():
                        dataset = self.training_dataset()
                        total = sum(len(getattr(dataset, f"y_{split}")) for split in SPLITS)
                        bar = stack.enter_context(self.cached.clock.bar(f"extract {name}", total))
                        return {"extractor": extractor, "dataset": dataset, "options": self.options,
                                "progress": bar.update}

                    parts.append(self.cached.lazily("extract", (key,), images_to_extract))
            self._features = {split: _stack([part[split] for part in parts]) for split in SPLITS}
        return self._features


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
        """Each split's stored rows, read into memory."""
        if self._features is None:
            with self.clock.timed("extract"):
                self._features = {split: np.ascontiguousarray(self.store.split(split)[0])
                                  for split in SPLITS}
        return self._features
