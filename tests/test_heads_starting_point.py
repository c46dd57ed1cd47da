"""The least-squares start: its Gram matrix panels agree with X^T X, its weights with a direct ridge solve."""

import numpy as np
import pytest

from featpipe.heads import cholesky, starting_point
from featpipe.heads.blocks import ArrayBlocks
from featpipe.heads.starting_point import least_squares_weights


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gram_matrices_filled_by_panels_equal_x_transpose_x(monkeypatch, dtype):
    rows = np.random.default_rng(0).normal(size=(50, 23)).astype(dtype)
    monkeypatch.setattr(starting_point, "_GRAM_PANEL", 5)
    gram = np.ones((23, 23))
    starting_point._add_to_gram(gram, rows)
    upper = np.triu_indices(23)
    exact = rows.astype(np.float64).T @ rows.astype(np.float64) + 1.0
    np.testing.assert_allclose(gram[upper], exact[upper], rtol=1e-12 if dtype == np.float64 else 1e-5)


def _direct_ridge(X, y, n_classes, reg, target):
    """The normal equations of the centred data, solved in float64 by numpy."""
    X = X.astype(np.float64)
    targets = np.where(np.arange(n_classes) == y[:, None], target, -target)
    mean, target_mean = X.mean(axis=0), targets.mean(axis=0)
    centred = X - mean
    weights = np.linalg.solve(centred.T @ centred / len(X) + reg * np.eye(X.shape[1]),
                              centred.T @ (targets - target_mean) / len(X))
    return np.vstack([weights, target_mean - mean @ weights])


@pytest.mark.parametrize("panel", [2048, 7])
def test_the_least_squares_start_is_the_direct_ridge_solution(monkeypatch, panel):
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(300, 40)) + rng.normal(size=40)).astype(np.float32)
    y = rng.integers(0, 4, size=300)
    monkeypatch.setattr(starting_point, "_GRAM_PANEL", panel)
    reference = _direct_ridge(X, y, 4, reg=0.1, target=1.0)
    np.testing.assert_allclose(least_squares_weights(X, y, 4, reg=0.1, target=1.0), reference, rtol=1e-4, atol=1e-5)
    blocks = ArrayBlocks(X, block_rows=64)
    np.testing.assert_allclose(least_squares_weights(blocks, y, 4, reg=0.1, target=1.0), reference,
                               rtol=1e-4, atol=1e-5)


def test_wide_float32_features_solve_in_single_precision_to_the_same_start(monkeypatch):
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(500, 60)) + rng.normal(size=60)).astype(np.float32)
    y = rng.integers(0, 5, size=500)
    monkeypatch.setattr(starting_point, "_SINGLE_PRECISION_WIDTH", 50)
    monkeypatch.setattr(starting_point, "_GRAM_PANEL", 16)
    grams = []
    monkeypatch.setattr(starting_point, "cholesky_in_place",
                        lambda gram: grams.append(gram.dtype) or cholesky.cholesky_in_place(gram))
    weights = least_squares_weights(X, y, 5, reg=0.05, target=1.0)
    assert grams == [np.float32]
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, _direct_ridge(X, y, 5, reg=0.05, target=1.0), rtol=1e-3, atol=1e-4)
    least_squares_weights(X.astype(np.float64), y, 5, reg=0.05, target=1.0)
    assert grams[-1] == np.float64


@pytest.mark.parametrize("n_features", [25_600])
def test_the_width_that_crashed_scipys_dsyrk_accumulates(n_features):
    rows = np.random.default_rng(2).normal(size=(128, n_features))
    gram = np.zeros((n_features, n_features))
    starting_point._add_to_gram(gram, rows)
    probe = np.array([0, 4_000, n_features - 1])
    np.testing.assert_allclose(np.triu(gram[probe[:, None], probe]), np.triu(rows[:, probe].T @ rows[:, probe]),
                               rtol=1e-10)
