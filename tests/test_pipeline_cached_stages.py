"""Lazily cached stages: the data is fetched only on a cache miss, and placeholders follow IGNORED."""

import inspect

import numpy as np

from featpipe.cache import make_memory
from featpipe.metrics_schema import STAGE_NAMES
from featpipe.pipeline import stages
from featpipe.pipeline.cached_stages import CachedStages, StageClock


def test_data_is_fetched_on_a_miss_only_and_the_hit_returns_the_same_output(tmp_path):
    cached = CachedStages(make_memory(tmp_path / "cache"), StageClock(quiet=True))
    rng = np.random.default_rng(0)
    features = rng.standard_normal((50, 4)).astype(np.float32) * 3 + 1
    fetched = []

    def train_features():
        fetched.append(True)
        return {"train_features": features}

    first = cached.lazily("normalize", ("key-1", "standard"), train_features)
    assert fetched == [True] and cached.clock.hits["normalize"] is False
    cached.clock.hits["normalize"] = True
    again = cached.lazily("normalize", ("key-1", "standard"), train_features)
    assert fetched == [True] and cached.clock.hits["normalize"] is True
    np.testing.assert_allclose(again.mean_, features.mean(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(again.scale_, first.scale_)
    cached.lazily("normalize", ("key-2", "standard"), train_features)
    assert fetched == [True, True]


def test_every_stage_function_takes_its_ignored_arguments_by_name():
    for name, ignored in stages.IGNORED.items():
        parameters = list(inspect.signature(getattr(stages, name)).parameters)
        assert parameters[-len(ignored):] == ignored, name
        assert stages.TIMED_AS[name] in STAGE_NAMES
