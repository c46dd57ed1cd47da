"""Shared fixtures: small data sets the tests make, and the CIFAR-10 folder's location."""

from pathlib import Path

import numpy as np
import pytest

CIFAR_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpg"


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
