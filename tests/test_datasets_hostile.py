"""Hostile image folders: oversized headers, decompression bombs, broken symbolic links, draft decoding."""

import os
import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from featpipe.datasets import DatasetError, load_dataset, read_images
from featpipe.datasets.images import DEFAULT_MAX_PIXELS, ImageTooLargeError, decode_image
from hostile_images import write_flat_png


def _photo(size, seed=0):
    """A smooth, photo-like RGB image: low-frequency gradients plus a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    channels = [np.sin(2 * np.pi * (a * x + b * y) + c) for a, b, c in rng.uniform(0, 3, size=(3, 3))]
    image = 127.5 + 100 * np.stack(channels, axis=-1) + rng.normal(0, 4, size=(size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("width, height, bit_depth, colour", [
    (8000, 8000, 16, "grey"),       # 64 M pixels: under Pillow's limit, over featpipe's
    (7000, 7000, 8, "palette"),     # 49 M pixels
])
def test_oversized_header_is_refused_before_decoding(tmp_path, width, height, bit_depth, colour):
    path = write_flat_png(tmp_path / "big.png", width, height, bit_depth, colour)
    with Image.open(path) as image:
        assert image.size == (width, height) and image.mode in ("I;16B", "I;16", "P")
    tracemalloc.start()
    with pytest.raises(ImageTooLargeError, match=f"{width}x{height} image .* larger than --max-pixels 40,000,000"):
        decode_image(path, 32)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1e6  # the 64-128 MB of pixels were never allocated


def test_the_13300_pixel_png_of_the_issue_is_skipped_naming_the_file(tmp_path):
    """177 M pixels, 374 KB: Pillow only warns about it (under twice its limit); featpipe skips it."""
    folder = tmp_path / "images"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for index in range(3):
            Image.fromarray(_photo(24, seed=index)).save(folder / label / f"{index}.png")
    bomb = write_flat_png(folder / "a" / "bomb.png", 13300, 13300)
    assert bomb.stat().st_size < 500_000
    started = time.perf_counter()
    with pytest.warns(UserWarning, match="bomb.png") as caught:
        dataset = load_dataset(str(folder), image_size=16, val_size=0)
    assert time.perf_counter() - started < 5
    assert [path for path, _ in dataset.skipped] == [str(bomb)]
    assert "DecompressionBombWarning" in dataset.skipped[0][1]
    assert all("bomb.png" in str(warning.message) for warning in caught)
    with pytest.raises(DatasetError, match="bomb.png"):
        load_dataset(str(folder), image_size=16, val_size=0, strict=True)


def test_max_pixels_is_counted_after_the_jpeg_draft_scale(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(_photo(1024)).save(path, quality=92)
    # image_size 100 needs >= 200 pixels a side: 1/4 scale (256) is the smallest that keeps it
    assert decode_image(path, 100, max_pixels=256 * 256).shape == (100, 100, 3)
    with pytest.raises(ImageTooLargeError, match="256x256 image"):
        decode_image(path, 100, max_pixels=256 * 256 - 1)
    # image_size 32 needs >= 64: 1/8 scale (128) keeps it
    with pytest.raises(ImageTooLargeError, match="128x128 image"):
        decode_image(path, 32, max_pixels=128 * 128 - 1)


def test_draft_decoding_stays_close_to_a_full_decode(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(_photo(1600, seed=3)).save(path, quality=92)
    with Image.open(path) as image:
        full = np.asarray(image.convert("RGB").resize((32, 32), Image.Resampling.BICUBIC), dtype=np.float32)
    drafted = decode_image(path, 32).astype(np.float32)
    assert np.abs(drafted - full).mean() < 1.5
    assert np.abs(drafted - full).max() < 12


def test_small_images_decode_as_before(tmp_path):
    path = tmp_path / "small.jpg"
    Image.fromarray(_photo(32)).save(path, quality=95)
    with Image.open(path) as image:
        expected = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(decode_image(path, 32), expected)


def test_max_pixels_skips_in_read_images_and_refuses_strictly(tmp_path):
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    Image.fromarray(_photo(20)).save(small)
    Image.fromarray(_photo(120)).save(large)
    batch = read_images([small, large], image_size=8, max_pixels=100 * 100)
    assert batch.ok.tolist() == [True, False]
    assert batch.skipped[0][0] == str(large) and "120x120 image (14,400 pixels)" in batch.skipped[0][1]
    with pytest.raises(DatasetError, match="large.png.*larger than --max-pixels 10,000"):
        read_images([small, large], image_size=8, max_pixels=100 * 100, strict=True)
    assert read_images([small, large], image_size=8, max_pixels=None).ok.all()
    assert DEFAULT_MAX_PIXELS == 40_000_000


def test_dangling_links_and_link_loops_are_skipped_and_counted(tmp_path):
    folder = tmp_path / "images"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for index in range(3):
            Image.fromarray(_photo(16, seed=index)).save(folder / label / f"{index}.png")
    os.symlink(tmp_path / "gone.png", folder / "a" / "dangling.png")
    os.symlink(folder / "b" / "loop.png", folder / "b" / "loop.png")
    os.symlink(folder / "a", folder / "a" / "subfolder-loop")
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        dataset = load_dataset(str(folder), image_size=16, val_size=0)
    reasons = dict(dataset.skipped)
    assert reasons == {str(folder / "a" / "dangling.png"): f"dangling symbolic link to {tmp_path / 'gone.png'}",
                       str(folder / "b" / "loop.png"): "symbolic link loop"}
    assert len(dataset.y_train) + len(dataset.y_test) == 6


def test_extract_skips_bombs_and_broken_links_naming_each_file(tmp_path):
    from featpipe.pipeline.extract_job import run_extract_job

    folder = tmp_path / "images"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for index in range(3):
            Image.fromarray(_photo(16, seed=index)).save(folder / label / f"{index}.png")
    bomb = write_flat_png(folder / "a" / "bomb.png", 13300, 13300)
    os.symlink(tmp_path / "gone.png", folder / "b" / "dangling.png")
    store = run_extract_job("raw", str(folder), tmp_path / "store", n_jobs=1, progress=False)
    reasons = {entry["path"]: entry["reason"] for entry in store.skipped}
    assert set(reasons) == {str(bomb), str(folder / "b" / "dangling.png")}
    assert reasons[str(bomb)].startswith("DecompressionBombWarning: Image size (176890000 pixels)")
    assert reasons[str(folder / "b" / "dangling.png")] == f"dangling symbolic link to {tmp_path / 'gone.png'}"
    assert len(store) == 6
