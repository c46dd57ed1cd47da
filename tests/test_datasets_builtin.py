"""The built-in data set: shapes, balance, determinism, and that colour and texture both matter."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from featpipe.datasets import load_dataset
from featpipe.datasets.builtin import CLASSES, make_builtin

LUMINANCE = np.array([0.2125, 0.7154, 0.0721])


@pytest.fixture(scope="module")
def builtin_arrays():
    return make_builtin(image_size=32, seed=0)


def test_shapes_balance_and_types(builtin_arrays):
    X_train, y_train, X_test, y_test, classes = builtin_arrays
    assert classes == CLASSES and len(classes) == 10
    assert X_train.shape == (1500, 32, 32, 3) and X_test.shape == (500, 32, 32, 3)
    assert X_train.dtype == np.uint8 and y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y_train), np.full(10, 150))
    np.testing.assert_array_equal(np.bincount(y_test), np.full(10, 50))
    assert X_train.std() > 20  # real images, not blank


def test_same_seed_same_images_other_seed_other_images(builtin_arrays):
    again = make_builtin(image_size=32, seed=0)
    for expected, actual in zip(builtin_arrays[:4], again[:4]):
        np.testing.assert_array_equal(expected, actual)
    other = make_builtin(image_size=32, seed=1)
    assert np.mean(other[0] != builtin_arrays[0]) > 0.5


def test_load_dataset_splits_builtin_and_image_size():
    dataset = load_dataset("builtin", image_size=20, seed=0)
    assert dataset.name == "builtin"
    assert dataset.X_train.shape == (1350, 20, 20, 3)
    assert dataset.X_val.shape == (150, 20, 20, 3)
    assert dataset.X_test.shape == (500, 20, 20, 3)
    np.testing.assert_array_equal(np.bincount(dataset.y_val), np.full(10, 15))
    assert dataset.skipped == []


def _mean_colour(images):
    return images.reshape(len(images), -1, 3).mean(axis=1)


def _grey_texture(images):
    grey = images.astype(np.float64) @ LUMINANCE
    bins = np.minimum(grey // 16, 15).astype(np.int64).reshape(len(images), -1)
    histograms = (bins[:, :, np.newaxis] == np.arange(16)).sum(axis=1)
    gradients = [np.abs(np.diff(grey, axis=axis)).mean(axis=(1, 2)) for axis in (1, 2)]
    return np.column_stack([histograms, *gradients, grey.mean(axis=(1, 2)), grey.std(axis=(1, 2))])


@pytest.fixture(scope="module")
def feature_sets(builtin_arrays):
    X_train, y_train, X_test, y_test, _ = builtin_arrays
    sets = {name: (function(X_train), function(X_test)) for name, function in
            (("colour", _mean_colour), ("texture", _grey_texture))}
    sets["both"] = tuple(np.column_stack([sets["colour"][index], sets["texture"][index]]) for index in (0, 1))
    return sets, y_train, y_test


def _accuracy(feature_sets, name, classes):
    sets, y_train, y_test = feature_sets
    train, test = np.isin(y_train, classes), np.isin(y_test, classes)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(sets[name][0][train], y_train[train])
    return model.score(sets[name][1][test], y_test[test])


def test_colour_and_texture_are_both_needed(feature_sets):
    brick_amber, brick_teal = CLASSES.index("brick-amber"), CLASSES.index("brick-teal")
    amber = [CLASSES.index(f"{texture}-amber") for texture in ("brick", "grass", "gravel")]
    # same texture, two tints: colour separates them, grey-level texture barely does
    assert _accuracy(feature_sets, "colour", [brick_amber, brick_teal]) > 0.95
    assert _accuracy(feature_sets, "texture", [brick_amber, brick_teal]) < 0.7
    # one tint, three textures: texture separates them, mean colour barely does
    assert _accuracy(feature_sets, "texture", amber) > 0.75
    assert _accuracy(feature_sets, "colour", amber) < 0.55
    everything = list(range(10))
    both = _accuracy(feature_sets, "both", everything)
    assert both > _accuracy(feature_sets, "colour", everything) + 0.15
    assert both > _accuracy(feature_sets, "texture", everything) + 0.1
