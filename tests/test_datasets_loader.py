"""featpipe.datasets entry points: sources, fingerprints, .npz files, splits and bad input."""

import os

import numpy as np
import pytest
from PIL import Image

from featpipe.datasets import Dataset, DatasetError, describe_source, load_dataset
from featpipe.datasets.splits import allocate, default_val_size, resolve_val_size, stratified_holdout


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _images(rng, n, size=8):
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _folder(root, n_per_class=4):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for index in range(n_per_class):
            Image.fromarray(_images(rng, 1)[0]).save(root / name / f"{index}.png")
    return root


# --- splits ---------------------------------------------------------------

@pytest.mark.parametrize("n_train, expected", [(50000, 1000), (49000, 1000), (10000, 1000), (9999, 1000),
                                               (1500, 150), (24, 2), (4, 0)])
def test_default_validation_size(n_train, expected):
    assert default_val_size(n_train) == expected == min(1000, int(np.floor(0.1 * n_train + 0.5)))


def test_validation_size_forms_and_errors():
    assert resolve_val_size(None, 1500) == 150
    assert resolve_val_size(40, 1500) == 40
    assert resolve_val_size(0.25, 1500) == 375
    for bad, message in ((-1, ">= 0"), (1500, "leaves no training images"), (1.5, r"in \(0, 1\)"),
                         (True, "count or a fraction"), ("10", "count or a fraction")):
        with pytest.raises(DatasetError, match=message):
            resolve_val_size(bad, 1500)


def test_allocate_is_proportional_and_exact():
    counts = np.array([50, 30, 20, 1])
    for total in range(0, 102):
        shares = allocate(counts, total)
        assert shares.sum() == total and np.all(shares <= counts)
        assert np.all(np.abs(shares - counts * total / counts.sum()) < 1)


def test_stratified_holdout_preserves_classes_and_is_seeded():
    labels = np.repeat(np.arange(4), [400, 300, 200, 100])
    kept, held = stratified_holdout(labels, 100, seed=3, stream=2)
    np.testing.assert_array_equal(np.bincount(labels[held]), [40, 30, 20, 10])
    np.testing.assert_array_equal(np.sort(np.concatenate([kept, held])), np.arange(1000))
    again_kept, again_held = stratified_holdout(labels, 100, seed=3, stream=2)
    np.testing.assert_array_equal(held, again_held)
    assert not np.array_equal(held, stratified_holdout(labels, 100, seed=4, stream=2)[1])
    assert not np.array_equal(held, stratified_holdout(labels, 100, seed=3, stream=1)[1])


def test_validation_is_held_out_of_train_only(tmp_path):
    rng = np.random.default_rng(1)
    X_train = _images(rng, 200)
    y_train = np.repeat([0, 1], 100)
    path = _npz(tmp_path / "d.npz", X_train=X_train, y_train=y_train, X_test=_images(rng, 10),
                y_test=np.zeros(10))
    dataset = load_dataset(path, image_size=8, val_size=20, seed=0)
    assert (len(dataset.y_train), len(dataset.y_val), len(dataset.y_test)) == (180, 20, 10)
    np.testing.assert_array_equal(np.bincount(dataset.y_val), [10, 10])
    seen = {image.tobytes() for image in dataset.X_train} | {image.tobytes() for image in dataset.X_val}
    assert seen == {image.tobytes() for image in X_train}


# --- .npz -----------------------------------------------------------------

def test_npz_round_trip_with_string_labels_and_float_images(tmp_path):
    rng = np.random.default_rng(2)
    X_train = _images(rng, 30)
    X_test = rng.random((6, 8, 8)).astype(np.float32)  # grey floats in [0, 1]
    y_train = np.array(["dog", "cat", "emu"] * 10)
    y_test = np.array(["emu", "cat"] * 3)
    path = _npz(tmp_path / "d.npz", X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test)
    dataset = load_dataset(path, image_size=8, val_size=0)
    assert dataset.name == f"npz:{tmp_path / 'd.npz'}"
    assert dataset.classes == ["cat", "dog", "emu"]
    np.testing.assert_array_equal(dataset.X_train, X_train)
    np.testing.assert_array_equal(dataset.y_train, np.array([1, 0, 2] * 10))
    np.testing.assert_array_equal(dataset.y_test, np.array([2, 0] * 3))
    assert dataset.X_test.shape == (6, 8, 8, 3)
    np.testing.assert_array_equal(dataset.X_test[..., 1], np.rint(X_test * 255).astype(np.uint8))


def test_npz_with_classes_and_validation_split(tmp_path):
    rng = np.random.default_rng(3)
    arrays = dict(X_train=_images(rng, 8, 16), y_train=np.array([0, 1] * 4), X_test=_images(rng, 4, 16),
                  y_test=np.array([1, 0, 1, 0]), X_val=_images(rng, 2, 16), y_val=np.array([1, 1]),
                  classes=np.array(["no", "yes"]))
    dataset = load_dataset(_npz(tmp_path / "d.npz", **arrays), image_size=4)
    assert dataset.classes == ["no", "yes"]
    np.testing.assert_array_equal(dataset.y_val, [1, 1])
    assert dataset.X_val.shape == (2, 4, 4, 3) and len(dataset.y_train) == 8
    expected = np.asarray(Image.fromarray(arrays["X_val"][0]).resize((4, 4), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(dataset.X_val[0], expected)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"y_test": None}, "lacks y_test"),
        ({"X_train": np.zeros((5, 8, 8, 2), np.uint8)}, "X_train: expected an image batch"),
        ({"y_train": np.zeros((5, 1))}, r"y_train must be one label per image, shape \(6,\)"),
        ({"X_test": np.zeros((2, 9, 9, 3), np.uint8)}, "images of different shapes"),
        ({"y_test": np.array([0, 7])}, "has a label that is not a class: 7"),
        ({"classes": np.array(["a", "b"]), "y_train": np.array([0, 1, 2, 0, 1, 2])}, r"outside 0\.\.1"),
        ({"y_train": np.zeros(6, np.int64), "y_test": np.zeros(2, np.int64)}, "train holds only one class"),
        ({"y_train": np.array(["x", "y"] * 3), "y_test": np.array(["x", "z"])}, "not a class: 'z'"),
        ({"X_val": np.zeros((1, 8, 8, 3), np.uint8)}, "X_val and y_val go together"),
    ],
)
def test_bad_npz_files(tmp_path, change, message):
    arrays = dict(X_train=np.zeros((6, 8, 8, 3), np.uint8), y_train=np.array([0, 1, 2] * 2),
                  X_test=np.zeros((2, 8, 8, 3), np.uint8), y_test=np.array([0, 1]))
    arrays.update(change)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset(_npz(tmp_path / "d.npz", **arrays), val_size=0)
    assert "\n" not in str(caught.value)


def test_npz_that_is_not_an_npz(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"nonsense")
    with pytest.raises(DatasetError, match="cannot read .* as an .npz"):
        load_dataset(tmp_path / "d.npz")


# --- sources and bad input -------------------------------------------------

@pytest.mark.parametrize(
    "data, image_size, message",
    [
        ("/no/such/folder", 32, "data set not found: /no/such/folder"),
        (None, 0, "at least 1 pixel"),
        (None, 2.5, "whole number of pixels"),
        (None, True, "whole number of pixels"),
    ],
)
def test_bad_sources_and_sizes(data, image_size, message):
    for function in (describe_source, load_dataset):
        with pytest.raises(DatasetError, match=message):
            function(data, image_size=image_size)


def test_a_file_that_is_no_data_set(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="cannot use .* as a data set"):
        load_dataset(tmp_path / "notes.txt")


def test_dataset_error_is_a_value_error():
    assert issubclass(DatasetError, ValueError)


def test_describe_source_kinds(tmp_path):
    folder = _folder(tmp_path / "imgs")
    described = describe_source(folder)
    assert described["kind"] == "folder" and described["n_images"] == 8
    assert described["name"] == f"folder:{folder}" and described["path"] == str(folder)
    assert describe_source(None)["kind"] == describe_source("builtin")["kind"] == "builtin"
    assert describe_source("cifar10")["n_images"] == 60000


# --- fingerprints ------------------------------------------------------------

def test_fingerprint_follows_the_files_and_the_parameters(tmp_path):
    folder = _folder(tmp_path / "imgs")
    first = describe_source(folder)["fingerprint"]
    assert describe_source(folder)["fingerprint"] == first
    assert load_dataset(folder, val_size=0).fingerprint == describe_source(folder, val_size=0)["fingerprint"]
    for changed in (dict(image_size=16), dict(seed=1), dict(val_size=2)):
        assert describe_source(folder, **changed)["fingerprint"] != first
    target = folder / "a" / "0.png"
    target.write_bytes(target.read_bytes() + b"\0")  # one file changes size
    changed_size = describe_source(folder)["fingerprint"]
    assert changed_size != first
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same size, newer
    assert describe_source(folder)["fingerprint"] not in (first, changed_size)
    (folder / "b" / "9.png").write_bytes((folder / "b" / "0.png").read_bytes())  # one file more
    assert describe_source(folder)["n_images"] == 9


def test_fingerprint_does_not_decode_images(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "imgs")

    def refuse(*args, **kwargs):
        raise AssertionError("describe_source decoded an image")

    monkeypatch.setattr("featpipe.datasets.images.decode_image", refuse)
    monkeypatch.setattr("featpipe.datasets.builtin.make_builtin", refuse)
    assert len(describe_source(folder)["fingerprint"]) == 32
    assert len(describe_source("builtin")["fingerprint"]) == 32


def test_npz_fingerprint_follows_its_bytes(tmp_path):
    rng = np.random.default_rng(4)
    arrays = dict(X_train=_images(rng, 4), y_train=np.array([0, 1, 0, 1]), X_test=_images(rng, 2),
                  y_test=np.array([0, 1]))
    path = _npz(tmp_path / "d.npz", **arrays)
    first = describe_source(path)["fingerprint"]
    arrays["X_test"][0, 0, 0, 0] ^= 1
    _npz(path, **arrays)
    assert describe_source(path)["fingerprint"] != first


def test_dataset_sizes_and_repr(tmp_path):
    dataset = load_dataset(_folder(tmp_path / "imgs", n_per_class=10), image_size=8)
    assert isinstance(dataset, Dataset)
    assert dataset.name == f"folder:{tmp_path / 'imgs'}" and dataset.classes == ["a", "b"]
    assert (len(dataset.y_train), len(dataset.y_val), len(dataset.y_test)) == (14, 2, 4)
    assert dataset.image_size == 8 and dataset.skipped == []
    assert "X_train" not in repr(dataset)
    assert dataset.y_train.dtype == np.int64 and dataset.X_train.dtype == np.uint8
