"""MirroredRows: training on [X; X P] through the permutation equals training on the materialized rows."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featpipe.heads.blocks import ArrayBlocks, full_batch_loss
from featpipe.heads.linear import LinearSVM, Softmax
from featpipe.heads.losses import svm_loss
from featpipe.heads.mirrored_rows import MirroredRows, add_mirrored_gram, fill_lower_triangle
from featpipe.heads.starting_point import least_squares_weights


def _involution(n_features, rng):
    """A random permutation that is its own inverse, with some fixed points (like a mirror's middle column)."""
    order = rng.permutation(n_features)
    permutation = np.arange(n_features)
    n_pairs = n_features // 3
    first, second = order[:n_pairs], order[n_pairs:2 * n_pairs]
    permutation[first], permutation[second] = second, first
    return permutation


def _problem(n_rows=150, n_features=9, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n_rows, n_features)) + rng.standard_normal(n_features)).astype(np.float32)
    y = rng.integers(0, n_classes, n_rows)
    return X, y, _involution(n_features, rng)


def test_rows_are_the_originals_then_their_permutations():
    X, _, permutation = _problem()
    mirrored = MirroredRows(X, permutation, block_rows=40)
    assert mirrored.shape == (300, 9)
    assert mirrored.n_blocks == 8
    np.testing.assert_array_equal(np.asarray(mirrored), np.vstack([X, X[:, permutation]]))
    np.testing.assert_array_equal(mirrored.take([3, 160, 299]),
                                  np.vstack([X[3], X[10, permutation], X[149, permutation]]))
    over_blocks = MirroredRows(ArrayBlocks(X, 64), permutation)
    np.testing.assert_array_equal(np.asarray(over_blocks), np.vstack([X, X[:, permutation]]))


@pytest.mark.parametrize("permutation, message", [
    ([0, 1, 1], "permutation of the 3 columns"),
    ([0, 1], "permutation of the 3 columns"),
    ([1, 2, 0], "its own inverse"),
])
def test_a_permutation_that_is_not_a_mirror_is_refused(permutation, message):
    with pytest.raises(ValueError, match=message):
        MirroredRows(np.zeros((2, 3), dtype=np.float32), permutation)


@settings(max_examples=25, deadline=None)
@given(n_features=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
def test_add_mirrored_gram_adds_the_permuted_matrix(n_features, seed):
    rng = np.random.default_rng(seed)
    permutation = _involution(n_features, rng)
    X = rng.standard_normal((7, n_features))
    gram = X.T @ X
    expected = gram + gram[np.ix_(permutation, permutation)]
    upper = np.asfortranarray(np.triu(gram))
    fill_lower_triangle(upper, rows_per_step=3)
    np.testing.assert_array_equal(upper, gram)  # X.T @ X is exactly symmetric
    add_mirrored_gram(upper, permutation)
    np.testing.assert_allclose(upper, expected, rtol=1e-12, atol=1e-12)


def test_mirrored_loss_equals_the_loss_of_the_materialized_rows():
    X, y, permutation = _problem()
    y_both = np.concatenate([y, (y + 1) % 3])  # the mirrors may carry other labels
    full = np.vstack([X, X[:, permutation]])
    W = np.random.default_rng(1).standard_normal((10, 3)).astype(np.float32)
    data_loss = lambda W_, X_, y_: svm_loss(W_, X_, y_, squared=True, multi_class="ovr")  # noqa: E731
    expected_value, expected_gradient = data_loss(W, full, y_both)
    total, gradient = MirroredRows(X, permutation, block_rows=32).map_reduce_loss(data_loss, W, y_both)
    np.testing.assert_allclose(total / len(full), expected_value, rtol=1e-6)
    np.testing.assert_allclose(gradient / len(full), expected_gradient, rtol=1e-5, atol=1e-6)
    mask = np.random.default_rng(2).random(len(full)) < 0.6
    loss = full_batch_loss(data_loss, lambda W_: (0.0, np.zeros_like(W_)))
    value, gradient = loss(W, MirroredRows(X, permutation, block_rows=32).select(mask), y_both[mask])
    expected_value, expected_gradient = data_loss(W, full[mask], y_both[mask])
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-5, atol=1e-6)


def test_least_squares_start_equals_the_materialized_rows():
    X, y, permutation = _problem(n_rows=600, n_features=20)
    y_both = np.concatenate([y, y[::-1]])
    full = np.vstack([X, X[:, permutation]])
    expected = least_squares_weights(full, y_both, 3, reg=0.01, target=1.0)
    start = least_squares_weights(MirroredRows(X, permutation, block_rows=256), y_both, 3, reg=0.01, target=1.0)
    np.testing.assert_allclose(start, expected, rtol=1e-4, atol=1e-6)
    assert np.abs(expected).max() > 0.01


@pytest.mark.parametrize("head", [
    LinearSVM(reg=0.01, squared=True, multi_class="ovr", optimizer="lbfgs", init="least_squares", n_epochs=15),
    Softmax(reg=0.01, optimizer="lbfgs", n_epochs=15, early_stopping=True, n_iter_no_change=15, random_state=0),
])
def test_heads_train_the_same_weights_as_on_the_materialized_rows(head):
    X, y, permutation = _problem(n_rows=400, n_features=12, seed=3)
    X += 3 * np.eye(12, dtype=np.float32)[y]  # separable enough that some margins are met: L-BFGS has work
    full, y_both = np.vstack([X, X[:, permutation]]), np.concatenate([y, y])
    reference = head.__class__(**head.get_params()).fit(full, y_both)
    mirrored = head.__class__(**head.get_params()).fit(MirroredRows(X, permutation, block_rows=64), y_both)
    assert len(reference.loss_history_) > 1
    np.testing.assert_allclose(mirrored.loss_history_, reference.loss_history_, rtol=1e-5)
    # float32 sums in another order: L-BFGS drifts a little along flat directions, the loss does not.
    np.testing.assert_allclose(mirrored.coef_, reference.coef_, atol=5e-3 * np.abs(reference.coef_).max())
    np.testing.assert_array_equal(mirrored.predict(MirroredRows(X, permutation)), reference.predict(full))


def test_scaled_rows_stay_mirrored_only_for_a_symmetric_scaler():
    X, _, permutation = _problem()
    full = np.vstack([X, X[:, permutation]])
    mean, scale = full.mean(axis=0), full.std(axis=0)
    mean, scale = (mean + mean[permutation]) / 2, (scale + scale[permutation]) / 2
    scaled = MirroredRows(X, permutation).scaled(mean, scale)
    assert isinstance(scaled, MirroredRows)
    np.testing.assert_allclose(np.asarray(scaled), (full - mean) / scale, rtol=1e-6, atol=1e-6)
    lopsided = MirroredRows(X, permutation).scaled(np.arange(9.0), np.ones(9))
    assert not isinstance(lopsided, MirroredRows)
    np.testing.assert_allclose(np.asarray(lopsided), full - np.arange(9.0), rtol=1e-6, atol=1e-5)


def test_symmetric_coordinates_give_the_scores_and_norm_of_the_expanded_weights():
    X, _, permutation = _problem(n_features=11)
    mirrored = MirroredRows(X, permutation, block_rows=32)
    n_fixed = int(np.count_nonzero(permutation == np.arange(11)))
    reduced = mirrored.symmetric_rows()
    assert reduced.shape == (150, (11 - n_fixed) // 2 + n_fixed)
    v = np.random.default_rng(4).standard_normal((reduced.shape[1] + 1, 3)).astype(np.float32)
    W = mirrored.expand_weights(v)
    np.testing.assert_array_equal(W[:-1][permutation], W[:-1])
    np.testing.assert_allclose((W[:-1] ** 2).sum(), (v[:-1] ** 2).sum(), rtol=1e-6)
    full_scores = np.asarray(mirrored) @ W[:-1] + W[-1]
    reduced_scores = reduced @ v[:-1] + v[-1]
    np.testing.assert_allclose(full_scores, np.vstack([reduced_scores, reduced_scores]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("y_mirrors, symmetric", [(lambda y: y, True), (lambda y: (y + 1) % 3, False)])
def test_svm_trains_in_symmetric_coordinates_only_when_the_mirrors_repeat_the_labels(monkeypatch, y_mirrors,
                                                                                    symmetric):
    X, y, permutation = _problem(n_rows=300, n_features=12, seed=5)
    X += 3 * np.eye(12, dtype=np.float32)[y]
    reduced_calls = []
    monkeypatch.setattr(MirroredRows, "symmetric_rows",
                        lambda self, original=MirroredRows.symmetric_rows: reduced_calls.append(1) or original(self))
    y_both = np.concatenate([y, y_mirrors(y)])
    params = dict(reg=0.01, squared=True, multi_class="ovr", optimizer="lbfgs", init="least_squares", n_epochs=15)
    mirrored = LinearSVM(**params).fit(MirroredRows(X, permutation), y_both)
    reference = LinearSVM(**params).fit(np.vstack([X, X[:, permutation]]), y_both)
    assert bool(reduced_calls) == symmetric
    np.testing.assert_allclose(mirrored.loss_history_, reference.loss_history_, rtol=1e-5)
    np.testing.assert_allclose(mirrored.coef_, reference.coef_, atol=5e-3 * np.abs(reference.coef_).max())
