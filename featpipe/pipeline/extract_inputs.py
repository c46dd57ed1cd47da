"""The inputs of an extract job: the list of images to extract, read lazily, chunk by chunk.

An image folder is listed (paths, labels, splits) and each chunk's files
are decoded by the worker that extracts it; other sources (the built-in
set, CIFAR-10 batches, ``.npz``) are loaded whole and cut into chunks.
Augmented training images (``augment = ("hflip",)``) are extra inputs at
the end of the list, so they become extra rows of the store. With fitted
extractors, a flat folder of images (no class folders) is read too.
"""

import hashlib
from typing import NamedTuple

import numpy as np

from featpipe.datasets import (
    SPLITS,
    assign_splits,
    describe_source,
    describe_unlabelled_folder,
    is_unlabelled_folder,
    load_dataset,
    read_images,
    scan_image_folder,
)
from featpipe.datasets.npz import count_npz_images
from featpipe.memory_budget import check_in_memory_load, default_budget
from featpipe.pipeline.augment import check_augmentations
from featpipe.pipeline.inputs import KNOWN_IMAGE_COUNTS


def extract_budget(options):
    """Bytes of decoded images the job may hold at once (``options.memory_budget`` or the default)."""
    return default_budget() if options.memory_budget is None else options.memory_budget


class Chunk(NamedTuple):
    """What a worker extracts: file paths (or a uint8 image array), and which paths to mirror (or None)."""

    inputs: object
    mirrored: object


UNLABELLED_CLASS = "unlabelled"
"""The one class of a store extracted from a flat folder of images (no class folders)."""


def describe_inputs(data, options):
    """(:func:`describe_source` of ``data``, the image paths of a flat folder or ``None``).

    A flat folder of images without class folders is a valid input only
    with fitted extractors (``options.from_run``: ``featpipe predict``,
    ``featpipe extract --from``), which need no labels; its images all go
    to the test split of the store, with the one class ``"unlabelled"``.
    """
    if options.from_run is not None and data is not None and is_unlabelled_folder(data):
        return describe_unlabelled_folder(data, options)
    return describe_source(data, options), None


class ExtractInputs:
    """The job's inputs: file paths read lazily, or an in-memory image array.

    With ``options.augment = ("hflip",)`` every training input appears a
    second time at the end of the list, flagged in ``mirrored``: its
    image is read and mirrored left to right before extraction.
    """

    def __init__(self, data, options):
        self.source, unlabelled_paths = describe_inputs(data, options)
        self.images = None
        self.skipped_at_load = []
        if unlabelled_paths is not None:
            self.paths, self.classes = unlabelled_paths, [UNLABELLED_CLASS]
            self.labels = np.zeros(len(self.paths), dtype=np.int64)
            self.splits = np.full(len(self.paths), "test")
        elif self.source["kind"] == "folder":
            self.paths, self.labels, self.classes, scanned = scan_image_folder(self.source["path"])
            self.splits = assign_splits(self.labels, scanned, options.val_size, options.seed)
        else:
            self._load(data, options)
        self.mirrored = np.zeros(len(self.paths), dtype=bool)
        if check_augmentations(options.augment):
            self._append_mirrored()

    def _append_mirrored(self):
        """Each training input once more, flagged as mirrored, after all the others."""
        train = np.flatnonzero(self.splits == "train")
        self.paths = list(self.paths) + [self.paths[index] for index in train]
        self.labels = np.concatenate([self.labels, self.labels[train]])
        self.splits = np.concatenate([self.splits, self.splits[train]])
        self.mirrored = np.concatenate([self.mirrored, np.ones(len(train), dtype=bool)])
        if self.images is not None:
            self.images = np.concatenate([self.images, self.images[train][:, :, ::-1]])

    def _load(self, data, options):
        """Data that is not a folder of files: loaded whole, then cut into chunks."""
        n_images = self.source["n_images"] or (count_npz_images(self.source["path"]) if self.source["kind"] == "npz"
                                               else KNOWN_IMAGE_COUNTS.get(self.source["kind"]))
        if n_images is not None:
            check_in_memory_load(n_images * (1 + len(options.augment)), options.image_size, extract_budget(options),
                                 what=f"load of {self.source['name']}",
                                 advice="lower --image-size, or extract from a folder of image files, which streams")
        dataset = load_dataset(data, options)
        self.images = np.concatenate([getattr(dataset, f"X_{split}") for split in SPLITS])
        self.labels = np.concatenate([getattr(dataset, f"y_{split}") for split in SPLITS])
        sizes = [len(getattr(dataset, f"y_{split}")) for split in SPLITS]
        self.splits = np.repeat(np.asarray(SPLITS), sizes)
        self.paths = [f"{split}/{index}" for split, size in zip(SPLITS, sizes) for index in range(size)]
        self.classes = list(dataset.classes)
        self.skipped_at_load = [{"path": path, "reason": reason} for path, reason in dataset.skipped]

    def __len__(self):
        return len(self.paths)

    def digest(self):
        """sha256 of the input list: paths, labels and splits, in order."""
        digest = hashlib.sha256("\n".join(self.paths).encode("utf-8"))
        digest.update(self.labels.astype("<i8").tobytes())
        digest.update("\n".join(self.splits.tolist()).encode("utf-8"))
        if self.mirrored.any():
            digest.update(self.mirrored.tobytes())
        return digest.hexdigest()

    def chunk(self, start, stop):
        """What a worker needs for inputs ``start:stop``: their paths (and which to mirror), or their images."""
        if self.images is not None:
            return Chunk(self.images[start:stop], None)
        mirrored = self.mirrored[start:stop]
        return Chunk(self.paths[start:stop], mirrored if mirrored.any() else None)

    def read(self, indices, options):
        """Images and labels of the readable inputs among ``indices``."""
        if self.images is not None:
            return self.images[indices], self.labels[indices]
        batch = read_images([self.paths[index] for index in indices], options.image_size, strict=options.strict,
                            n_jobs=-1, max_pixels=options.max_pixels)
        return batch.images, self.labels[indices][batch.ok]
