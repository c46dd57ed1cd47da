"""The blocked in-place Cholesky factor and solve against scipy's on matrices small enough for it."""

import numpy as np
import pytest
from scipy.linalg import cho_factor, cho_solve

from featpipe.heads.cholesky import cholesky_in_place, cholesky_solve


def _spd(n, seed):
    rows = np.random.default_rng(seed).standard_normal((n + 20, n))
    return rows.T @ rows / n + 0.01 * np.eye(n)


@pytest.mark.parametrize(("n", "block"), [(1, 4), (7, 3), (64, 64), (300, 64), (301, 100), (500, 2048)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_factor_and_solve_equal_scipys(n, block, order):
    matrix = _spd(n, seed=n)
    rhs = np.random.default_rng(1).standard_normal((n, 3))
    # Only the upper triangle may be read: fill the lower one with noise.
    work = np.array(np.triu(matrix) + np.tril(np.random.default_rng(2).standard_normal((n, n)), -1), order=order)
    factor = cholesky_in_place(work, block)
    assert factor is work
    reference = cho_factor(matrix, lower=False)[0]
    np.testing.assert_allclose(np.triu(factor), np.triu(reference), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cholesky_solve(factor, rhs, block), cho_solve((reference, False), rhs),
                               rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(matrix @ cholesky_solve(factor, rhs, block), rhs, atol=1e-8)


def test_a_matrix_that_is_not_positive_definite_is_refused():
    matrix = _spd(50, seed=0)
    matrix[30, 30] = -1.0
    with pytest.raises(np.linalg.LinAlgError):
        cholesky_in_place(matrix, block=16)
