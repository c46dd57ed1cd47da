"""Every error a user can cause is a FeatpipeError (a ValueError), importable where it is raised."""

import numpy as np
import pytest

from featpipe import errors
from featpipe.cache import CacheError
from featpipe.datasets import DatasetError
from featpipe.model_io import ModelFileError
from featpipe.pipeline.registry import UnknownNameError, make_feature, make_head
from featpipe.pipeline.run_folder import RunFolderError
from featpipe.pipeline.spec import SpecError
from featpipe.report import ReportError
from featpipe.store import StoreError

DOMAIN_ERRORS = [CacheError, DatasetError, ModelFileError, UnknownNameError, RunFolderError, SpecError,
                 ReportError, StoreError, errors.ParameterError, errors.BackendError]


def test_every_domain_error_is_a_featpipe_error_and_a_value_error():
    for error_class in DOMAIN_ERRORS:
        assert issubclass(error_class, errors.FeatpipeError) and issubclass(error_class, ValueError)
        assert getattr(errors, error_class.__name__) is error_class


def test_errors_module_defines_no_error_outside_the_hierarchy():
    defined = [value for value in vars(errors).values() if isinstance(value, type)]
    assert sorted(cls.__name__ for cls in defined) == sorted(
        ["FeatpipeError"] + [cls.__name__ for cls in DOMAIN_ERRORS])


@pytest.mark.parametrize("kind, name, params, needle", [
    ("feature", "hog", {"orientations": 0}, "orientations"),
    ("feature", "color", {"channels": "xyz"}, "channels"),
    ("feature", "words", {"n_words": -3}, "n_words"),
    ("head", "svm", {"reg": -1.0}, "reg"),
    ("head", "logreg", {"C": -1.0}, "'C' parameter"),
])
def test_a_bad_parameter_value_is_a_parameter_error(kind, name, params, needle):
    images = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(12) % 3
    with pytest.raises(errors.ParameterError, match=needle):
        if kind == "feature":
            make_feature(name, params).fit(images, labels)
        else:
            make_head(name, params).fit(images.reshape(12, -1).astype(np.float32), labels)
