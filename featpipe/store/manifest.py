"""Checks on a feature store's ``manifest.json`` and shard records before anything they name is opened.

A store may come from a stranger, so its manifest is input like any other:
every shard it lists must be a regular file directly inside the store's own
``shards/`` folder, named exactly as the writer names shard ``index``
(``shards/shard-000012.npy``), neither a symbolic link nor reached through
one; no ``..``, no absolute path, no other name. Counts and labels must
agree with each other, so a reader never indexes past an array. Each check
raises :class:`featpipe.store.StoreError` with one line naming what is
wrong.
"""

import os
import re
import stat
from pathlib import Path

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SPLITS = frozenset({"train", "val", "test"})


def expected_shard_file(shards_dir_name, index):
    """The ``file`` the writer records for shard ``index``: ``shards/shard-000012.npy``."""
    return f"{shards_dir_name}/shard-{index:06d}.npy"


def _is_int(value, minimum=0):
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_str_list(value):
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def checked_shard_path(store_dir, shards_dir_name, index, file, error_class):
    """The path of shard ``index``, after checking that ``file`` is the writer's name for it.

    Parameters
    ----------
    store_dir : path-like
        The store folder.
    shards_dir_name : str
        Name of its shards folder (``"shards"``).
    index : int
        The shard's number (its position in the manifest, or its record's index).
    file : object
        What the manifest or shard record says the file is.
    error_class : type
        Raised with one line on any violation.

    Returns
    -------
    path : Path
        ``store_dir/shards/shard-NNNNNN.npy``; it may not exist yet.
    """
    store_dir = Path(store_dir)
    if not _is_int(index):
        raise error_class(f"store {store_dir} lists a shard without a valid index: {str(index)[:80]}")
    expected = expected_shard_file(shards_dir_name, index)
    if file != expected:
        raise error_class(f"store {store_dir} names shard {index} {str(file)[:80]!r}; "
                          f"a featpipe store names it {expected!r}: refused")
    shards = store_dir / shards_dir_name
    if shards.is_symlink():
        raise error_class(f"store {store_dir}: {shards_dir_name}/ is a symbolic link; refused")
    path = store_dir / expected
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
        raise error_class(f"shard {path} of store {store_dir} is {kind}; refused")
    return path


def check_manifest(store_dir, manifest, shards_dir_name, error_class):
    """Check a finished manifest's structure and consistency; raise ``error_class`` on the first fault.

    Checked: the types of every field a reader uses; shard entries numbered
    0, 1, ... with the writer's file names (see :func:`checked_shard_path`)
    and hex sha256 digests; row counts that add up; as many labels, splits
    and paths as rows; labels that index ``classes``; feature widths that
    add up to ``n_features``.
    """
    def fault(message):
        return error_class(f"manifest of store {store_dir} is invalid: {message}")

    if not isinstance(manifest, dict):
        raise fault("not a JSON object")
    if not _is_int(manifest.get("n_features")):
        raise fault("n_features is not a non-negative integer")
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        raise fault("shards is not a list")
    for position, shard in enumerate(shards):
        if not isinstance(shard, dict):
            raise fault(f"shard {position} is not a JSON object")
        checked_shard_path(store_dir, shards_dir_name, position, shard.get("file"), error_class)
        if not _is_int(shard.get("n_rows")):
            raise fault(f"shard {position} has no valid n_rows")
        if not isinstance(shard.get("sha256"), str) or not _SHA256.fullmatch(shard["sha256"]):
            raise fault(f"shard {position} has no valid sha256")
    n_rows = sum(shard["n_rows"] for shard in shards)
    labels, splits, paths, classes = (manifest.get(key) for key in ("labels", "splits", "paths", "classes"))
    if not _is_str_list(classes) or not _is_str_list(paths) or not _is_str_list(splits):
        raise fault("classes, paths and splits must be lists of strings")
    if not isinstance(labels, list) or not all(_is_int(label) and label < len(classes) for label in labels):
        raise fault(f"labels must be integers from 0 to {len(classes) - 1}")
    if not len(labels) == len(splits) == len(paths) == n_rows:
        raise fault(f"its shards hold {n_rows} rows but it lists {len(labels)} labels, "
                    f"{len(splits)} splits and {len(paths)} paths")
    if not set(splits) <= _SPLITS:
        raise fault(f"splits must be among {', '.join(sorted(_SPLITS))}")
    features = manifest.get("features")
    if not isinstance(features, list) or not all(
            isinstance(block, dict) and isinstance(block.get("name"), str) and _is_int(block.get("width"))
            for block in features):
        raise fault("features must be a list of {name, width}")
    if sum(block["width"] for block in features) != manifest["n_features"]:
        raise fault("feature widths do not add up to n_features")
    if not isinstance(manifest.get("skipped"), list):
        raise fault("skipped is not a list")
    plan = manifest.get("plan")
    if not isinstance(plan, dict) or not _is_int(plan.get("image_size"), minimum=1):
        raise fault("plan.image_size is not a positive integer")
