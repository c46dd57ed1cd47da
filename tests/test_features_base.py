"""scikit-learn's estimator checks on every feature extractor, plus their image-batch counterparts.

The generic checks feed 2-D float matrices (n_samples, n_features). An
extractor takes image batches (N, H, W, 3) and rejects a 2-D matrix with a
ValueError, so every check that fits or transforms generic 2-D data fails for
that reason alone; they are listed below with what each one tests, and the
image-batch tests at the bottom re-check the same properties on images. All
other checks (cloning, get/set_params, repr, tags, unfitted behaviour, ...)
really run.

To add an extractor, append one ``(estimator, expected failures)`` pair to
``EXTRACTORS``.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_estimator

from featpipe.features.color import ColorHistogram
from featpipe.features.hog import HOG
from featpipe.features.patches import SoftThresholdPatches
from featpipe.features.raw import RawPixels
from featpipe.features.words import KMeansWords

_TWO_D = "fits or transforms a 2-D float matrix; extractors need an image batch (N, H, W, 3)"
IMAGE_INPUT_FAILURES = {
    "check_complex_data": f"expects a 'complex data' message for a 2-D complex matrix; {_TWO_D}",
    "check_dict_unchanged": f"transform must not change __dict__; {_TWO_D}",
    "check_dont_overwrite_parameters": f"fit must not add public attributes; {_TWO_D}",
    "check_dtype_object": f"fit on a 2-D object array; {_TWO_D}",
    "check_estimator_sparse_array": f"expects a 'sparse' message for a 2-D sparse array; {_TWO_D}",
    "check_estimator_sparse_matrix": f"expects a 'sparse' message for a 2-D sparse matrix; {_TWO_D}",
    "check_estimator_sparse_tag": f"fit on 2-D sparse data per the sparse tag; {_TWO_D}",
    "check_estimators_dtypes": f"fit on 2-D float32/int64/int32 matrices; {_TWO_D}",
    "check_estimators_empty_data_messages": f"expects a '0 feature(s)' message for shape (n, 0); {_TWO_D}",
    "check_estimators_fit_returns_self": f"fit returns self; {_TWO_D}",
    "check_estimators_nan_inf": f"expects a NaN/inf message for a 2-D matrix; {_TWO_D}",
    "check_estimators_overwrite_params": f"fit must not change params; {_TWO_D}",
    "check_estimators_pickle": f"pickle round trip after fit; {_TWO_D}",
    "check_f_contiguous_array_estimator": f"fit on a 2-D Fortran-ordered matrix; {_TWO_D}",
    "check_fit2d_1feature": f"expects a '1 feature' message for shape (n, 1); {_TWO_D}",
    "check_fit2d_1sample": f"expects a '1 sample' message for shape (1, d); {_TWO_D}",
    "check_fit2d_predict1d": f"fit on 2-D, then refuse 1-D; {_TWO_D}",
    "check_fit_check_is_fitted": f"check_is_fitted after fit; {_TWO_D}",
    "check_fit_idempotent": f"fitting twice gives the same transform; {_TWO_D}",
    "check_fit_score_takes_y": f"fit takes y; {_TWO_D}",
    "check_methods_sample_order_invariance": f"rows permuted give permuted output; {_TWO_D}",
    "check_methods_subset_invariance": f"batches give the same rows as the whole; {_TWO_D}",
    "check_n_features_in": f"fit sets n_features_in_ for 2-D input; {_TWO_D}",
    "check_n_features_in_after_fitting": f"n_features_in_ and a feature-count message; {_TWO_D}",
    "check_pipeline_consistency": f"same result inside a Pipeline; {_TWO_D}",
    "check_positive_only_tag_during_fit": f"fit on 2-D data with negative values; {_TWO_D}",
    "check_readonly_memmap_input": f"fit on a read-only memmap of a 2-D matrix; {_TWO_D}",
    "check_transformer_data_not_an_array": f"fit on a 2-D array-like that is not an ndarray; {_TWO_D}",
    "check_transformer_general": f"fit_transform equals fit().transform() on 2-D blobs; {_TWO_D}",
    "check_transformer_preserve_dtypes": f"transform keeps a 2-D float dtype; {_TWO_D}",
}

EXTRACTORS = [
    (RawPixels(), IMAGE_INPUT_FAILURES),
    (RawPixels(image_size=16), IMAGE_INPUT_FAILURES),
    (ColorHistogram(), IMAGE_INPUT_FAILURES),
    (ColorHistogram("hsv", (8, 4, 4), joint=True, grid=2), IMAGE_INPUT_FAILURES),
    (HOG(), IMAGE_INPUT_FAILURES),
    (HOG(pixels_per_cell=[(4, 4), (8, 8)], block_norm="none"), IMAGE_INPUT_FAILURES),
    (KMeansWords(n_words=8, n_patches=2000, random_state=0), IMAGE_INPUT_FAILURES),
    (SoftThresholdPatches(n_atoms=8, n_patches=2000, random_state=0), IMAGE_INPUT_FAILURES),
    (SoftThresholdPatches(n_atoms=6, n_patches=2000, dictionary="omp1", pooling=(1, 3), power=0.5, random_state=0),
     IMAGE_INPUT_FAILURES),
    (SoftThresholdPatches(n_atoms=8, n_patches=2000, n_components=20, mirror_invariant=True, random_state=0),
     IMAGE_INPUT_FAILURES),
]
IDS = [repr(estimator) for estimator, _ in EXTRACTORS]
IMAGES = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("estimator, expected_failures", EXTRACTORS, ids=IDS)
def test_scikit_learn_checks(estimator, expected_failures):
    results = check_estimator(estimator, expected_failed_checks=expected_failures, on_fail=None)
    by_status = {}
    for result in results:
        by_status.setdefault(result["status"], set()).add(result["check_name"])
    assert "failed" not in by_status, by_status.get("failed")
    assert by_status.get("xfail", set()) == set(expected_failures)
    assert len(by_status["passed"]) >= 12


@pytest.mark.parametrize("estimator, _", EXTRACTORS, ids=IDS)
def test_image_batch_counterparts_of_the_generic_checks(estimator, _):
    params = estimator.get_params()
    fitted = clone(estimator)
    assert fitted.fit(IMAGES, np.arange(len(IMAGES))) is fitted
    assert fitted.get_params() == params
    features = fitted.transform(IMAGES)
    assert features.dtype == np.float32
    assert features.shape == (len(IMAGES), fitted.n_features_out_)
    assert fitted.n_features_out_ == clone(estimator).n_features_out((32, 32))
    assert len(fitted.get_feature_names_out()) == features.shape[1]
    np.testing.assert_array_equal(clone(estimator).fit_transform(IMAGES), features)
    order = np.random.default_rng(1).permutation(len(IMAGES))
    np.testing.assert_array_equal(fitted.transform(IMAGES[order]), features[order])
    np.testing.assert_array_equal(np.vstack([fitted.transform(IMAGES[:5]), fitted.transform(IMAGES[5:])]), features)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).transform(IMAGES), features)
    read_only = IMAGES.copy()
    read_only.setflags(write=False)
    np.testing.assert_array_equal(fitted.transform(np.asfortranarray(read_only)), features)
    with pytest.raises(ValueError, match="image batch"):
        fitted.transform(IMAGES.reshape(len(IMAGES), -1))
