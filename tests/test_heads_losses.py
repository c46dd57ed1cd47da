"""Losses against naive loop references and every gradient against finite differences."""

import numpy as np
import pytest

from featpipe.heads.losses import accuracy, gradient_check, penalty_value_and_grad, softmax_loss, svm_loss

PENALTIES = ("l2", "l1", "elasticnet")


def naive_penalty(W, reg, penalty, l1_ratio):
    total = 0.0
    for value in W.ravel():
        if penalty == "l2":
            total += value * value
        elif penalty == "l1":
            total += abs(value)
        else:
            total += l1_ratio * abs(value) + (1 - l1_ratio) * value * value
    return reg * total


def naive_scores(W, X):
    n_features = X.shape[1]
    scores = np.zeros((X.shape[0], W.shape[1]))
    for i in range(X.shape[0]):
        for j in range(W.shape[1]):
            scores[i, j] = sum(X[i, d] * W[d, j] for d in range(n_features))
            if W.shape[0] == n_features + 1:
                scores[i, j] += W[n_features, j]
    return scores


def naive_svm_loss(W, X, y, reg, delta, squared, penalty, l1_ratio):
    scores = naive_scores(W, X)
    total = 0.0
    for i in range(X.shape[0]):
        for j in range(W.shape[1]):
            if j == y[i]:
                continue
            hinge = max(0.0, scores[i, j] - scores[i, y[i]] + delta)
            total += hinge * hinge if squared else hinge
    return total / X.shape[0] + naive_penalty(W[: X.shape[1]], reg, penalty, l1_ratio)


def naive_ovr_svm_loss(W, X, y, reg, delta, squared, penalty, l1_ratio):
    scores = naive_scores(W, X)
    total = 0.0
    for i in range(X.shape[0]):
        for j in range(W.shape[1]):
            target = 1.0 if j == y[i] else -1.0
            hinge = max(0.0, delta - target * scores[i, j])
            total += hinge * hinge if squared else hinge
    return total / X.shape[0] + naive_penalty(W[: X.shape[1]], reg, penalty, l1_ratio)


def naive_softmax_loss(W, X, y, reg, penalty, l1_ratio):
    scores = naive_scores(W, X)
    total = 0.0
    for i in range(X.shape[0]):
        biggest = max(scores[i])
        normalizer = sum(np.exp(s - biggest) for s in scores[i])
        total += -(scores[i, y[i]] - biggest) + np.log(normalizer)
    return total / X.shape[0] + naive_penalty(W[: X.shape[1]], reg, penalty, l1_ratio)


def problem(seed, n=30, d=6, c=4, bias=True):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = rng.integers(0, c, size=n)
    W = rng.normal(scale=0.5, size=(d + bias, c))
    return W, X, y


@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_svm_loss_equals_naive_loop(penalty, squared, bias):
    W, X, y = problem(1, bias=bias)
    loss, _ = svm_loss(W, X, y, reg=0.3, delta=1.5, squared=squared, penalty=penalty, l1_ratio=0.3)
    expected = naive_svm_loss(W, X, y, 0.3, 1.5, squared, penalty, 0.3)
    assert loss == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_one_vs_rest_svm_loss_equals_naive_loop(penalty, squared, bias):
    W, X, y = problem(2, bias=bias)
    loss, _ = svm_loss(W, X, y, reg=0.3, delta=1.5, squared=squared, penalty=penalty, l1_ratio=0.3,
                       multi_class="ovr")
    expected = naive_ovr_svm_loss(W, X, y, 0.3, 1.5, squared, penalty, 0.3)
    assert loss == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("bias", [False, True])
def test_softmax_loss_equals_naive_loop(penalty, bias):
    W, X, y = problem(2, bias=bias)
    loss, _ = softmax_loss(W, X, y, reg=0.3, penalty=penalty, l1_ratio=0.7)
    assert loss == pytest.approx(naive_softmax_loss(W, X, y, 0.3, penalty, 0.7), rel=1e-6)


@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("loss_name", ["svm", "svm_squared", "svm_ovr", "svm_ovr_squared", "softmax"])
def test_analytic_gradient_matches_centred_difference(loss_name, penalty):
    W, X, y = problem(3)
    losses = {
        "svm": lambda w: svm_loss(w, X, y, reg=0.2, penalty=penalty),
        "svm_squared": lambda w: svm_loss(w, X, y, reg=0.2, squared=True, penalty=penalty),
        "svm_ovr": lambda w: svm_loss(w, X, y, reg=0.2, penalty=penalty, multi_class="ovr"),
        "svm_ovr_squared": lambda w: svm_loss(w, X, y, reg=0.2, squared=True, penalty=penalty,
                                              multi_class="ovr"),
        "softmax": lambda w: softmax_loss(w, X, y, reg=0.2, penalty=penalty),
    }
    assert gradient_check(losses[loss_name], W) < 1e-6


def test_gradient_check_detects_a_wrong_gradient():
    W, X, y = problem(4)

    def wrong(w):
        loss, grad = softmax_loss(w, X, y, reg=0.1)
        return loss, grad * 1.01

    assert gradient_check(wrong, W) > 1e-3
    assert gradient_check(wrong, W, n_checks=5, random_state=0) > 1e-3


def test_bias_row_is_not_regularized():
    W, X, y = problem(5)
    free = softmax_loss(W, X, y, reg=0.0)
    for penalty in PENALTIES:
        loss, grad = softmax_loss(W, X, y, reg=10.0, penalty=penalty)
        np.testing.assert_allclose(grad[-1], free[1][-1])
        assert loss == pytest.approx(free[0] + naive_penalty(W[:-1], 10.0, penalty, 0.5), rel=1e-9)


def test_bias_row_equals_the_bias_trick():
    W, X, y = problem(6)
    X_ones = np.hstack([X, np.ones((X.shape[0], 1))])
    for loss in (svm_loss, softmax_loss):
        implicit, implicit_grad = loss(W, X, y)
        explicit, explicit_grad = loss(W, X_ones, y)
        assert implicit == pytest.approx(explicit, rel=1e-12)
        np.testing.assert_allclose(implicit_grad, explicit_grad, rtol=1e-12)


def test_softmax_is_stable_for_huge_scores():
    X = np.array([[1e4, -1e4], [3e5, 2e5]])
    W = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0]])
    y = np.array([0, 2])
    loss, grad = softmax_loss(W, X, y)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    # row 0 scores (1e4, 1e4, -3e4): loss log 2; row 1 scores (3e5, 8e5, 6e5): loss 2e5
    assert loss == pytest.approx((np.log(2) + 2e5) / 2, rel=1e-12)


def test_float32_stays_float32():
    W, X, y = problem(7)
    W, X = W.astype(np.float32), X.astype(np.float32)
    for loss in (svm_loss, softmax_loss):
        value, grad = loss(W, X, y, reg=0.1)
        assert grad.dtype == np.float32
        assert isinstance(value, float)


def test_zero_weights_give_the_lecture_values():
    _, X, y = problem(8, c=5)
    W = np.zeros((X.shape[1] + 1, 5))
    assert svm_loss(W, X, y, delta=2.0)[0] == pytest.approx(4 * 2.0)
    assert svm_loss(W, X, y, delta=2.0, squared=True)[0] == pytest.approx(4 * 4.0)
    assert softmax_loss(W, X, y)[0] == pytest.approx(np.log(5))


def test_penalty_helper_matches_naive():
    rng = np.random.default_rng(9)
    W = rng.normal(size=(5, 3))
    for penalty in PENALTIES:
        value, grad = penalty_value_and_grad(W, 0.7, penalty, 0.25)
        assert value == pytest.approx(naive_penalty(W, 0.7, penalty, 0.25), rel=1e-12)
        assert gradient_check(lambda w: penalty_value_and_grad(w, 0.7, penalty, 0.25), W) < 1e-7


@pytest.mark.parametrize("loss", [svm_loss, softmax_loss])
def test_bad_arguments_raise(loss):
    W, X, y = problem(10)
    with pytest.raises(ValueError, match="W must have shape"):
        loss(W[:3], X, y)
    with pytest.raises(ValueError, match="penalty must be one of"):
        loss(W, X, y, reg=1.0, penalty="l3")
    with pytest.raises(ValueError, match="l1_ratio"):
        loss(W, X, y, reg=1.0, penalty="elasticnet", l1_ratio=2.0)


def test_unknown_multi_class_raises():
    W, X, y = problem(11)
    with pytest.raises(ValueError, match="multi_class must be one of"):
        svm_loss(W, X, y, multi_class="crammer_singer")


@pytest.mark.parametrize("bias", [False, True])
def test_accuracy_counts_the_rows_whose_best_score_is_their_label(bias):
    rng = np.random.default_rng(9)
    X = rng.standard_normal((40, 5)).astype(np.float32)
    W = rng.standard_normal((6 if bias else 5, 3)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    hits = 0
    for row, label in zip(X, y):
        scores = [sum(row[d] * W[d, c] for d in range(5)) + (W[5, c] if bias else 0) for c in range(3)]
        hits += int(np.argmax(scores) == label)
    assert 0 < hits < 40
    assert accuracy(W, X, y) == pytest.approx(hits / 40)
