"""The least-squares start's Gram matrix: dsyrk and the panel products past its width agree with X^T X."""

import numpy as np
import pytest

from featpipe.heads import starting_point
from featpipe.heads.starting_point import least_squares_weights


def test_wide_gram_matrices_filled_by_panels_equal_x_transpose_x(monkeypatch):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(50, 23))
    monkeypatch.setattr(starting_point, "_SYRK_MAX_COLUMNS", 8)
    monkeypatch.setattr(starting_point, "_GRAM_PANEL", 5)
    gram = starting_point._add_to_gram(np.ones((23, 23), order="F"), rows)
    upper = np.triu_indices(23)
    np.testing.assert_allclose(gram[upper], (rows.T @ rows + 1.0)[upper], rtol=1e-12)


def test_the_least_squares_start_is_the_same_through_either_gram_path(monkeypatch):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 40)).astype(np.float32)
    y = rng.integers(0, 4, size=300)
    by_syrk = least_squares_weights(X, y, 4, reg=0.1, target=1.0)
    monkeypatch.setattr(starting_point, "_SYRK_MAX_COLUMNS", 16)
    monkeypatch.setattr(starting_point, "_GRAM_PANEL", 7)
    by_panels = least_squares_weights(X, y, 4, reg=0.1, target=1.0)
    np.testing.assert_allclose(by_panels, by_syrk, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(by_panels, np.zeros_like(by_panels))


@pytest.mark.parametrize("n_features", [25_600])
def test_the_width_that_crashed_scipys_dsyrk_accumulates(n_features):
    rows = np.random.default_rng(2).normal(size=(128, n_features))
    gram = starting_point._add_to_gram(np.zeros((n_features, n_features), order="F"), rows)
    probe = np.array([0, 4_000, n_features - 1])
    np.testing.assert_allclose(np.triu(gram[probe[:, None], probe]), np.triu(rows[:, probe].T @ rows[:, probe]),
                               rtol=1e-10)
