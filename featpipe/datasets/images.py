"""Image folders: list them without decoding, and decode any image file to RGB uint8.

:func:`scan_image_folder` walks ``ROOT/<class>/...`` or
``ROOT/{train,test}/<class>/...`` and returns sorted paths and labels without
opening a file; :func:`read_images` decodes a list of paths in parallel
threads, chunk by chunk, into one uint8 batch of ``image_size`` x
``image_size`` RGB images. ``load_dataset`` uses both, and so can a job that
extracts features from a folder too large to hold in memory.

Conversion rules (Pillow):

- 16-bit and 32-bit integer grey (modes ``I;16*``, ``I``) are scaled from
  0-65535 to 0-255 (divided by 257 and rounded, values above 65535 clipped);
  32-bit float grey (mode ``F``) is taken as 0-255 and clipped.
- Grey, bilevel, palette, CMYK and YCbCr images are converted to RGB; alpha
  (RGBA, LA, palette transparency) is dropped, as in
  :func:`featpipe.features.base.check_images`.
- Every image is resized to ``image_size`` x ``image_size`` with
  ``Image.Resampling.BICUBIC`` (antialiased when shrinking), ignoring the
  aspect ratio; JPEGs are first decoded at a reduced DCT scale
  (``Image.draft``: 1/2, 1/4 or 1/8) that still keeps at least twice
  ``image_size`` on both sides, so the antialiased resize has real pixels
  to average and the result stays within half a grey level on average of a
  full decode (benchmarks/RESULTS.md), while memory and time shrink with the
  square of the scale.
- EXIF orientation is applied, so photographs stand upright.
- Multi-frame files (GIF, TIFF) give their first frame.

Memory per image is bounded before anything is decoded: the header gives
the size, and a file that would decode to more than ``max_pixels`` pixels
(:data:`DEFAULT_MAX_PIXELS`; counted after the JPEG draft scale, whatever
the bit depth or palette) is skipped with the reason, like any unreadable
file. Pillow's own decompression-bomb warning is turned into such a skip
too, so it names its file instead of printing a bare ``warnings.warn``.
Dangling symbolic links and link loops are skipped and counted the same way.
"""

import errno
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from joblib import Parallel, delayed
from PIL import Image

from ..parallel import chunk_bounds
from .core import DatasetError, check_image_size
from .options import DEFAULT_MAX_PIXELS

IMAGE_EXTENSIONS = frozenset(
    {".bmp", ".gif", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".pnm", ".ppm", ".tif", ".tiff", ".webp"}
)
"""File name endings (any case) that count as images; other files are ignored."""

RESAMPLING = Image.Resampling.BICUBIC
"""Pillow filter used to bring every image to ``image_size``."""

READ_CHUNK_SIZE = 500
"""Files per decoding task: a fraction of a second of work for 32x32 JPEGs."""


DRAFT_MARGIN = 2
"""A JPEG is decoded at a reduced scale only while it keeps at least this many
times ``image_size`` pixels on each side."""


def _refuse_bomb_warnings():
    """Make Pillow's decompression-bomb warning an error, so the file is skipped and named.

    Installed on every decode rather than once at import: test runners and
    callers that reset the warning filters would otherwise drop it.
    """
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


class ImageTooLargeError(ValueError):
    """An image whose header announces more pixels than ``max_pixels``."""

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_EXIF_ORIENTATION_TAG = 0x0112
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SPLIT_LAYOUT = ("train", "test")
_LAYOUT_HINT = "expected ROOT/<class>/<image> or ROOT/{train,test}/<class>/<image>"


class ImageBatch(NamedTuple):
    """What :func:`read_images` returns.

    Attributes
    ----------
    images : ndarray of uint8, shape (n_ok, image_size, image_size, 3)
        The readable images, in the order of the paths.
    ok : ndarray of bool, shape (n_paths,)
        Which paths were read; ``labels[ok]`` lines labels up with ``images``.
    skipped : list of (str, str)
        ``(path, reason)`` of every unreadable file, in path order.
    """

    images: np.ndarray
    ok: np.ndarray
    skipped: list


def _is_visible(name):
    return not name.startswith(".")


def _is_image_file(name):
    return _is_visible(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _image_files_under(directory):
    """Sorted paths of every image file below ``directory``, at any depth."""
    found = []
    for parent, subdirs, files in os.walk(directory):
        subdirs[:] = sorted(name for name in subdirs if _is_visible(name))
        found.extend(os.path.join(parent, name) for name in sorted(files) if _is_image_file(name))
    return found


def _class_folders(directory):
    """{class name: sorted image paths} for each non-empty sub-folder of ``directory``."""
    with os.scandir(directory) as entries:
        names = sorted(entry.name for entry in entries if entry.is_dir() and _is_visible(entry.name))
    listing = {name: _image_files_under(os.path.join(directory, name)) for name in names}
    return {name: paths for name, paths in listing.items() if paths}


def _has_loose_images(directory):
    with os.scandir(directory) as entries:
        return any(entry.is_file() and _is_image_file(entry.name) for entry in entries)


def is_unlabelled_folder(root):
    """Whether ``root`` is a flat folder of images: image files directly in it, and no class folder holding any."""
    root = Path(root).expanduser()
    if not root.is_dir() or not _has_loose_images(root):
        return False
    if all((root / split).is_dir() for split in _SPLIT_LAYOUT):
        return False
    return not _class_folders(root)


def scan_unlabelled_folder(root):
    """Sorted paths of the image files directly in a flat folder (see :func:`is_unlabelled_folder`).

    Only ``featpipe predict`` and ``featpipe extract --from RUN`` read such
    a folder: they need no labels, the extractors being fitted already.

    Raises
    ------
    DatasetError
        If ``root`` holds no image file directly.
    """
    root = Path(root).expanduser()
    with os.scandir(root) as entries:
        paths = sorted(os.path.join(root, entry.name) for entry in entries
                       if entry.is_file() and _is_image_file(entry.name))
    if not paths:
        raise DatasetError(f"no images found directly in {root}")
    return paths


def scan_image_folder(root):
    """List the images of a class-per-folder tree, without decoding any.

    Two layouts are recognised: ``ROOT/<class>/<image>``, and, when ROOT has
    both a ``train`` and a ``test`` folder, ``ROOT/{train,test}/<class>/<image>``.
    Images may sit at any depth below their class folder. Class names are the
    folder names, sorted; files whose names start with a dot and files without
    an image extension (:data:`IMAGE_EXTENSIONS`) are ignored, as are class
    folders without images.

    Parameters
    ----------
    root : str or Path
        The folder.

    Returns
    -------
    paths : list of str
        Image paths, by split (train first), then class, then sorted path.
    labels : ndarray of int64, shape (n_paths,)
        Index into ``classes`` of each path.
    classes : list of str
        Class names, sorted (from ``train`` in the split layout).
    splits : ndarray of str, shape (n_paths,)
        ``"train"`` or ``"test"`` in the split layout, ``"all"`` otherwise.

    Raises
    ------
    DatasetError
        If ROOT does not exist or is not a folder, holds no images, has fewer
        than two classes, or its test split has a class its train split lacks.

    Examples
    --------
    >>> paths, labels, classes, splits = scan_image_folder("cifar10-jpg")  # doctest: +SKIP
    >>> classes[labels[0]], splits[0]  # doctest: +SKIP
    ('airplane', 'train')
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"image folder not found: {root}")
    if not root.is_dir():
        raise DatasetError(f"not a folder: {root} ({_LAYOUT_HINT})")
    if all((root / split).is_dir() for split in _SPLIT_LAYOUT):
        by_split = {split: _class_folders(root / split) for split in _SPLIT_LAYOUT}
        classes = sorted(by_split["train"])
        unknown = sorted(set(by_split["test"]) - set(classes))
        if unknown:
            raise DatasetError(
                f"the test split of {root} has classes with no training images: {', '.join(unknown)}"
            )
    else:
        by_split = {"all": _class_folders(root)}
        classes = sorted(by_split["all"])
    if not any(by_split.values()):
        loose = ""
        if _has_loose_images(root):
            loose = " (images lie directly in it: put each class in its own folder)"
        raise DatasetError(f"no images found in {root}{loose}; {_LAYOUT_HINT}")
    if len(classes) < 2:
        raise DatasetError(
            f"{root} has only one class ({classes[0]}); a classifier needs at least two class folders"
        )
    class_index = {name: index for index, name in enumerate(classes)}
    paths, labels, splits = [], [], []
    for split, folders in by_split.items():
        for name, class_paths in folders.items():
            paths.extend(class_paths)
            labels.extend([class_index[name]] * len(class_paths))
            splits.extend([split] * len(class_paths))
    return paths, np.asarray(labels, dtype=np.int64), classes, np.asarray(splits)


def _to_rgb(image):
    """Convert a decoded Pillow image of any mode to 8-bit RGB."""
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float32)
        grey = np.clip(np.rint(values / 257), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode == "F":
        grey = np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def decode_image(path, image_size, max_pixels=DEFAULT_MAX_PIXELS):
    """Decode one image file to uint8 RGB of shape (image_size, image_size, 3).

    Parameters
    ----------
    path : str or Path
        The image file.
    image_size : int
        Side of the output.
    max_pixels : int or None
        Refuse, before decoding, an image that would decode to more pixels
        (``None``: no limit of featpipe's own; Pillow's still holds).

    Raises
    ------
    ImageTooLargeError
        When the header announces more than ``max_pixels`` pixels.
    Exception
        Whatever Pillow raises on a missing, unreadable or corrupt file.
    """
    _refuse_bomb_warnings()
    with Image.open(path) as image:
        image.draft("RGB", (DRAFT_MARGIN * image_size, DRAFT_MARGIN * image_size))
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageTooLargeError(
                f"{width}x{height} image ({width * height:,} pixels) is larger than "
                f"--max-pixels {max_pixels:,}; not decoded"
            )
        image.load()
        orientation = 1
        if "exif" in image.info or image.format == "TIFF":  # skip the EXIF parser when there is none
            orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        rgb = _to_rgb(image)
        if rgb.size != (image_size, image_size):
            rgb = rgb.resize((image_size, image_size), RESAMPLING)
        if orientation in _ORIENTATION_TRANSPOSE:
            rgb = rgb.transpose(_ORIENTATION_TRANSPOSE[orientation])
        return np.asarray(rgb)


def _describe_failure(error):
    message = " ".join(str(error).split()) or "no details"
    return f"{type(error).__name__}: {message}"


def _describe_broken_link(path):
    """Why a symbolic link cannot be read, or ``None`` when ``path`` is not a broken link."""
    if not os.path.islink(path):
        return None
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symbolic link loop"
        return f"dangling symbolic link to {os.readlink(path)}"
    return None


def _decode_chunk(paths, image_size, max_pixels=DEFAULT_MAX_PIXELS):
    """Decode ``paths``; return (images, ok mask, [(position, reason)] of failures)."""
    images = np.zeros((len(paths), image_size, image_size, 3), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    failures = []
    for position, path in enumerate(paths):
        broken_link = _describe_broken_link(path)
        if broken_link is not None:
            failures.append((position, broken_link))
            continue
        try:
            images[position] = decode_image(path, image_size, max_pixels)
            ok[position] = True
        except Exception as error:  # Pillow's plugins raise many types on malformed files
            failures.append((position, _describe_failure(error)))
    return images, ok, failures


def read_images(paths, image_size=32, strict=False, n_jobs=None, progress=None,
                max_pixels=DEFAULT_MAX_PIXELS):
    """Decode image files into one RGB uint8 batch, chunk by chunk, in parallel threads.

    Parameters
    ----------
    paths : sequence of str or Path
        Image files, e.g. from :func:`scan_image_folder`.
    image_size : int, default=32
        Height and width of every output image.
    strict : bool, default=False
        Raise at the first unreadable file (in path order) instead of
        skipping it.
    n_jobs : int or None, default=None
        Decoding threads (or workers of the backend an enclosing
        ``joblib.parallel_config`` names): ``None`` or 1 decodes in this
        thread, -1 uses every core. Pillow releases the GIL while it decodes
        and resizes; threads start instantly and return arrays without
        pickling, and measured as fast as processes on 2 cores.
    progress : callable or None
        Called with the number of files done after each chunk of
        :data:`READ_CHUNK_SIZE` files.
    max_pixels : int or None, default=DEFAULT_MAX_PIXELS
        Skip (or, with ``strict``, refuse) a file whose header announces a
        larger image, before decoding it.

    Returns
    -------
    batch : ImageBatch
        ``(images, ok, skipped)``; see :class:`ImageBatch`.

    Raises
    ------
    DatasetError
        With ``strict=True``, naming the first unreadable file and why.

    Examples
    --------
    >>> images, ok, skipped = read_images(["a.png", "b.jpg"], image_size=32)  # doctest: +SKIP
    >>> images.shape, ok  # doctest: +SKIP
    ((2, 32, 32, 3), array([ True,  True]))
    """
    image_size = check_image_size(image_size)
    paths = [os.fspath(path) for path in paths]
    bounds = chunk_bounds(len(paths), READ_CHUNK_SIZE)
    if n_jobs in (None, 1) or len(bounds) <= 1:
        chunks = (_decode_chunk(paths[start:stop], image_size, max_pixels) for start, stop in bounds)
    else:
        parallel = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")
        chunks = parallel(delayed(_decode_chunk)(paths[start:stop], image_size, max_pixels)
                          for start, stop in bounds)
    images = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    skipped = []
    for (start, stop), (chunk_images, chunk_ok, failures) in zip(bounds, chunks):
        if strict and failures:
            position, reason = failures[0]
            raise DatasetError(f"cannot read image {paths[start + position]}: {reason}")
        images[start:stop] = chunk_images
        ok[start:stop] = chunk_ok
        skipped.extend((paths[start + position], reason) for position, reason in failures)
        if progress is not None:
            progress(stop - start)
    return ImageBatch(images if ok.all() else images[ok], ok, skipped)


def resize_batch(images, image_size):
    """Resize a uint8 RGB batch to ``image_size`` with :data:`RESAMPLING`; a no-op at that size."""
    if images.shape[1:3] == (image_size, image_size):
        return images
    resized = np.empty((len(images), image_size, image_size, 3), dtype=np.uint8)
    for index, image in enumerate(images):
        resized[index] = np.asarray(Image.fromarray(image).resize((image_size, image_size), RESAMPLING))
    return resized
