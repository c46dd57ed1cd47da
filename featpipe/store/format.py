"""The on-disk format of a feature store written by ``featpipe extract``.

A store is a folder::

    STORE/
        manifest.json             what the store holds; written last, atomically
        extractors.skops          the fitted extractors (a FeatureUnion, featpipe.model_io)
        shards/shard-000000.npy   float32 (n_rows, D) features of input chunk 0
        shards/shard-000000.json  its commit record: input rows, sha256, skipped images
        .lock                     present while a job writes the store (featpipe.store.lock)
        timings.json              seconds the last job took (kept apart: the other files are
                                  byte for byte the same for a resumed and an uninterrupted job)

Every file is written under a temporary name and renamed into place, so a
reader never sees half a shard: a shard counts as finished once its commit
record (written after the ``.npy``) exists. A job killed at any moment
leaves only finished shards and temporary files, which the next run deletes.

The reader is :mod:`featpipe.store.reader`; what a manifest or shard record
must satisfy before any file it names is opened is :mod:`featpipe.store.manifest`.
"""

import errno
import hashlib
import io
import json
import os
import uuid
from pathlib import Path

import numpy as np

from featpipe.digests import file_sha256
from featpipe.errors import StoreError
from featpipe.store.manifest import checked_shard_path

MANIFEST_NAME = "manifest.json"
EXTRACTORS_NAME = "extractors.skops"
SHARDS_DIR = "shards"
LOCK_NAME = ".lock"
TIMINGS_NAME = "timings.json"
STORE_FORMAT_VERSION = 1
"""Version of the store layout and manifest; a reader refuses stores of another version."""
_TEMPORARY_MARK = ".tmp-"


def distinct_feature_names(names):
    """Feature names made usable as keys: a name's second use is ``NAME-2``, its third ``NAME-3``.

    A pipeline may use one extractor twice with other parameters (two
    ``patches`` dictionaries); widths keyed by plain names would merge them.
    """
    seen = {}
    distinct = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        distinct.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return distinct


def shard_stem(index):
    """File name, without extension, of shard ``index``: ``shard-000012``."""
    return f"shard-{index:06d}"


def _temporary_name(path):
    return path.with_name(f".{path.name}{_TEMPORARY_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def disk_error(path, error):
    """The :class:`StoreError` for an ``OSError`` raised while writing ``path``."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(
            f"disk full while writing {path}; nothing half-written was kept: "
            "free some space and run the same command again to resume"
        )
    return StoreError(f"cannot write {path}: {error.strerror or error}")


def _atomic_write(path, write):
    """Call ``write(file)`` on a temporary file, then rename it to ``path``.

    On any failure the temporary file is removed; ``OSError`` becomes
    :class:`StoreError`.
    """
    temporary = _temporary_name(path)
    try:
        with temporary.open("wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise disk_error(path, error) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _write_json(path, document):
    text = json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")
    _atomic_write(path, lambda file: file.write(text))


def _read_json(path, what):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise StoreError(f"cannot read {what} {path}: {error}") from None


def write_shard(store_dir, index, features, inputs, skipped):
    """Write shard ``index`` and then its commit record; return the record.

    Parameters
    ----------
    store_dir : path-like
        The store folder.
    index : int
        Shard number; shard ``i`` holds input chunk ``i``.
    features : ndarray of float32, shape (n_rows, D)
        Features of the chunk's readable images, in input order.
    inputs : (int, int)
        ``(start, stop)`` positions of the chunk in the job's input list.
    skipped : list of (int, str, str)
        ``(position in chunk, path, reason)`` of each unreadable image.

    Returns
    -------
    record : dict
        ``index``, ``file``, ``inputs``, ``n_rows``, ``sha256``, ``skipped``.
    """
    encoded = io.BytesIO()
    np.lib.format.write_array(encoded, np.ascontiguousarray(features, dtype=np.float32), allow_pickle=False)
    shards = Path(store_dir) / SHARDS_DIR
    stem = shard_stem(index)
    _atomic_write(shards / f"{stem}.npy", lambda file: file.write(encoded.getbuffer()))
    record = {
        "index": int(index),
        "file": f"{SHARDS_DIR}/{stem}.npy",
        "inputs": [int(inputs[0]), int(inputs[1])],
        "n_rows": int(features.shape[0]),
        "sha256": hashlib.sha256(encoded.getbuffer()).hexdigest(),
        "skipped": [[int(position), str(path), str(reason)] for position, path, reason in skipped],
    }
    _write_json(shards / f"{stem}.json", record)
    return record


def read_shard_record(store_dir, index):
    """The commit record of shard ``index``, or ``None`` when it is not finished."""
    return _read_json(Path(store_dir) / SHARDS_DIR / f"{shard_stem(index)}.json", "shard record")


def shard_is_intact(store_dir, record):
    """Whether the shard file of ``record`` exists and matches its sha256.

    Raises
    ------
    StoreError
        When the record names a file other than the writer's name for its
        index, or the shard is a symbolic link (:mod:`featpipe.store.manifest`).
    """
    if not isinstance(record, dict):
        raise StoreError(f"a shard record of store {store_dir} is not a JSON object")
    path = checked_shard_path(store_dir, SHARDS_DIR, record.get("index"), record.get("file"), StoreError)
    return path.is_file() and file_sha256(path) == record.get("sha256")


def save_extractors(store_dir, pairs):
    """Save fitted ``(name, extractor)`` pairs as a FeatureUnion in skops format, atomically."""
    from sklearn.pipeline import FeatureUnion

    from featpipe.model_io import save_model

    path = Path(store_dir) / EXTRACTORS_NAME
    temporary = _temporary_name(path)
    try:
        save_model(FeatureUnion(list(pairs)), temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise disk_error(path, error) from None


def load_extractors(store_dir):
    """The fitted ``(name, extractor)`` pairs saved by :func:`save_extractors`, or ``None``."""
    path = Path(store_dir) / EXTRACTORS_NAME
    if not path.is_file():
        return None
    from featpipe.model_io import load_model

    return list(load_model(path).transformer_list)


def remove_shards(store_dir):
    """Delete every shard and shard record (they were made by extractors that were never saved)."""
    for path in (Path(store_dir) / SHARDS_DIR).glob("shard-*"):
        path.unlink()


def remove_temporary_files(store_dir):
    """Delete what killed writers left behind (names containing ``.tmp-``)."""
    store_dir = Path(store_dir)
    for folder in (store_dir, store_dir / SHARDS_DIR):
        if folder.is_dir():
            for path in folder.glob(f".*{_TEMPORARY_MARK}*"):
                path.unlink(missing_ok=True)


def read_manifest(store_dir):
    """The store's manifest as a dict, or ``None`` when there is none yet."""
    return _read_json(Path(store_dir) / MANIFEST_NAME, "manifest")


def write_manifest(store_dir, manifest):
    """Write ``manifest.json`` atomically."""
    _write_json(Path(store_dir) / MANIFEST_NAME, manifest)


def write_timings(store_dir, seconds):
    """Write ``timings.json``: how long the job that finished the store took."""
    _write_json(Path(store_dir) / TIMINGS_NAME, {"seconds": round(float(seconds), 3)})
