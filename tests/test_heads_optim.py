"""Optimizers: update rules against hand-computed steps, convergence against closed forms."""

import numpy as np
import pytest

from featpipe.heads.optim import gradient_descent, minibatch_sgd, random_search


def least_squares(W, X, y):
    residual = X @ W - y
    return float(np.mean(residual ** 2)), 2.0 * X.T @ residual / X.shape[0]


def constant_gradient(gradient):
    def loss(W, X, y):
        return float(np.sum(gradient * W)), gradient.copy()
    return loss


@pytest.fixture
def regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    W_true = rng.normal(size=(5, 2))
    return X, X @ W_true + 0.01 * rng.normal(size=(400, 2))


def test_sgd_converges_to_the_least_squares_solution(regression):
    X, y = regression
    W, history = minibatch_sgd(least_squares, np.zeros((5, 2)), X, y, learning_rate=0.05,
                               batch_size=32, n_epochs=30, momentum=0.5, lr_decay=0.9, rng=0)
    exact = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(W, exact, atol=5e-3)
    assert len(history) == 30
    assert history[-1] < 0.01 * history[0]


def test_gradient_descent_converges_to_the_least_squares_solution(regression):
    X, y = regression
    W, history = gradient_descent(least_squares, np.zeros((5, 2)), X, y, learning_rate=0.2,
                                  n_epochs=200)
    np.testing.assert_allclose(W, np.linalg.lstsq(X, y, rcond=None)[0], atol=1e-6)
    assert all(later <= earlier + 1e-12 for earlier, later in zip(history, history[1:]))


def test_each_epoch_visits_every_row_once_in_random_order():
    X = np.zeros((103, 2))
    seen = []

    def recorder(W, X_batch, y_batch):
        seen.append(y_batch.copy())
        assert len(y_batch) <= 10
        return 0.0, np.zeros_like(W)

    minibatch_sgd(recorder, np.zeros(1), X, np.arange(103), learning_rate=1.0, batch_size=10,
                  n_epochs=2, rng=0)
    assert len(seen) == 2 * 11
    first, second = np.concatenate(seen[:11]), np.concatenate(seen[11:])
    np.testing.assert_array_equal(np.sort(first), np.arange(103))
    np.testing.assert_array_equal(np.sort(second), np.arange(103))
    assert not np.array_equal(first, second)


def test_full_batch_passes_X_itself():
    X = np.ones((50, 3))

    def check_identity(W, X_batch, y_batch):
        assert X_batch is X
        return 0.0, np.zeros_like(W)

    gradient_descent(check_identity, np.zeros(3), X, np.zeros(50), learning_rate=1.0, n_epochs=2)


def test_plain_step_decay_and_momentum_follow_the_update_rule():
    gradient = np.array([1.0, -2.0])
    X, y = np.zeros((4, 1)), np.zeros(4)
    W, _ = gradient_descent(constant_gradient(gradient), np.zeros(2), X, y, learning_rate=0.1,
                            n_epochs=3, lr_decay=0.5)
    np.testing.assert_allclose(W, -0.1 * (1 + 0.5 + 0.25) * gradient)
    W, _ = gradient_descent(constant_gradient(gradient), np.zeros(2), X, y, learning_rate=0.1,
                            n_epochs=3, momentum=0.9)
    # velocities: -lr g, -lr g (1 + m), -lr g (1 + m + m^2)
    np.testing.assert_allclose(W, -0.1 * (1 + 1.9 + 2.71) * gradient)


def test_on_epoch_can_stop_training(regression):
    X, y = regression
    calls = []

    def stop_after_three(epoch, W):
        calls.append(epoch)
        return epoch == 2

    _, history = minibatch_sgd(least_squares, np.zeros((5, 2)), X, y, learning_rate=0.01,
                               n_epochs=50, rng=0, on_epoch=stop_after_three)
    assert calls == [0, 1, 2]
    assert len(history) == 3


def test_random_search_keeps_the_best_candidate(regression):
    X, y = regression
    start = np.zeros((5, 2))
    W, history = random_search(least_squares, start, X, y, n_epochs=40, scale=1.0, rng=0)
    assert len(history) == 40
    assert all(later <= earlier for earlier, later in zip(history, history[1:]))
    assert least_squares(W, X, y)[0] == pytest.approx(history[-1])
    assert history[-1] < least_squares(start, X, y)[0]


@pytest.mark.parametrize("bad, message", [
    ({"learning_rate": -0.1}, "learning_rate must be a positive"),
    ({"learning_rate": 0.1, "momentum": 1.0}, "momentum"),
    ({"learning_rate": 0.1, "lr_decay": 0.0}, "lr_decay"),
])
def test_bad_settings_raise(regression, bad, message):
    X, y = regression
    with pytest.raises(ValueError, match=message):
        minibatch_sgd(least_squares, np.zeros((5, 2)), X, y, **bad)


def test_random_search_rejects_a_bad_scale(regression):
    X, y = regression
    with pytest.raises(ValueError, match="scale"):
        random_search(least_squares, np.zeros((5, 2)), X, y, scale=0.0)


def test_rows_restricts_training_to_a_subset_without_copying_X():
    X = np.zeros((60, 2))
    rows = np.arange(0, 60, 3)
    seen = []

    def recorder(W, X_batch, y_batch):
        seen.append(y_batch.copy())
        return 0.0, np.zeros_like(W)

    minibatch_sgd(recorder, np.zeros(1), X, np.arange(60), learning_rate=1.0, batch_size=7,
                  n_epochs=1, rng=0, rows=rows)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), rows)
    assert len(seen) == 3


def test_averaged_sgd_returns_the_mean_of_the_second_half_iterates():
    gradient = np.array([1.0, -2.0])
    X, y = np.zeros((4, 1)), np.zeros(4)
    iterates = []

    def record(epoch, W):
        iterates.append(W.copy())
        return False

    plain, _ = minibatch_sgd(constant_gradient(gradient), np.zeros(2), X, y, learning_rate=0.1,
                             batch_size=4, n_epochs=4, on_epoch=record)
    averaged, _ = minibatch_sgd(constant_gradient(gradient), np.zeros(2), X, y, learning_rate=0.1,
                                batch_size=4, n_epochs=4, average=True)
    # one step per epoch: iterates -0.1 g k for k = 1..4; epochs 2 and 3 are averaged
    np.testing.assert_allclose(plain, -0.4 * gradient)
    np.testing.assert_allclose(averaged, (iterates[2] + iterates[3]) / 2)
