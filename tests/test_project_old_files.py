"""Run folders and feature stores written by older featpipe versions still load and predict the same.

The files under ``tests/fixtures/written-by-4cc8906`` were written by the code before the
package reorganization (see the README there); skops files name the class of every object they
hold, so a class moved without a re-export would break them.
"""

import json
from pathlib import Path

import numpy as np

from featpipe.datasets import load_dataset
from featpipe.model_io import load_model
from featpipe.store import open as open_store

OLD_FILES = Path(__file__).parent / "fixtures" / "written-by-4cc8906"


def _expected():
    return json.loads((OLD_FILES / "expected.json").read_text(encoding="utf-8"))


def test_old_run_folder_model_predicts_the_recorded_labels():
    model = load_model(OLD_FILES / "run" / "model.skops")
    arrays = np.load(OLD_FILES / "images.npz")
    images = np.concatenate([arrays["X_train"], arrays["X_test"]])
    np.testing.assert_array_equal(model.predict(images), _expected()["images_predictions"])


def test_old_store_opens_and_its_extractors_reproduce_its_rows():
    store = open_store(OLD_FILES / "store")
    dataset = load_dataset(str(OLD_FILES / "images.npz"), image_size=8)
    images = np.concatenate([dataset.X_train, dataset.X_val, dataset.X_test])
    labels = np.concatenate([dataset.y_train, dataset.y_val, dataset.y_test])
    np.testing.assert_array_equal(store.labels, labels)
    recomputed = np.hstack([extractor.transform(images) for _, extractor in store.load_extractors()])
    np.testing.assert_allclose(np.asarray(store.features), recomputed, rtol=1e-6)


def test_old_run_model_on_old_store_rows_predicts_the_recorded_labels():
    model = load_model(OLD_FILES / "run" / "model.skops")
    store = open_store(OLD_FILES / "store")
    np.testing.assert_array_equal(model[1:].predict(np.asarray(store.features)),
                                  _expected()["store_predictions"])


def test_old_import_paths_still_work():
    from featpipe.features.pictures import plot_color_histogram, plot_hog
    from featpipe.features.plotting import plot_words
    from featpipe.features.words_pictures import plot_words as old_plot_words
    from featpipe.pipeline import run_pipeline
    from featpipe.pipeline.run import run_pipeline as run_pipeline_here
    from featpipe.pipeline.spec import parse_spec
    from featpipe.spec import parse_spec as old_parse_spec
    from featpipe.spec import resolve
    from featpipe.store import is_store
    from featpipe.store import open as open_store
    from featpipe.store.reader import open as open_here

    assert old_plot_words is plot_words and old_parse_spec is parse_spec and run_pipeline is run_pipeline_here
    assert open_store is open_here and is_store(OLD_FILES / "store") and not is_store(OLD_FILES / "run")
    assert callable(plot_hog) and callable(plot_color_histogram)
    assert resolve("raw+svm").name == "raw+svm"
