"""Hyper-parameter search: grid and random pairs, records, choice of the best."""

import numpy as np
import pytest
from sklearn.base import clone

from featpipe.heads import LinearSVM, Softmax
from featpipe.heads.search import default_grid, search_hyperparameters


@pytest.fixture(scope="module")
def splits():
    rng = np.random.default_rng(0)
    centres = 2.0 * rng.normal(size=(3, 6))
    y = rng.integers(0, 3, size=400)
    X = (centres[y] + rng.normal(size=(400, 6))).astype(np.float32)
    return X[:300], y[:300], X[300:], y[300:]


def test_grid_tries_every_pair_and_keeps_the_best(splits):
    X_train, y_train, X_val, y_val = splits
    head = Softmax(n_epochs=5, random_state=0)
    rates, regs = [1e-9, 1e-3, 1e-2], [1e-4, 1.0]
    best, records = search_hyperparameters(head, X_train, y_train, X_val, y_val, rates, regs)
    assert [(r["learning_rate"], r["reg"]) for r in records] == [(a, b) for a in rates for b in regs]
    for record in records:
        refit = clone(head).set_params(learning_rate=record["learning_rate"], reg=record["reg"])
        assert record["val_accuracy"] == refit.fit(X_train, y_train).score(X_val, y_val)
    winner = max(records, key=lambda r: r["val_accuracy"])
    assert best == {"learning_rate": winner["learning_rate"], "reg": winner["reg"]}
    assert best["learning_rate"] != 1e-9
    assert head.get_params()["learning_rate"] == "auto"


def test_random_samples_are_log_uniform_in_the_ranges(splits):
    X_train, y_train, X_val, y_val = splits
    head = LinearSVM(n_epochs=2, random_state=0)
    kwargs = dict(learning_rates=[1e-4, 1e-1], regs=[1e-6, 1e-2], n_samples=6)
    _, records = search_hyperparameters(head, *splits, random_state=1, **kwargs)
    _, again = search_hyperparameters(head, *splits, random_state=1, **kwargs)
    _, other = search_hyperparameters(head, *splits, random_state=2, **kwargs)
    assert len(records) == 6 and records == again and records != other
    rates = np.array([r["learning_rate"] for r in records])
    regs = np.array([r["reg"] for r in records])
    assert np.all((rates >= 1e-4) & (rates <= 1e-1)) and np.all((regs >= 1e-6) & (regs <= 1e-2))
    assert len(set(rates.tolist())) == 6


def test_default_grid_scales_with_the_features():
    rng = np.random.default_rng(0)
    signs = rng.choice([-1.0, 1.0], size=(50, 8))
    with_bias = np.hstack([signs, np.ones((50, 1))])
    largest = np.linalg.eigvalsh(with_bias.T @ with_bias / 50)[-1]
    rates, regs = default_grid(signs)
    np.testing.assert_allclose(rates, [0.3 / largest, 1.0 / largest, 3.0 / largest], rtol=1e-3)
    np.testing.assert_allclose(regs, [1e-5, 1e-4, 1e-3, 1e-2])
    np.testing.assert_allclose(default_grid(signs, step=0.1)[0], np.array(rates) / 10, rtol=1e-12)
    scaled_regs = default_grid(10.0 * signs)[1]
    np.testing.assert_allclose(scaled_regs, [1e-3, 1e-2, 1e-1, 1.0])


def test_default_search_runs_the_default_grid(splits):
    X_train, y_train, X_val, y_val = splits
    _, records = search_hyperparameters(Softmax(n_epochs=1, random_state=0), *splits)
    rates, regs = default_grid(X_train)
    assert [(r["learning_rate"], r["reg"]) for r in records] == [(a, b) for a in rates for b in regs]
    _, records = search_hyperparameters(LinearSVM(n_epochs=1, random_state=0), *splits)
    rates, regs = default_grid(X_train, step=0.1)
    assert [(r["learning_rate"], r["reg"]) for r in records] == [(a, b) for a in rates for b in regs]
    assert all(0.0 <= r["val_accuracy"] <= 1.0 for r in records)


@pytest.mark.parametrize("kwargs, message", [
    ({"learning_rates": [-1e-3]}, "learning_rates must be"),
    ({"regs": []}, "regs must be"),
    ({"n_samples": 0}, "n_samples must be"),
])
def test_bad_arguments_raise(splits, kwargs, message):
    with pytest.raises(ValueError, match=message):
        search_hyperparameters(Softmax(n_epochs=1), *splits, **kwargs)
