"""Staged pipeline runs: outputs, caching, laziness and parallel equality."""

import json

import numpy as np
import pytest

from featpipe.features.raw import RawPixels
from featpipe.metrics_schema import STAGE_NAMES
from featpipe.model_io import load_model
from featpipe.pipeline.run import run_pipeline
from featpipe.pipeline.spec import SpecError, parse_spec


def _run(tmp_path, spec_text, out_name, **options):
    options.setdefault("cache_dir", tmp_path / "cache")
    return run_pipeline(parse_spec(spec_text), out=tmp_path / out_name, quiet=True, n_jobs=1, **options)


def test_default_run_on_the_builtin_data_set_writes_a_complete_run_folder(tmp_path):
    result = _run(tmp_path, "raw+softmax", "run")
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics))
    assert metrics["dataset"]["name"] == "builtin"
    n_classes = len(metrics["dataset"]["classes"])
    assert metrics["feature_width"] == 32 * 32 * 3
    assert 1.0 / n_classes + 0.2 < metrics["accuracy"]["test"] <= 1.0
    assert len(metrics["history"]["loss"]) == len(metrics["history"]["val_accuracy"]) > 0
    matrix = np.array(metrics["confusion_matrix"]["test"])
    assert matrix.shape == (n_classes, n_classes) and matrix.sum() == metrics["dataset"]["n_test"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(metrics["accuracy"]["test"])
    assert set(metrics["seconds"]) == set(STAGE_NAMES)
    assert not any(metrics["cache_hits"].values())
    examples = np.load(result.run_dir / "examples.npz")
    assert examples["images"].dtype == np.uint8 and examples["images"].shape[1:] == (32, 32, 3)
    assert np.all(examples["y_true"] != examples["y_pred"])
    model = load_model(result.run_dir / "model.skops")
    assert model.named_steps["head"].coef_.shape == (n_classes, 32 * 32 * 3)
    assert not list(tmp_path.glob(".run.partial-*"))


def test_second_identical_run_hits_every_stage_and_agrees(tmp_path, small_npz):
    first = _run(tmp_path, "raw+color+logreg", "first", data=str(small_npz))
    second = _run(tmp_path, "raw+color+logreg", "second", data=str(small_npz))
    assert 0.8 < first.metrics["accuracy"]["test"] <= 1.0
    assert first.metrics["dataset"]["classes"] == ["red", "green", "blue"]
    assert all(second.metrics["cache_hits"].values())
    assert second.metrics["accuracy"] == first.metrics["accuracy"]
    assert second.metrics["confusion_matrix"] == first.metrics["confusion_matrix"]
    first_model = load_model(first.run_dir / "model.skops")
    second_model = load_model(second.run_dir / "model.skops")
    np.testing.assert_array_equal(first_model.named_steps["head"].coef_, second_model.named_steps["head"].coef_)


def test_changing_one_feature_recomputes_only_that_feature(tmp_path, monkeypatch, small_npz):
    _run(tmp_path, "raw+color+logreg", "first", data=str(small_npz))
    raw_calls = []
    original = RawPixels._transform_images

    def counting(self, images):
        raw_calls.append(len(images))
        return original(self, images)

    monkeypatch.setattr(RawPixels, "_transform_images", counting)
    spec = parse_spec("raw+color+logreg")
    changed = spec.features[1].__class__("color", {"bins": 12})
    spec = spec.__class__(name=spec.name, features=(spec.features[0], changed), head=spec.head)
    result = run_pipeline(spec, data=str(small_npz), out=tmp_path / "second", quiet=True, n_jobs=1,
                          cache_dir=tmp_path / "cache")
    assert raw_calls == []
    assert result.metrics["cache_hits"]["load"]
    assert not result.metrics["cache_hits"]["extract"]
    assert not result.metrics["cache_hits"]["train"]


def test_no_cache_recomputes_and_writes_no_cache(tmp_path, small_npz):
    result = _run(tmp_path, "raw+logreg", "run", use_cache=False, data=str(small_npz))
    assert not any(result.metrics["cache_hits"].values())
    assert not (tmp_path / "cache").exists()


def test_image_size_smaller_than_a_feature_needs_fails_before_loading(tmp_path):
    with pytest.raises(SpecError, match="too small for feature 'hog'"):
        _run(tmp_path, "hog+svm", "run", image_size=4)
    assert not (tmp_path / "run").exists()


def test_run_on_a_feature_store_equals_the_run_on_its_images(tmp_path, small_npz):
    from featpipe.pipeline.extract_job import run_extract_job

    store = tmp_path / "store"
    run_extract_job("raw+color", data=str(small_npz), out=store, n_jobs=1, progress=False)
    direct = _run(tmp_path, "raw+color+softmax", "direct", data=str(small_npz))
    stored = _run(tmp_path, "raw+color+softmax", "stored", data=str(store))
    assert stored.metrics["dataset"]["n_test"] == direct.metrics["dataset"]["n_test"]
    assert stored.metrics["feature_width"] == direct.metrics["feature_width"]
    assert stored.metrics["accuracy"] == direct.metrics["accuracy"]
    assert not (stored.run_dir / "examples.npz").exists()
    with pytest.raises(SpecError, match="holds raw[+]color features; the pipeline asks for hog"):
        _run(tmp_path, "hog+softmax", "wrong", data=str(store))


def test_hflip_augmentation_trains_on_the_mirrored_images_too(tmp_path, small_npz):
    from dataclasses import replace

    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from featpipe.datasets import load_dataset
    from featpipe.features.hog import HOG

    spec = replace(parse_spec("hog+logreg"), augment=("hflip",))
    result = run_pipeline(spec, data=str(small_npz), out=tmp_path / "run", cache_dir=tmp_path / "cache",
                          quiet=True, n_jobs=1)
    dataset = load_dataset(str(small_npz))
    assert result.metrics["dataset"]["n_train"] == 2 * len(dataset.y_train)
    assert result.metrics["dataset"]["n_test"] == len(dataset.y_test)
    hog = HOG().fit(dataset.X_train)
    features = np.vstack([hog.transform(dataset.X_train), hog.transform(dataset.X_train[:, :, ::-1])])
    assert not np.allclose(features[: len(dataset.y_train)], features[len(dataset.y_train):])
    scaler = StandardScaler().fit(features)
    reference = LogisticRegression(random_state=0).fit(scaler.transform(features),
                                                       np.concatenate([dataset.y_train] * 2))
    model = load_model(result.run_dir / "model.skops")
    np.testing.assert_allclose(model.named_steps["head"].coef_, reference.coef_, rtol=1e-4, atol=1e-5)
    assert result.metrics["pipeline"]["augment"] == ["hflip"]


def test_augmentation_of_a_feature_store_is_refused(tmp_path, small_npz):
    from dataclasses import replace

    from featpipe.pipeline.extract_job import run_extract_job

    store = tmp_path / "store"
    run_extract_job("raw", data=str(small_npz), out=store, n_jobs=1, progress=False)
    with pytest.raises(SpecError, match="cannot be augmented"):
        run_pipeline(replace(parse_spec("raw+logreg"), augment=("hflip",)), data=str(store),
                     out=tmp_path / "run", cache_dir=tmp_path / "cache", quiet=True)


def test_normalize_stage_equals_standard_scaler_without_copying_the_matrix():
    import tracemalloc

    from sklearn.preprocessing import StandardScaler

    from featpipe.pipeline import stages

    features = np.random.default_rng(0).normal(3.0, 2.0, (20_000, 200)).astype(np.float32)
    tracemalloc.start()
    scaler = stages.normalize("key", "standard", features)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    reference = StandardScaler().fit(features)
    np.testing.assert_allclose(scaler.mean_, reference.mean_, rtol=1e-12)
    np.testing.assert_allclose(scaler.scale_, reference.scale_, rtol=1e-12)
    assert peak < features.nbytes / 2  # StandardScaler.fit itself needs a float64 copy: 2x nbytes


@pytest.fixture(scope="module")
def raw_color_store(tmp_path_factory, small_npz):
    from featpipe.pipeline.extract_job import run_extract_job

    store = tmp_path_factory.mktemp("streaming") / "store"
    run_extract_job("raw+color", data=str(small_npz), out=store, n_jobs=1, chunk_size=40, progress=False)
    return store


STREAMED_SPEC = """
[[features]]
name = "raw"
[[features]]
name = "color"
[head]
name = "svm"
squared = true
multi_class = "ovr"
optimizer = "lbfgs"
n_epochs = 300
reg = 0.3
"""


def _streamed_spec(tmp_path):
    from featpipe.pipeline.spec import load_pipeline_file

    path = tmp_path / "raw+color+svm2.toml"
    path.write_text(STREAMED_SPEC)
    return load_pipeline_file(path)


def test_a_store_over_the_memory_budget_trains_shard_by_shard_to_the_same_model(tmp_path, raw_color_store,
                                                                                capsys):
    spec = _streamed_spec(tmp_path)
    common = dict(data=str(raw_color_store), n_jobs=1, use_cache=False)
    in_memory = run_pipeline(spec, out=tmp_path / "memory", quiet=True, **common)
    streamed = run_pipeline(spec, out=tmp_path / "streamed", memory_budget=1024, **common)
    assert "read from the store shard by shard" in capsys.readouterr().err
    memory_loss, streamed_loss = in_memory.metrics["history"]["loss"], streamed.metrics["history"]["loss"]
    # One engine: the same block sums in the same order, so the same iterations and losses.
    assert len(streamed_loss) == len(memory_loss) > 5
    np.testing.assert_allclose(streamed_loss, memory_loss, rtol=1e-9)
    for split in ("train", "test"):
        assert streamed.metrics["accuracy"][split] == pytest.approx(in_memory.metrics["accuracy"][split], abs=0.02)
    assert streamed.metrics["accuracy"]["test"] > 0.6  # three classes: chance is 0.33
    memory_model = load_model(in_memory.run_dir / "model.skops")
    streamed_model = load_model(streamed.run_dir / "model.skops")
    np.testing.assert_allclose(streamed_model.named_steps["normalize"].mean_,
                               memory_model.named_steps["normalize"].mean_, rtol=1e-5)


def test_a_scikit_learn_head_over_the_memory_budget_is_refused(tmp_path, raw_color_store):
    with pytest.raises(SpecError, match="head 'logreg' is scikit-learn's.*use one of featpipe's heads"):
        _run(tmp_path, "raw+color+logreg", "refused", data=str(raw_color_store), memory_budget=1024)
    assert not (tmp_path / "refused").exists()


def test_on_dask_the_store_trains_on_the_workers_to_the_same_accuracy(tmp_path, raw_color_store):
    pytest.importorskip("distributed")
    spec = _streamed_spec(tmp_path)
    common = dict(data=str(raw_color_store), use_cache=False, quiet=True)
    local = run_pipeline(spec, out=tmp_path / "local", n_jobs=1, **common)
    on_dask = run_pipeline(spec, out=tmp_path / "dask", n_jobs=2, backend="dask", **common)
    assert on_dask.metrics["accuracy"] == pytest.approx(local.metrics["accuracy"], abs=0.02)
    assert on_dask.metrics["history"]["loss"][-1] == pytest.approx(local.metrics["history"]["loss"][-1], rel=1e-4)


def _write_image_folder(folder, n_images, seed):
    """``n_images`` coloured 16-pixel PNGs in one subfolder per class; return the images and labels."""
    from PIL import Image

    from helpers import make_colour_images

    images, labels = make_colour_images(n_images, size=16, seed=seed)
    for index, (image, label) in enumerate(zip(images, labels)):
        (folder / f"class{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"class{label}" / f"{index:03d}.png")
    return images, labels


def test_images_whose_features_exceed_the_budget_are_extracted_into_a_cached_store_first(tmp_path, capsys):
    _write_image_folder(tmp_path / "images", 40, seed=5)
    spec = _streamed_spec(tmp_path)
    common = dict(data=str(tmp_path / "images"), image_size=16, n_jobs=1, use_cache=False,
                  cache_dir=tmp_path / "cache")
    in_memory = run_pipeline(spec, out=tmp_path / "memory", quiet=True, **common)
    streamed = run_pipeline(spec, out=tmp_path / "streamed", memory_budget=1024, **common)
    messages = capsys.readouterr().err
    assert "would not fit the memory budget: extracting them into" in messages
    assert "read from the store shard by shard" in messages
    assert len(list((tmp_path / "cache" / "stores").iterdir())) == 1
    assert streamed.metrics["dataset"]["n_test"] == in_memory.metrics["dataset"]["n_test"]
    assert streamed.metrics["accuracy"]["val"] == pytest.approx(in_memory.metrics["accuracy"]["val"], abs=0.05)
    assert streamed.metrics["history"]["loss"][-1] == pytest.approx(in_memory.metrics["history"]["loss"][-1],
                                                                    rel=1e-3)


def test_an_augmented_pipeline_over_the_budget_streams_its_mirrored_images_as_extra_store_rows(tmp_path, capsys):
    from dataclasses import replace

    from PIL import Image

    from featpipe.features.raw import RawPixels
    from featpipe.store import open as open_store

    _write_image_folder(tmp_path / "images", 40, seed=6)
    spec = replace(_streamed_spec(tmp_path), augment=("hflip",))
    common = dict(data=str(tmp_path / "images"), image_size=16, n_jobs=1, use_cache=False,
                  cache_dir=tmp_path / "cache")
    in_memory = run_pipeline(spec, out=tmp_path / "memory", quiet=True, **common)
    streamed = run_pipeline(spec, out=tmp_path / "streamed", memory_budget=1024, **common)
    assert "extracting them into" in capsys.readouterr().err
    (store_dir,) = (tmp_path / "cache" / "stores").iterdir()
    stored = open_store(store_dir)
    train = np.flatnonzero(stored.splits == "train")
    mirrored = np.asarray(stored.manifest["mirrored"])
    assert len(mirrored) == len(train) // 2 and set(mirrored) <= set(train)
    originals = np.setdiff1d(train, mirrored)
    assert sorted(stored.paths[row] for row in mirrored) == sorted(stored.paths[row] for row in originals)
    row = int(mirrored[3])
    image = np.asarray(Image.open(stored.paths[row]).convert("RGB"))
    raw_width = stored.feature_widths["raw"]
    expected = RawPixels().fit(image[np.newaxis]).transform(image[np.newaxis, :, ::-1])[0]
    np.testing.assert_allclose(stored.features[row][:raw_width], expected, rtol=1e-6)
    assert streamed.metrics["dataset"]["n_train"] == in_memory.metrics["dataset"]["n_train"] == len(train)
    assert streamed.metrics["accuracy"]["val"] == pytest.approx(in_memory.metrics["accuracy"]["val"], abs=0.05)
    assert streamed.metrics["history"]["loss"][-1] == pytest.approx(in_memory.metrics["history"]["loss"][-1],
                                                                    rel=1e-3)


@pytest.mark.parametrize("spec_text, head, mirrored_rows, mirrored_images", [
    ("patches+svm", "svm", False, False),        # permutation + featpipe's head: MirroredRows, no copies
    ("patches+linearsvc", "linearsvc", True, False),  # permutation, but scikit-learn's head gets the rows
    ("hog+svm", "svm", True, True),              # no permutation: the mirrored images are extracted
])
def test_the_memory_estimate_counts_mirrored_rows_only_where_they_are_materialized(
        tmp_path, spec_text, head, mirrored_rows, mirrored_images):
    from dataclasses import replace

    from featpipe.memory_budget import image_bytes
    from featpipe.pipeline.image_store import in_memory_bytes
    from featpipe.pipeline.options import RunOptions
    from featpipe.pipeline.registry import make_feature

    n_images = len(_write_image_folder(tmp_path / "images", 20, seed=1)[0])
    spec = replace(parse_spec(spec_text), augment=("hflip",))
    options = RunOptions(image_size=16)
    width = sum(make_feature(step.name, step.params).n_features_out((16, 16)) for step in spec.features)
    expected = image_bytes(n_images * (1 + mirrored_images), 16) + n_images * (1 + mirrored_rows) * width * 4
    assert spec.head.name == head
    assert in_memory_bytes(spec, str(tmp_path / "images"), options) == expected


def test_features_are_stacked_split_by_split_releasing_each_part():
    from featpipe.pipeline.inputs import _stack_splits

    rng = np.random.default_rng(0)
    parts = [{split: rng.random((rows, width), dtype=np.float32) for split, rows in
              (("train", 5), ("val", 2), ("test", 3))} for width in (4, 1, 3)]
    expected = {split: np.hstack([part[split] for part in parts]) for split in ("train", "val", "test")}
    stacked = _stack_splits(parts)
    for split, array in expected.items():
        np.testing.assert_array_equal(stacked[split], array)
    assert all(value is None for part in parts for value in part.values())
    single = [{"train": np.ones((2, 2)), "val": np.ones((1, 2)), "test": np.ones((1, 2))}]
    assert _stack_splits(single)["train"] is single[0]["train"]


def test_a_feature_used_twice_keeps_both_widths_and_predicts_as_trained(tmp_path, small_npz):
    from featpipe.pipeline.spec import load_pipeline_file
    from featpipe.store.format import distinct_feature_names

    assert distinct_feature_names(["patches", "hog", "patches", "patches"]) == ["patches", "hog", "patches-2",
                                                                                "patches-3"]
    path = tmp_path / "two-colors.toml"
    path.write_text('[[features]]\nname = "color"\n\n[[features]]\nname = "color"\nchannels = "hsv"\n'
                    'bins = [4, 2, 2]\njoint = true\nmirror_invariant = true\n\n[head]\nname = "svm"\n')
    result = run_pipeline(load_pipeline_file(path), data=str(small_npz), out=tmp_path / "run", quiet=True,
                          use_cache=False, n_jobs=1)
    assert result.metrics["feature_widths"] == {"color": 10, "color-2": 16}
    assert result.metrics["feature_width"] == 26
    data = np.load(small_npz)
    model = load_model(result.run_dir / "model.skops")
    accuracy = np.mean(model.predict(data["X_test"]) == model.classes_[data["y_test"]])
    assert accuracy == pytest.approx(result.metrics["accuracy"]["test"])
