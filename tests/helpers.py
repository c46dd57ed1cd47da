"""Helpers the tests share: small data sets, a CIFAR-10 folder of links, a hand-made feature store.

A plain module, imported as ``from helpers import ...``; pytest fixtures stay in ``conftest.py``.
"""

import os
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from featpipe.cli import cli
from featpipe.store import format as store_format

CIFAR_FOLDER = Path(
    os.environ.get("FEATPIPE_CIFAR_FOLDER")
    or Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpg"
)
"""The shared CIFAR-10 JPEG copy (``../shared/datasets/cifar10-jpg`` beside the checkout, or the
folder named by ``FEATPIPE_CIFAR_FOLDER``); tests that read it carry ``@pytest.mark.cifar`` and are
skipped by ``conftest.py`` when it is absent."""

CIFAR_MISSING = (f"reads CIFAR-10 from {CIFAR_FOLDER}, which is absent: put the JPEG copy at "
                 "../shared/datasets/cifar10-jpg beside the checkout or set FEATPIPE_CIFAR_FOLDER")


def cifar_available():
    """Whether the CIFAR-10 folder holds its ``train`` and ``test`` splits."""
    return (CIFAR_FOLDER / "train").is_dir() and (CIFAR_FOLDER / "test").is_dir()


def read_rgb(paths):
    """Decode image files into one uint8 (N, H, W, 3) array with Pillow."""
    return np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths])


def make_colour_images(n_per_class, n_classes=3, size=16, seed=0):
    """Noisy images whose dominant channel is their class: easy, but not trivial."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    images = rng.integers(0, 200, size=(len(labels), size, size, 3), dtype=np.uint8)
    images[np.arange(len(labels)), :, :, labels % 3] += 55
    return images, labels


def link_cifar_folder(root, n_train, n_test, n_classes=3, corrupt=False):
    """A small ROOT/{train,test}/<class>/ folder of CIFAR-10 JPEGs (symbolic links), optionally with a corrupt file."""
    for split, count in (("train", n_train), ("test", n_test)):
        for name in sorted(os.listdir(CIFAR_FOLDER / split))[:n_classes]:
            (root / split / name).mkdir(parents=True)
            for file_name in sorted(os.listdir(CIFAR_FOLDER / split / name))[:count]:
                os.symlink(CIFAR_FOLDER / split / name / file_name, root / split / name / file_name)
    if corrupt:
        (root / "train" / sorted(os.listdir(root / "train"))[1] / "0003_bad.jpg").write_bytes(b"\xff\xd8 truncated")
    return root


def read_shard_bytes(store_dir):
    """{file name: bytes} of every feature shard of a store folder."""
    return {path.name: path.read_bytes()
            for path in sorted((Path(store_dir) / store_format.SHARDS_DIR).glob("*.npy"))}


def write_small_store(folder, arrays, complete=True):
    """A store of the given shards with a minimal manifest, as the extract job writes it."""
    (folder / store_format.SHARDS_DIR).mkdir(parents=True)
    records = [store_format.write_shard(folder, index, array, (10 * index, 10 * index + len(array)), [])
               for index, array in enumerate(arrays)]
    offsets = np.cumsum([0] + [len(array) for array in arrays]).tolist()
    n_rows = offsets[-1]
    store_format.write_manifest(folder, {
        "format": store_format.STORE_FORMAT_VERSION, "complete": complete, "n_features": arrays[0].shape[1],
        "shards": [{"file": record["file"], "rows": [first, last], "n_rows": record["n_rows"],
                    "sha256": record["sha256"]}
                   for record, first, last in zip(records, offsets[:-1], offsets[1:])],
        "features": [{"name": "a", "width": 2}, {"name": "b", "width": arrays[0].shape[1] - 2}],
        "labels": list(range(n_rows)), "splits": ["train"] * (n_rows - 1) + ["test"],
        "classes": [f"class{row}" for row in range(n_rows)], "paths": [f"p{row}" for row in range(n_rows)],
        "skipped": [], "plan": {"image_size": 32},
    })
    return records


RAW_PIPELINE = """description = "raw pixels at 16x16, a small search grid"
[[features]]
name = "raw"
image_size = 16
[head]
name = "svm"
n_epochs = 5
[search]
learning_rates = [1e-4, 3e-4]
regs = [1e-4, 1e-2]
"""

WORDS_PIPELINE = """description = "8 k-means words, small enough for a test"
[[features]]
name = "words"
n_words = 8
n_patches = 2000
stride = 2
[head]
name = "svm"
"""


def run_featpipe(*args):
    """Run the featpipe command in-process; fail the test unless it exits with 0."""
    result = CliRunner().invoke(cli, [str(arg) for arg in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def builtin_report(tmp_path_factory):
    """Run the pipelines and write the report once per test session; return the report folder."""
    root = tmp_path_factory.getbasetemp() / "builtin-report"
    if not (root / "report" / "results.json").is_file():
        root.mkdir(exist_ok=True)
        (root / "raw+svm.toml").write_text(RAW_PIPELINE)
        (root / "words+svm.toml").write_text(WORDS_PIPELINE)
        common = ["--data", "builtin", "--cache-dir", root / "cache", "--jobs", "1", "--quiet"]
        run_featpipe("run", root / "raw+svm.toml", "--search", "--out", root / "raw-run", *common)
        run_featpipe("compare", "hog+color+svm", root / "words+svm.toml", "--from", root / "raw-run",
                  "--out", root / "report", *common)
    return root / "report"


STREAM_SHARD_ROWS = (150, 0, 230, 170, 200, 50)
"""Rows per shard of :func:`write_streaming_store` (one shard empty)."""


def write_streaming_store(folder, seed=0, n_features=12, shard_rows=STREAM_SHARD_ROWS):
    """A finished store of ``shard_rows`` rows per shard of separable-but-noisy five-class rows; return X, y, splits."""
    rng = np.random.default_rng(seed)
    n_rows = sum(shard_rows)
    y = rng.integers(0, 5, size=n_rows)
    centres = rng.normal(scale=0.6, size=(5, n_features))
    X = (3.0 + centres[y] + rng.normal(size=(n_rows, n_features)) * 2.0).astype(np.float32)
    splits = np.where(np.arange(n_rows) % 10 == 0, "test", "train")
    (folder / store_format.SHARDS_DIR).mkdir(parents=True)
    offsets = np.cumsum((0,) + tuple(shard_rows))
    records = [store_format.write_shard(folder, index, X[start:stop], (start, stop), [])
               for index, (start, stop) in enumerate(zip(offsets[:-1], offsets[1:]))]
    store_format.write_manifest(folder, {
        "format": store_format.STORE_FORMAT_VERSION, "complete": True, "n_features": n_features,
        "shards": [{"file": r["file"], "rows": [int(a), int(b)], "n_rows": r["n_rows"], "sha256": r["sha256"]}
                   for r, a, b in zip(records, offsets[:-1], offsets[1:])],
        "features": [{"name": "raw", "width": n_features}],
        "labels": y.tolist(), "splits": splits.tolist(), "classes": list("abcde"),
        "paths": [f"p{row}" for row in range(n_rows)], "skipped": [], "plan": {"image_size": 32},
    })
    return X, y, splits


def cifar_subset(split, per_class, seed):
    """``per_class`` seeded random CIFAR-10 JPEGs of each class of ``split``: images and labels."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, folder in enumerate(sorted((CIFAR_FOLDER / split).iterdir())):
        files = sorted(folder.glob("*.jpg"))
        for index in rng.choice(len(files), per_class, replace=False):
            images.append(np.asarray(Image.open(files[index]).convert("RGB")))
            labels.append(label)
    return np.stack(images), np.array(labels)


def ridge_accuracy(train, y_train, test, y_test):
    """Test accuracy of a standardized ridge classifier: a quick linear head for feature tests."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train)
    head = RidgeClassifier(alpha=10.0 * train.shape[1]).fit(scaler.transform(train), y_train)
    return head.score(scaler.transform(test), y_test)
