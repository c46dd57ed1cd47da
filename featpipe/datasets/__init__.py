"""Data sets: the built-in set, CIFAR-10, image folders and .npz files, as uint8 images at one size.

:func:`load_dataset` is the entry point; :func:`describe_source` names and
fingerprints a source without decoding it; :func:`scan_image_folder` and
:func:`read_images` read an image folder lazily, and :func:`assign_splits`
gives each of its images the split :func:`load_dataset` would. Every failure is a
:class:`DatasetError` (a ``ValueError``) with a one-line message.
"""

from .core import Dataset, DatasetError, UnreadableImageWarning
from .images import ImageBatch, read_images, scan_image_folder
from .sources import describe_source, load_dataset
from .splits import assign_splits, round_robin_by_class

__all__ = [
    "Dataset",
    "DatasetError",
    "ImageBatch",
    "UnreadableImageWarning",
    "assign_splits",
    "describe_source",
    "load_dataset",
    "read_images",
    "round_robin_by_class",
    "scan_image_folder",
]
