"""Image folders: layouts, image modes, unreadable files, and the real CIFAR-10 JPEG folder."""

import os
from pathlib import Path

import numpy as np
import pytest
from joblib import parallel_config
from PIL import Image

from featpipe.datasets import (
    DatasetError,
    UnreadableImageWarning,
    assign_splits,
    load_dataset,
    read_images,
    scan_image_folder,
)
from featpipe.datasets.splits import TEST_STREAM, VAL_STREAM, stratified_holdout

CIFAR_JPG = Path(__file__).resolve().parents[2] / "shared/datasets/cifar10-jpg"
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _save(path, image, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def _random_rgb(rng, height, width):
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _make_flat_folder(root, n_per_class, rng, classes=("a", "b", "c")):
    for name in classes:
        for index in range(n_per_class):
            _save(root / name / f"{index:03d}.png", _random_rgb(rng, 8, 8))
    return root


def test_every_mode_becomes_rgb_of_the_right_values(tmp_path):
    grey = np.full((5, 7), 90, np.uint8)
    sixteen = np.full((6, 4), 51400, np.uint16)  # 51400 / 257 = 200
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[...] = (10, 20, 30, 0)  # fully transparent: the colour still counts
    palette = Image.new("P", (9, 3))
    palette.putpalette([0, 0, 0, 250, 40, 5] + [0] * 762)
    palette.paste(1, (0, 0, 9, 3))
    palette.info["transparency"] = 0
    files = {
        "grey.png": (Image.fromarray(grey), (90, 90, 90)),
        "sixteen.png": (Image.fromarray(sixteen), (200, 200, 200)),
        "rgba.png": (Image.fromarray(rgba), (10, 20, 30)),
        "palette.png": (palette, (250, 40, 5)),
        "bilevel.bmp": (Image.new("1", (3, 3), 1), (255, 255, 255)),
        "cmyk.tiff": (Image.new("CMYK", (12, 12), (0, 255, 255, 0)), (255, 0, 0)),
        "big.gif": (Image.new("RGB", (300, 120), (0, 0, 255)).convert("P"), (0, 0, 255)),
    }
    paths = [_save(tmp_path / name, image) for name, (image, _) in files.items()]
    assert Image.open(tmp_path / "sixteen.png").mode.startswith("I")
    images, ok, skipped = read_images(paths, image_size=6)
    assert ok.all() and skipped == []
    assert images.shape == (len(files), 6, 6, 3) and images.dtype == np.uint8
    for image, (_, expected) in zip(images, files.values()):
        np.testing.assert_array_equal(image, np.broadcast_to(np.array(expected, np.uint8), (6, 6, 3)))


def test_resizing_matches_pillow_and_jpegs_decode_like_pillow(tmp_path):
    rng = np.random.default_rng(0)
    png = _save(tmp_path / "x.png", _random_rgb(rng, 40, 25))
    jpeg = _save(tmp_path / "y.jpg", _random_rgb(rng, 32, 32), quality=90)
    images, ok, _ = read_images([png, jpeg], image_size=16)
    expected_png = np.asarray(Image.open(png).convert("RGB").resize((16, 16), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(images[0], expected_png)
    same_size, _, _ = read_images([jpeg], image_size=32)
    np.testing.assert_array_equal(same_size[0], np.asarray(Image.open(jpeg).convert("RGB")))


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((4, 8, 3), np.uint8)
    pixels[:, :4] = 255  # white left half
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: displays turned 90 degrees clockwise
    path = _save(tmp_path / "turned.jpg", Image.fromarray(pixels), exif=exif, quality=100)
    images, ok, _ = read_images([path], image_size=8)
    assert images[0, :3, :, 0].mean() > 200 and images[0, -3:, :, 0].mean() < 50  # white top half


def test_corrupt_and_truncated_files_are_skipped_or_fail_strictly(tmp_path):
    rng = np.random.default_rng(1)
    root = _make_flat_folder(tmp_path / "data", 6, rng)
    corrupt = root / "a" / "bad.jpg"
    corrupt.write_bytes(b"not an image at all" * 10)
    whole = _save(root / "b" / "zz-truncated.png", _random_rgb(rng, 64, 64)).read_bytes()
    truncated = root / "b" / "zz-truncated.png"
    truncated.write_bytes(whole[: len(whole) // 2])
    (root / "b" / "notes.txt").write_text("ignored: not an image extension")
    paths, labels, classes, splits = scan_image_folder(root)
    assert len(paths) == 20 and str(root / "b" / "notes.txt") not in paths
    _, ok, skipped = read_images(paths)
    assert ok.sum() == 18
    assert [path for path, _ in skipped] == [str(corrupt), str(truncated)]
    with pytest.warns(UnreadableImageWarning, match="skipped 2 unreadable") as caught:
        dataset = load_dataset(root, image_size=8, val_size=0)
    assert len(caught) == 1
    assert len(dataset.skipped) == 2
    assert len(dataset.y_train) + len(dataset.y_test) == 18
    with pytest.raises(DatasetError, match=f"cannot read image {corrupt}"):
        load_dataset(root, image_size=8, strict=True)
    with pytest.raises(DatasetError, match="cannot read image"):
        read_images([truncated], strict=True)


def test_flat_folder_gets_a_stratified_seeded_test_split(tmp_path):
    root = _make_flat_folder(tmp_path / "data", 10, np.random.default_rng(2))
    dataset = load_dataset(root, image_size=8, val_size=3, seed=5)
    assert dataset.name == f"folder:{root}" and dataset.classes == ["a", "b", "c"]
    np.testing.assert_array_equal(np.bincount(dataset.y_test), [2, 2, 2])  # 20% of each class
    np.testing.assert_array_equal(np.bincount(dataset.y_val), [1, 1, 1])
    assert len(dataset.y_train) == 21
    again = load_dataset(root, image_size=8, val_size=3, seed=5)
    np.testing.assert_array_equal(again.X_test, dataset.X_test)
    other = load_dataset(root, image_size=8, val_size=3, seed=6)
    assert not np.array_equal(other.X_test, dataset.X_test)
    every_image = np.concatenate([dataset.X_train, dataset.X_val, dataset.X_test]).reshape(30, -1)
    assert len(np.unique(every_image, axis=0)) == 30  # no image in two splits


def test_assign_splits_draws_test_then_val_as_load_dataset_does(tmp_path):
    root = _make_flat_folder(tmp_path / "data", 10, np.random.default_rng(3))
    paths, labels, _, scanned = scan_image_folder(root)
    splits = assign_splits(labels, scanned, val_size=3, seed=5)
    kept, test = stratified_holdout(labels, 6, 5, TEST_STREAM)  # 20% of 30 images
    _, val = stratified_holdout(labels[kept], 3, 5, VAL_STREAM)
    expected = np.full(len(labels), "train")
    expected[test], expected[kept[val]] = "test", "val"
    np.testing.assert_array_equal(splits, expected)
    images = read_images(paths, 8).images
    dataset = load_dataset(root, image_size=8, val_size=3, seed=5)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(dataset, f"X_{split}"), images[splits == split])
        np.testing.assert_array_equal(getattr(dataset, f"y_{split}"), labels[splits == split])


def test_train_test_layout_is_kept_and_nested_files_found(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "data"
    _make_flat_folder(root / "train", 5, rng, classes=("cat", "dog"))
    _save(root / "train" / "dog" / "more" / "deep.png", _random_rgb(rng, 8, 8))
    _make_flat_folder(root / "test", 2, rng, classes=("cat", "dog"))
    (root / "train" / ".hidden").mkdir()
    paths, labels, classes, splits = scan_image_folder(root)
    assert classes == ["cat", "dog"]
    assert list(splits) == ["train"] * 11 + ["test"] * 4
    assert paths[10] == str(root / "train" / "dog" / "more" / "deep.png")
    dataset = load_dataset(root, image_size=8, val_size=0)
    assert (len(dataset.y_train), len(dataset.y_val), len(dataset.y_test)) == (11, 0, 4)
    assert dataset.X_val.shape == (0, 8, 8, 3)
    expected = np.asarray(Image.open(root / "test" / "cat" / "000.png").convert("RGB"))
    np.testing.assert_array_equal(dataset.X_test[0], expected)


@pytest.mark.parametrize(
    "layout, message",
    [
        ({}, "no images found"),
        ({"only/x.png": 1, "only/y.png": 1}, "only one class"),
        ({"x.png": 1, "y.png": 1}, "put each class in its own folder"),
        ({"train/a/x.png": 1, "train/b/x.png": 1, "test/a/x.png": 1, "test/c/x.png": 1},
         "test split of .* has classes with no training images: c"),
    ],
)
def test_unusable_folders_raise_one_clear_line(tmp_path, layout, message):
    root = tmp_path / "data"
    root.mkdir()
    for relative in layout:
        _save(root / relative, _random_rgb(np.random.default_rng(0), 4, 4))
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset(root)
    assert "\n" not in str(caught.value)


def test_a_folder_of_only_unreadable_files(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="no readable images .* all 2 failed"):
        load_dataset(tmp_path)


def test_parallel_reading_equals_serial(tmp_path, monkeypatch):
    monkeypatch.setattr("featpipe.datasets.images.READ_CHUNK_SIZE", 50)
    rng = np.random.default_rng(4)
    paths = [_save(tmp_path / f"{index:04d}.png", _random_rgb(rng, 9, 11)) for index in range(120)]
    paths.insert(70, tmp_path / "missing.png")
    done = []
    serial = read_images(paths, image_size=7, n_jobs=1)
    with parallel_config(backend="threading"):  # the chunked parallel path, without process start-up
        parallel = read_images(paths, image_size=7, n_jobs=2, progress=done.append)
    np.testing.assert_array_equal(serial.images, parallel.images)
    np.testing.assert_array_equal(serial.ok, parallel.ok)
    assert parallel.skipped == serial.skipped and len(serial.skipped) == 1
    assert serial.images.shape == (120, 7, 7, 3)
    assert done == [50, 50, 21]


@pytest.fixture(scope="module")
def cifar_scan():
    return scan_image_folder(CIFAR_JPG)


@pytest.mark.cifar
def test_scan_of_the_real_cifar_folder(cifar_scan):
    paths, labels, classes, splits = cifar_scan
    assert classes == CIFAR_CLASSES
    np.testing.assert_array_equal(np.bincount(labels[splits == "train"]), np.full(10, 5000))
    np.testing.assert_array_equal(np.bincount(labels[splits == "test"]), np.full(10, 1000))
    assert paths == sorted(paths, key=lambda path: (not path.startswith(str(CIFAR_JPG / "train")), path))
    for path, label in zip(paths[::7919], labels[::7919]):
        assert Path(path).parent.name == classes[label]


@pytest.mark.cifar
def test_read_a_few_real_cifar_images(cifar_scan):
    paths = cifar_scan[0][::6000]
    images, ok, _ = read_images(paths)
    assert ok.all()
    for path, image in zip(paths, images):
        np.testing.assert_array_equal(image, np.asarray(Image.open(path).convert("RGB")))


@pytest.mark.cifar
def test_load_a_symlinked_cifar_subset(tmp_path, cifar_scan):
    paths, labels, classes, splits = cifar_scan
    for split, per_class in (("train", 20), ("test", 5)):
        for label, name in enumerate(classes):
            chosen = [path for path, lab, spl in zip(paths, labels, splits) if lab == label and spl == split]
            (tmp_path / split / name).mkdir(parents=True)
            for path in chosen[:per_class]:
                os.symlink(path, tmp_path / split / name / Path(path).name)
    dataset = load_dataset(tmp_path, val_size=20)
    assert dataset.classes == CIFAR_CLASSES
    assert (len(dataset.y_train), len(dataset.y_val), len(dataset.y_test)) == (180, 20, 50)
    first_test = sorted((CIFAR_JPG / "test" / "airplane").iterdir())[0]
    np.testing.assert_array_equal(dataset.X_test[0], np.asarray(Image.open(first_test).convert("RGB")))
