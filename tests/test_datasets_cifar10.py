"""CIFAR-10 python format: download from a loopback server with md5 check, batch folders, tarballs."""

import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading
from functools import partial

import numpy as np
import pytest

from featpipe.datasets import DatasetError, cifar10, describe_source, load_dataset

CLASSES = [f"class{index}" for index in range(10)]
PER_BATCH = 12


def _batch_pickle(rows, labels, name):
    batch = {b"batch_label": name.encode(), b"labels": [int(label) for label in labels],
             b"data": rows, b"filenames": [f"{index}.png".encode() for index in range(len(rows))]}
    return pickle.dumps(batch, protocol=2)


def _expected_image(row):
    """Unpack one 3,072-value row by the published layout, value by value."""
    image = np.empty((32, 32, 3), np.uint8)
    for channel in range(3):
        for y in range(32):
            for x in range(32):
                image[y, x, channel] = row[channel * 1024 + y * 32 + x]
    return image


@pytest.fixture(scope="module")
def cifar_files():
    """{file name: bytes} of a miniature CIFAR-10 python set, and its raw rows and labels."""
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, (6 * PER_BATCH, 3072), dtype=np.uint8)
    labels = np.tile(np.arange(10), 8)[: 6 * PER_BATCH]
    files = {}
    for index, name in enumerate(cifar10.TRAIN_BATCHES + (cifar10.TEST_BATCH,)):
        part = slice(index * PER_BATCH, (index + 1) * PER_BATCH)
        files[name] = _batch_pickle(rows[part], labels[part], name)
    files[cifar10.META_FILE] = pickle.dumps(
        {b"label_names": [name.encode() for name in CLASSES], b"num_vis": 3072}, protocol=2)
    return files, rows, labels


def _tarball(files):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"{cifar10.BATCH_FOLDER}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buffer.getvalue()


@pytest.fixture
def server(tmp_path, cifar_files):
    """A loopback HTTP server offering the miniature tarball; yields (url, md5, request log)."""
    served = tmp_path / "served"
    served.mkdir()
    blob = _tarball(cifar_files[0])
    (served / cifar10.CIFAR10_FILENAME).write_bytes(blob)
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=served))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/{cifar10.CIFAR10_FILENAME}"
        yield url, hashlib.md5(blob).hexdigest(), requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def _check_arrays(dataset, rows, labels):
    n_train = 5 * PER_BATCH
    assert dataset.classes == CLASSES
    combined = np.concatenate([dataset.X_train, dataset.X_val])
    combined_labels = np.concatenate([dataset.y_train, dataset.y_val])
    assert combined.shape == (n_train, 32, 32, 3)
    expected_train = {_expected_image(row).tobytes(): label for row, label in zip(rows[:n_train], labels[:n_train])}
    assert {image.tobytes(): label for image, label in zip(combined, combined_labels)} == expected_train
    for image, row in zip(dataset.X_test, rows[n_train:]):
        np.testing.assert_array_equal(image, _expected_image(row))
    np.testing.assert_array_equal(dataset.y_test, labels[n_train:])


def test_download_once_verified_then_read(tmp_path, server, cifar_files, monkeypatch):
    url, md5, requests = server
    monkeypatch.setattr(cifar10, "CIFAR10_URL", url)
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", md5)
    cache = tmp_path / "cache"
    dataset = load_dataset("cifar10", cache_dir=cache, val_size=6)
    assert dataset.name == "cifar10"
    assert (cache / cifar10.CIFAR10_FILENAME).is_file()
    _check_arrays(dataset, *cifar_files[1:])
    assert len(dataset.y_val) == 6 and len(dataset.y_train) == 54
    again = load_dataset("cifar10", cache_dir=cache, val_size=6)
    assert len(requests) == 1  # the second load used the cached, verified file
    np.testing.assert_array_equal(again.X_train, dataset.X_train)
    assert again.fingerprint == dataset.fingerprint == describe_source("cifar10", val_size=6)["fingerprint"]


def test_checksum_mismatch_is_a_clear_error_and_keeps_nothing(tmp_path, server, monkeypatch):
    url, _, _ = server
    monkeypatch.setattr(cifar10, "CIFAR10_URL", url)
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", "0" * 32)
    with pytest.raises(DatasetError, match="failed its checksum") as caught:
        load_dataset("cifar10", cache_dir=tmp_path / "cache")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "cache" / cifar10.CIFAR10_FILENAME).exists()


def test_unreachable_server_is_a_clear_error(tmp_path, server, monkeypatch):
    url, md5, _ = server
    monkeypatch.setattr(cifar10, "CIFAR10_URL", url.replace(cifar10.CIFAR10_FILENAME, "nothing-here.tar.gz"))
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", md5)
    with pytest.raises(DatasetError, match="cannot download CIFAR-10"):
        load_dataset("cifar10", cache_dir=tmp_path / "cache")


def test_batch_folder_parent_folder_and_tarball_read_the_same(tmp_path, cifar_files):
    files, rows, labels = cifar_files
    batches = tmp_path / "parent" / cifar10.BATCH_FOLDER
    batches.mkdir(parents=True)
    for name, blob in files.items():
        (batches / name).write_bytes(blob)
    tarball = tmp_path / cifar10.CIFAR10_FILENAME
    tarball.write_bytes(_tarball(files))
    from_folder = load_dataset(batches, val_size=6)
    assert from_folder.name == f"cifar10:{batches}"
    _check_arrays(from_folder, rows, labels)
    for other in (tmp_path / "parent", tarball):
        dataset = load_dataset(other, val_size=6)
        np.testing.assert_array_equal(dataset.X_train, from_folder.X_train)
        np.testing.assert_array_equal(dataset.y_test, from_folder.y_test)
    resized = load_dataset(batches, image_size=16, val_size=6)
    assert resized.X_test.shape == (PER_BATCH, 16, 16, 3)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_code_in_a_batch_pickle_is_refused(tmp_path, cifar_files):
    marker = tmp_path / "code-ran"
    files = dict(cifar_files[0])
    files["test_batch"] = pickle.dumps({b"data": _RunsCode(marker), b"labels": []}, protocol=2)
    for name, blob in files.items():
        (tmp_path / name).write_bytes(blob)
    with pytest.raises(DatasetError, match="test_batch is not a CIFAR-10 python batch: refusing to load"):
        load_dataset(tmp_path)
    assert not marker.exists()


def test_incomplete_batch_folder(tmp_path, cifar_files):
    (tmp_path / "data_batch_1").write_bytes(cifar_files[0]["data_batch_1"])
    with pytest.raises(DatasetError, match="missing data_batch_2"):
        load_dataset(tmp_path)
