"""The built-in data set: ten classes of random crops of scikit-image's sample photographs.

It needs no download: the seven source images are files inside the installed
scikit-image package (``skimage/data/*.png|jpg``), read with Pillow. Each
class is one source image, and each sample a random square crop of it,
resized to ``image_size`` with bicubic filtering:

========================  =====================================  ===========
classes                   source                                 crop side
========================  =====================================  ===========
brick-amber, brick-teal   ``brick.png`` (grey texture), tinted    15-50%
grass-amber, grass-teal   ``grass.png`` (grey texture), tinted    15-50%
gravel-amber, gravel-teal ``gravel.png`` (grey texture), tinted   15-50%
cat                       ``chelsea.png`` (colour photograph)     40-90%
coffee                    ``coffee.png`` (colour photograph)      40-90%
rocket                    ``rocket.jpg`` (colour photograph)      40-90%
astronaut                 ``astronaut.png`` (colour photograph)   40-90%
========================  =====================================  ===========

(crop side as a share of the source's shorter side, uniform; position
uniform). The grey textures are tinted amber or teal with colours of equal
luminance, so each texture comes in two colours that a grey-level feature
cannot tell apart, and the three textures of one tint share their colour, so a
colour feature alone cannot tell those apart: the task needs colour and
texture together. Every sample then gets a random saturation of its tint
(55-100%), a gain per channel (0.9-1.1), a brightness gain (0.7-1.3) and a
horizontal flip with probability 1/2.

There are 200 samples per class: the first 150 drawn are training images and
the last 50 test images, 1,500 / 500 in all (``load_dataset`` then holds 150
of the training images out for validation). Train and test crops are drawn
independently from the same seven source images, so the set measures
robustness to position, scale, flips and colour jitter, not generalisation
to new objects. Everything follows from ``seed``: the same seed gives the
same images, bit for bit, for a given scikit-image and Pillow.
"""

from importlib import resources

import numpy as np
from PIL import Image

from .core import DatasetError
from .images import RESAMPLING

VERSION = 1
"""Bumped whenever the recipe changes; part of the fingerprint."""

N_TRAIN_PER_CLASS = 150
N_TEST_PER_CLASS = 50

_TINTS = {"amber": (1.0, 0.62, 0.22), "teal": (0.18, 0.68, 0.78)}
_LUMINANCE = np.array([0.2125, 0.7154, 0.0721])
_TEXTURES = ("brick", "grass", "gravel")
_PHOTOS = {"cat": "chelsea.png", "coffee": "coffee.png", "rocket": "rocket.jpg", "astronaut": "astronaut.png"}
_TEXTURE_CROP = (0.15, 0.5)
_PHOTO_CROP = (0.4, 0.9)
_SATURATION = (0.55, 1.0)
_CHANNEL_GAIN = (0.9, 1.1)
_BRIGHTNESS = (0.7, 1.3)
_RECIPE_STREAM = 3

CLASSES = [f"{texture}-{tint}" for texture in _TEXTURES for tint in _TINTS] + list(_PHOTOS)
"""Class names, in label order."""


def _source(file_name):
    """One sample image shipped inside scikit-image, as a Pillow image (L or RGB)."""
    path = resources.files("skimage.data").joinpath(file_name)
    if not path.is_file():
        raise DatasetError(
            f"the built-in data set needs {file_name} from scikit-image's package data, "
            "and this installation lacks it"
        )
    with path.open("rb") as handle, Image.open(handle) as image:
        return image.convert("L" if image.mode == "L" else "RGB")


def _crops(source, n_crops, side_range, image_size, rng):
    """``n_crops`` random square crops of ``source``, resized: uint8 (n, S, S[, 3])."""
    width, height = source.size
    short_side = min(width, height)
    sides = np.rint(rng.uniform(*side_range, size=n_crops) * short_side).astype(int)
    lefts = np.floor(rng.random(n_crops) * (width - sides + 1)).astype(int)
    tops = np.floor(rng.random(n_crops) * (height - sides + 1)).astype(int)
    boxes = np.stack([lefts, tops, lefts + sides, tops + sides], axis=1)
    size = (image_size, image_size)
    resized = [source.resize(size, RESAMPLING, box=tuple(box), reducing_gap=2.0) for box in boxes.tolist()]
    return np.stack([np.asarray(crop) for crop in resized])


def _tint(grey, tint_name, rng):
    """Colour grey crops (n, S, S) with a jittered-saturation tint of fixed luminance."""
    tint = np.asarray(_TINTS[tint_name]) / (_LUMINANCE @ _TINTS[tint_name])
    saturation = rng.uniform(*_SATURATION, size=(len(grey), 1))
    colours = saturation * tint + (1 - saturation)
    return grey[..., np.newaxis].astype(np.float32) * colours[:, np.newaxis, np.newaxis, :].astype(np.float32)


def _jitter(images, rng):
    """Per-channel gain, brightness gain and random horizontal flips, then back to uint8."""
    n_images = len(images)
    gains = rng.uniform(*_CHANNEL_GAIN, size=(n_images, 3)) * rng.uniform(*_BRIGHTNESS, size=(n_images, 1))
    jittered = images * gains[:, np.newaxis, np.newaxis, :].astype(np.float32)
    flip = rng.random(n_images) < 0.5
    jittered[flip] = jittered[flip, :, ::-1]
    return np.clip(np.rint(jittered), 0, 255).astype(np.uint8)


def make_builtin(image_size=32, seed=0):
    """Generate the built-in data set.

    Parameters
    ----------
    image_size : int, default=32
        Height and width of every image.
    seed : int, default=0
        Seed of every random choice.

    Returns
    -------
    X_train : ndarray of uint8, shape (1500, image_size, image_size, 3)
    y_train : ndarray of int64, shape (1500,)
    X_test : ndarray of uint8, shape (500, image_size, image_size, 3)
    y_test : ndarray of int64, shape (500,)
    classes : list of str
        :data:`CLASSES`.

    Examples
    --------
    >>> X_train, y_train, X_test, y_test, classes = make_builtin(seed=0)
    >>> X_train.shape, len(classes)
    ((1500, 32, 32, 3), 10)
    """
    rng = np.random.default_rng([seed, _RECIPE_STREAM])
    n_per_class = N_TRAIN_PER_CLASS + N_TEST_PER_CLASS
    per_class = []
    for texture in _TEXTURES:
        source = _source(f"{texture}.png")
        for tint_name in _TINTS:
            grey = _crops(source, n_per_class, _TEXTURE_CROP, image_size, rng)
            per_class.append(_tint(grey, tint_name, rng))
    for file_name in _PHOTOS.values():
        photo_crops = _crops(_source(file_name), n_per_class, _PHOTO_CROP, image_size, rng)
        per_class.append(photo_crops.astype(np.float32))
    stacked = np.stack(per_class)
    images = _jitter(stacked.reshape(-1, image_size, image_size, 3), rng).reshape(stacked.shape)
    labels = np.repeat(np.arange(len(CLASSES), dtype=np.int64)[:, np.newaxis], n_per_class, axis=1)
    train, test = slice(0, N_TRAIN_PER_CLASS), slice(N_TRAIN_PER_CLASS, None)
    flat = (-1, image_size, image_size, 3)
    return (
        images[:, train].reshape(flat),
        labels[:, train].ravel(),
        images[:, test].reshape(flat),
        labels[:, test].ravel(),
        list(CLASSES),
    )
