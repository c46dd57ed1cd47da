"""Shared fixtures: small data sets and feature shards the tests make (helpers live in ``helpers.py``).

Tests marked ``cifar`` are skipped, with the reason, when the CIFAR-10 folder is absent.
"""

import numpy as np
import pytest

from helpers import CIFAR_MISSING, cifar_available, make_colour_images


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``cifar`` when the CIFAR-10 folder is absent (a fresh clone)."""
    if cifar_available():
        return
    skip = pytest.mark.skip(reason=CIFAR_MISSING)
    for item in items:
        if item.get_closest_marker("cifar") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def small_npz(tmp_path_factory):
    """A three-class .npz data set: 180 train and 60 test images of 32x32."""
    X_train, y_train = make_colour_images(60, size=32, seed=1)
    X_test, y_test = make_colour_images(20, size=32, seed=2)
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
             classes=np.array(["red", "green", "blue"]))
    return path


@pytest.fixture
def arrays():
    """Four float32 shards of 5 columns, one of them empty."""
    rng = np.random.default_rng(0)
    return [rng.standard_normal((rows, 5)).astype(np.float32) for rows in (4, 0, 7, 3)]


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Two tiny trained run folders that the service tests serve (built once per session)."""
    from serve_support import train_runs

    return train_runs(tmp_path_factory.getbasetemp() / "serve-runs")


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    """A few small image files, as a client of the service would upload them."""
    from serve_support import write_image_files

    return write_image_files(tmp_path_factory.mktemp("serve-images"))
