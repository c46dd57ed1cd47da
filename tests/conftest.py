"""Shared fixtures: small data sets the tests make, and the CIFAR-10 folder's location."""

import os
from pathlib import Path

import numpy as np
import pytest

from featpipe.store import SHARDS_DIR

CIFAR_FOLDER = Path(os.environ.get("FEATPIPE_CIFAR_FOLDER")
                    or Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpg")
"""The shared CIFAR-10 JPEG folder beside the checkout; FEATPIPE_CIFAR_FOLDER overrides it (git worktrees)."""


def make_colour_images(n_per_class, n_classes=3, size=16, seed=0):
    """Noisy images whose dominant channel is their class: easy, but not trivial."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    images = rng.integers(0, 200, size=(len(labels), size, size, 3), dtype=np.uint8)
    images[np.arange(len(labels)), :, :, labels % 3] += 55
    return images, labels


@pytest.fixture(scope="session")
def small_npz(tmp_path_factory):
    """A three-class .npz data set: 180 train and 60 test images of 32x32."""
    X_train, y_train = make_colour_images(60, size=32, seed=1)
    X_test, y_test = make_colour_images(20, size=32, seed=2)
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
             classes=np.array(["red", "green", "blue"]))
    return path


def link_cifar_folder(root, n_train, n_test, n_classes=3, corrupt=False):
    """A small ROOT/{train,test}/<class>/ folder of CIFAR-10 JPEGs (symbolic links), optionally with a corrupt file."""
    for split, count in (("train", n_train), ("test", n_test)):
        for name in sorted(os.listdir(CIFAR_FOLDER / split))[:n_classes]:
            (root / split / name).mkdir(parents=True)
            for file_name in sorted(os.listdir(CIFAR_FOLDER / split / name))[:count]:
                os.symlink(CIFAR_FOLDER / split / name / file_name, root / split / name / file_name)
    if corrupt:
        (root / "train" / sorted(os.listdir(root / "train"))[1] / "0003_bad.jpg").write_bytes(b"\xff\xd8 truncated")
    return root


def read_shard_bytes(store_dir):
    """{file name: bytes} of every feature shard of a store folder."""
    return {path.name: path.read_bytes() for path in sorted((Path(store_dir) / SHARDS_DIR).glob("*.npy"))}
