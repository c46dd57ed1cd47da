"""Data sets: the built-in set, CIFAR-10, image folders and .npz files, as uint8 images at one size.

:func:`load_dataset` is the entry point, told how to load by a :class:`LoadOptions`;
:func:`describe_source` names and fingerprints a source without decoding it; :func:`scan_image_folder` and
:func:`read_images` read an image folder lazily, and :func:`assign_splits`
gives each of its images the split :func:`load_dataset` would. Every failure is a
:class:`DatasetError` (a :class:`featpipe.errors.FeatpipeError`) with a one-line message.
"""

from featpipe._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "Dataset": "core",
    "DatasetError": "core",
    "ImageBatch": "images",
    "LoadOptions": "options",
    "SPLITS": "core",
    "UnreadableImageWarning": "core",
    "assign_splits": "splits",
    "describe_source": "loader",
    "describe_unlabelled_folder": "loader",
    "is_unlabelled_folder": "images",
    "load_dataset": "loader",
    "read_images": "images",
    "round_robin_by_class": "splits",
    "scan_image_folder": "images",
    "scan_unlabelled_folder": "images",
})
