"""Option objects: built from the command's parameters, passed whole, the same as keywords."""

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import featpipe
from featpipe.datasets import LoadOptions, load_dataset
from featpipe.pipeline.options import ExtractOptions, RunOptions, options_from, resolve_options
from featpipe.pipeline.run import run_pipeline
from featpipe.pipeline.spec import parse_spec

WIRING_MODULES = sorted((Path(featpipe.__file__).parent / "pipeline").glob("*.py")) + [
    Path(featpipe.__file__).parent / "cli.py"]
MAX_PARAMETERS = 6


def test_options_are_frozen_and_extend_the_loader_options():
    for options_class in (RunOptions, ExtractOptions):
        assert issubclass(options_class, LoadOptions)
        options = options_class()
        with pytest.raises(dataclasses.FrozenInstanceError):
            options.seed = 3


def test_options_from_takes_fields_by_name_and_derived_values_win():
    params = {"n_jobs": 2, "seed": 7, "no_cache": True, "quiet": True, "not_a_field": 1, "image_size": None}
    options = options_from(RunOptions, params, use_cache=not params["no_cache"], quiet=False)
    assert options == RunOptions(n_jobs=2, seed=7, use_cache=False, quiet=False, image_size=None)


def test_resolve_options_sets_keywords_on_top_and_refuses_other_types():
    base = RunOptions(seed=3, n_jobs=1)
    assert resolve_options(RunOptions, base, {"seed": 5}) == RunOptions(seed=5, n_jobs=1)
    assert resolve_options(RunOptions, None, {}) == RunOptions()
    with pytest.raises(TypeError, match="RunOptions"):
        resolve_options(RunOptions, ExtractOptions(), {})
    with pytest.raises(TypeError):
        resolve_options(RunOptions, None, {"no_such_option": 1})


def test_the_loader_takes_a_run_options_whole(small_npz):
    whole = load_dataset(str(small_npz), RunOptions(image_size=8, val_size=9, seed=4, n_jobs=1))
    by_keyword = load_dataset(str(small_npz), image_size=8, val_size=9, seed=4)
    assert whole.fingerprint == by_keyword.fingerprint
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(whole, f"X_{split}"), getattr(by_keyword, f"X_{split}"))
    assert whole.X_train.shape[1:] == (8, 8, 3) and len(whole.y_val) == 9


def test_run_pipeline_with_options_equals_run_pipeline_with_keywords(tmp_path, small_npz):
    spec = parse_spec("raw+softmax")
    options = RunOptions(image_size=8, cache_dir=tmp_path / "cache", n_jobs=1, quiet=True, seed=2)
    first = run_pipeline(spec, str(small_npz), options=options, out=tmp_path / "a").metrics
    second = run_pipeline(spec, str(small_npz), out=tmp_path / "b", image_size=8, cache_dir=tmp_path / "cache",
                          n_jobs=1, quiet=True, seed=2).metrics
    assert first["accuracy"] == second["accuracy"] and first["seed"] == second["seed"] == 2
    assert first["dataset"]["image_size"] == 8 and all(second["cache_hits"].values())


def _parameter_counts():
    for path in WIRING_MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef):
                arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                names = [argument.arg for argument in arguments if argument.arg not in ("self", "cls")]
                yield f"{path.name}:{node.name}", len(names)


def test_no_function_of_the_wiring_layer_takes_more_than_six_arguments():
    counts = dict(_parameter_counts())
    assert "run.py:run_pipeline" in counts and "extract_job.py:run_extract_job" in counts
    assert {name: count for name, count in counts.items() if count > MAX_PARAMETERS} == {}
