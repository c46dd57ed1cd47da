"""Heads trained on block sources: the streamed optimizers against the same heads on arrays."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from featpipe.heads import LinearSVM, Softmax
from featpipe.heads.blocks import (
    ArrayBlocks,
    ScaledBlocks,
    fit_scaler_by_blocks,
    full_batch_loss,
    shuffled_batches,
)
from featpipe.heads.losses import softmax_loss, svm_loss
from featpipe.heads.starting_point import least_squares_weights


def classes_in_blobs(n=3000, n_features=40, n_classes=5, seed=0, dtype=np.float32):
    """Overlapping Gaussian blobs with correlated features: no head separates them perfectly."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=0.5, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, size=n)
    mixing = np.eye(n_features) + 0.3 * rng.normal(size=(n_features, n_features))
    X = (centres[y] + rng.normal(size=(n, n_features))) @ mixing
    return X.astype(dtype), y


FULL_BATCH_HEADS = [
    pytest.param(LinearSVM(optimizer="lbfgs", squared=True, multi_class="ovr", reg=1e-3, n_epochs=40),
                 id="svm2-ovr-lbfgs"),
    pytest.param(LinearSVM(optimizer="lbfgs", squared=True, multi_class="ovr", reg=1e-3, n_epochs=25,
                           init="least_squares"), id="svm2-ovr-lbfgs-least-squares"),
    pytest.param(Softmax(optimizer="lbfgs", reg=1e-3, n_epochs=40), id="softmax-lbfgs"),
    pytest.param(Softmax(optimizer="gd", reg=1e-3, n_epochs=30), id="softmax-gd"),
    pytest.param(LinearSVM(optimizer="gd", reg=1e-3, n_epochs=30), id="svm-gd"),
]


@pytest.mark.parametrize("head", FULL_BATCH_HEADS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_streamed_full_batch_training_reaches_the_in_memory_optimum(head, dtype):
    X, y = classes_in_blobs(dtype=dtype)
    in_memory = head.set_params(random_state=0).fit(X, y)
    expected_loss, expected_iterations = in_memory.loss_history_[-1], in_memory.n_iter_
    streamed = head.set_params(random_state=0).fit(ArrayBlocks(X, block_rows=700), y)
    assert streamed.n_iter_ == expected_iterations
    assert streamed.loss_history_[-1] == pytest.approx(expected_loss, rel=1e-4)
    assert np.mean(streamed.predict(X) == in_memory.predict(X)) >= 0.99
    assert streamed.coef_.dtype == dtype


@pytest.mark.parametrize("loss, params", [
    (svm_loss, {"squared": True, "multi_class": "ovr"}),
    (svm_loss, {}),
    (softmax_loss, {}),
])
def test_full_batch_loss_of_blocks_is_the_loss_of_the_whole_matrix(loss, params):
    X, y = classes_in_blobs(n=500, dtype=np.float64)
    W = np.random.default_rng(1).normal(scale=0.1, size=(X.shape[1] + 1, 5))
    reg = 0.05

    def data_loss(W, X_block, y_block):
        return loss(W, X_block, y_block, reg=0.0, **params)

    def penalty(W):
        gradient = np.zeros_like(W)
        gradient[:-1] = 2 * reg * W[:-1]
        return reg * float(np.sum(W[:-1] ** 2)), gradient

    value, gradient = full_batch_loss(data_loss, penalty)(W, ArrayBlocks(X, block_rows=64), y)
    expected_value, expected_gradient = loss(W, X, y, reg=reg, **params)
    assert value == pytest.approx(expected_value, rel=1e-12)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("block_rows", [1, 97, 4096])
def test_gram_matrix_start_equals_the_in_memory_ridge_fit(block_rows):
    X, y = classes_in_blobs(n=800, n_features=12, dtype=np.float64)
    reg, delta = 0.02, 1.5
    targets = np.where(np.arange(5) == y[:, np.newaxis], delta, -delta)
    reference = Ridge(alpha=reg * len(X)).fit(X, targets)
    streamed = least_squares_weights(ArrayBlocks(X, block_rows=block_rows), y, 5, reg, delta)
    in_memory = least_squares_weights(X, y, 5, reg, delta)
    np.testing.assert_allclose(streamed, in_memory, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(streamed[:-1], reference.coef_.T, atol=1e-9)
    np.testing.assert_allclose(streamed[-1], reference.intercept_, atol=1e-9)


def test_gram_matrix_start_of_selected_rows_fits_only_those_rows():
    X, y = classes_in_blobs(n=600, n_features=10, dtype=np.float64)
    rows = np.flatnonzero(np.arange(600) % 3 != 0)
    streamed = least_squares_weights(ArrayBlocks(X, block_rows=50).select(rows), y[rows], 5, 0.01, 1.0)
    np.testing.assert_allclose(streamed, least_squares_weights(X[rows], y[rows], 5, 0.01, 1.0), rtol=1e-10)


def test_sgd_over_blocks_learns_as_well_as_sgd_in_memory():
    X, y = classes_in_blobs(n=4000)
    X_train, y_train, X_test, y_test = X[:3000], y[:3000], X[3000:], y[3000:]
    scores = {}
    for name, data in (("array", X_train), ("blocks", ArrayBlocks(X_train, block_rows=500))):
        head = Softmax(n_epochs=10, random_state=0).fit(data, y_train)
        scores[name] = head.score(X_test, y_test)
    assert scores["array"] > 0.6  # five classes: chance is 0.2
    assert abs(scores["blocks"] - scores["array"]) < 0.03


def test_shuffled_batches_visit_every_row_once_in_a_seeded_order():
    X = np.arange(1000, dtype=np.float64).reshape(-1, 1)
    source = ArrayBlocks(X, block_rows=130)
    labels = np.arange(1000)
    first = [batch_labels for _, batch_labels in shuffled_batches(source, labels, 64, np.random.default_rng(3))]
    again = [batch_labels for _, batch_labels in shuffled_batches(source, labels, 64, np.random.default_rng(3))]
    visited = np.concatenate(first)
    assert sorted(visited.tolist()) == list(range(1000))
    assert not np.array_equal(visited, np.sort(visited))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert max(len(batch) for batch in first) == 64
    for X_batch, y_batch in shuffled_batches(source, labels, 64, np.random.default_rng(3)):
        np.testing.assert_array_equal(X_batch[:, 0], y_batch)


def test_early_stopping_on_blocks_holds_out_the_same_rows_as_on_the_array():
    X, y = classes_in_blobs(n=1500, dtype=np.float64)
    params = dict(optimizer="lbfgs", squared=True, multi_class="ovr", early_stopping=True, n_epochs=30,
                  random_state=4)
    in_memory = LinearSVM(**params).fit(X, y)
    streamed = LinearSVM(**params).fit(ArrayBlocks(X, block_rows=256), y)
    assert streamed.val_accuracy_history_ == in_memory.val_accuracy_history_
    np.testing.assert_allclose(streamed.coef_, in_memory.coef_, rtol=1e-5, atol=1e-7)


def test_scaler_fitted_block_by_block_equals_the_scaler_fitted_at_once():
    X, _ = classes_in_blobs(n=2000, dtype=np.float64)
    scaler = fit_scaler_by_blocks(StandardScaler(), ArrayBlocks(X, block_rows=333))
    reference = StandardScaler().fit(X)
    rows = np.arange(400, 1500)  # leaves the first and last blocks empty
    selected = fit_scaler_by_blocks(StandardScaler(), ArrayBlocks(X, block_rows=333).select(rows))
    np.testing.assert_allclose(selected.mean_, X[rows].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scaler.mean_, reference.mean_, rtol=1e-12)
    np.testing.assert_allclose(scaler.scale_, reference.scale_, rtol=1e-10)
    scaled = np.asarray(ScaledBlocks(ArrayBlocks(X, block_rows=333), scaler.mean_, scaler.scale_))
    np.testing.assert_allclose(scaled, reference.transform(X), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("head_class", [LinearSVM, Softmax])
def test_predictions_on_blocks_are_the_predictions_on_the_array(head_class):
    X, y = classes_in_blobs(n=900)
    head = head_class(n_epochs=3, random_state=0).fit(X, y)
    source = ArrayBlocks(X, block_rows=100)
    np.testing.assert_array_equal(head.predict(source), head.predict(X))
    np.testing.assert_allclose(head.decision_function(source), head.decision_function(X), rtol=1e-5, atol=1e-5)


def test_take_and_select_read_the_rows_asked_for():
    X = np.arange(60, dtype=np.float32).reshape(20, 3)
    source = ArrayBlocks(X, block_rows=6)
    rows = np.array([0, 5, 6, 13, 19])
    np.testing.assert_array_equal(source.take(rows), X[rows])
    selected = source.select(rows)
    assert selected.shape == (5, 3)
    np.testing.assert_array_equal(np.asarray(selected), X[rows])


def test_a_block_source_whose_labels_do_not_match_its_rows_is_refused():
    X, y = classes_in_blobs(n=100)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        Softmax().fit(ArrayBlocks(X), y[:-1])


def test_the_default_search_grid_of_blocks_is_the_grid_of_the_array():
    from featpipe.heads.search import default_grid

    X, _ = classes_in_blobs(n=3000)
    assert default_grid(ArrayBlocks(X, block_rows=512), step=0.1) == default_grid(X, step=0.1)


@pytest.mark.parametrize("loss, params", [
    (svm_loss, {"squared": True, "multi_class": "ovr"}),
    (softmax_loss, {}),
])
def test_the_scaler_folded_into_the_weights_gives_the_loss_of_the_standardized_rows(loss, params):
    X, y = classes_in_blobs(n=700, dtype=np.float64)
    X = X * np.linspace(0.5, 20.0, X.shape[1]) + np.linspace(-30.0, 50.0, X.shape[1])  # far from standardized
    mean, scale = X.mean(axis=0), X.std(axis=0)
    W = np.random.default_rng(2).normal(scale=0.1, size=(X.shape[1] + 1, 5))

    def data_loss(W, X_block, y_block):
        return loss(W, X_block, y_block, reg=0.0, **params)

    def no_penalty(W):
        return 0.0, np.zeros_like(W)

    source = ScaledBlocks(ArrayBlocks(X, block_rows=90), mean, scale)
    value, gradient = full_batch_loss(data_loss, no_penalty)(W, source, y)
    expected_value, expected_gradient = loss(W, (X - mean) / scale, y, reg=0.0, **params)
    assert value == pytest.approx(expected_value, rel=1e-10)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-8, atol=1e-10)
