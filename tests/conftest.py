"""Shared fixtures: small data sets and feature shards the tests make (helpers live in ``helpers.py``)."""

import numpy as np
import pytest

from helpers import make_colour_images


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
