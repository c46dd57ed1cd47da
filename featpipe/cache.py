"""Where cached stage outputs live, and the fingerprints that key them.

Every pipeline stage is a module-level function cached with
``joblib.Memory``. joblib hashes a call's arguments to key its output, and
hashing a 150 MB image array costs about half a second per call, so stages
never take big arrays as hashed arguments: they take short fingerprints
(computed once per data set from file lists and sizes) and receive the
arrays through arguments joblib is told to ignore.

The cache holds pickles, so whoever can write it can run code as the user.
featpipe therefore creates its cache folder private to the user (mode
0700), refuses a cache folder that another user owns or can write, and
marks the folder with a ``CACHEDIR.TAG`` (the Cache Directory Tagging
convention, which backup tools honour). ``cache clear`` removes only the
entries featpipe writes (``stages/`` and the CIFAR-10 download) and only in
a folder that is a featpipe cache; anything else is refused untouched.
"""

import os
import shutil
import stat
import tempfile
from pathlib import Path

from featpipe.digests import KEY_CHARS, json_sha256
from featpipe.errors import CacheError

TAG_NAME = "CACHEDIR.TAG"
TAG_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
TAG_TEXT = (f"{TAG_SIGNATURE}\n"
            "# This file is a cache directory tag created by featpipe.\n"
            "# For information about cache directory tags, see https://bford.info/cachedir/\n")
STAGES_NAME = "stages"
DOWNLOAD_NAMES = ("cifar-10-python.tar.gz",)
"""Files featpipe downloads into the cache root (featpipe.datasets.cifar10)."""

OWN_ENTRIES = frozenset({TAG_NAME, STAGES_NAME, *DOWNLOAD_NAMES})
"""Every name featpipe writes directly under a cache root."""


def default_cache_dir():
    """The user cache directory, e.g. ``~/.cache/featpipe`` on Linux."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("featpipe"))


def fingerprint(*parts):
    """A short, stable hex digest of JSON-serializable ``parts`` (a stage cache key)."""
    return json_sha256(parts, KEY_CHARS)


def _has_featpipe_tag(root):
    try:
        text = (root / TAG_NAME).read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    return text.startswith(TAG_SIGNATURE) and "featpipe" in text


def _looks_like_untagged_cache(root):
    """A folder laid out as featpipe's cache before tags existed: only featpipe's names, stages/ of joblib folders."""
    names = {path.name for path in root.iterdir()}
    if not names or not names <= OWN_ENTRIES - {TAG_NAME}:
        return False
    stages = root / STAGES_NAME
    if stages.exists():
        if stages.is_symlink() or not stages.is_dir():
            return False
        for path in stages.iterdir():
            if not (path.name == ".gitignore" or path.name.startswith(".write-check-")
                    or (path.is_dir() and not path.is_symlink())):
                return False
    return all((root / name).is_file() and not (root / name).is_symlink()
               for name in names & set(DOWNLOAD_NAMES))


def cache_kind(root):
    """What ``root`` is: ``"missing"``, ``"empty"``, ``"featpipe"``, ``"untagged"`` (featpipe's
    layout, no tag yet), ``"file"`` or ``"foreign"``."""
    root = Path(root)
    if root.is_symlink() and not root.exists():
        return "foreign"
    if not root.exists():
        return "missing"
    if not root.is_dir():
        return "file"
    if _has_featpipe_tag(root):
        return "featpipe"
    if not any(root.iterdir()):
        return "empty"
    return "untagged" if _looks_like_untagged_cache(root) else "foreign"


def _refusal(root, kind):
    if kind == "file":
        return CacheError(f"cache directory {root} is a file, not a featpipe cache; "
                          "pass --cache-dir DIR or --no-cache")
    return CacheError(f"{root} is not a featpipe cache (no featpipe CACHEDIR.TAG and other files in it); "
                      "featpipe leaves it untouched: pass an empty or new folder as --cache-dir")


def _check_private(root):
    info = root.stat()
    if info.st_uid != os.geteuid():
        raise CacheError(f"cache directory {root} belongs to another user; its pickles could run code as you: "
                         "pass --cache-dir DIR or --no-cache")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CacheError(f"cache directory {root} can be written by other users, and its pickles run as you: "
                         f"chmod go-w {root}, or pass --cache-dir DIR or --no-cache")


def prepare_cache_dir(cache_dir=None):
    """Create or check a cache root for writing; return it as a Path.

    A new folder is created private to the user (0700) and tagged; a
    featpipe cache without a tag (written before tags existed) is tagged.

    Raises
    ------
    CacheError
        When the folder is a file, a foreign folder, owned or writable by
        another user, or cannot be written.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    kind = cache_kind(root)
    if kind in ("file", "foreign"):
        raise _refusal(root, kind)
    try:
        if kind == "missing":
            root.parent.mkdir(parents=True, exist_ok=True)
            root.mkdir(mode=0o700)
        elif kind == "empty":
            root.chmod(0o700)
        _check_private(root)
        if kind != "featpipe":
            (root / TAG_NAME).write_text(TAG_TEXT, encoding="utf-8")
    except OSError as error:
        raise CacheError(f"cache directory {root} cannot be written ({error.strerror or error}); "
                         "pass --cache-dir DIR or --no-cache") from None
    return root


def make_memory(cache_dir=None, enabled=True):
    """Return the ``joblib.Memory`` for stage outputs.

    Parameters
    ----------
    cache_dir : path-like or None
        Root of the cache; ``None`` means :func:`default_cache_dir`. Stage
        outputs go to ``<cache_dir>/stages``.
    enabled : bool
        ``False`` gives a Memory that caches nothing (``--no-cache``).

    Raises
    ------
    CacheError
        When the directory cannot be used (see :func:`prepare_cache_dir`).
    """
    import joblib

    if not enabled:
        return joblib.Memory(None, verbose=0)
    root = prepare_cache_dir(cache_dir)
    stages = root / STAGES_NAME
    try:
        stages.mkdir(mode=0o700, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=stages, prefix=".write-check-"):
            pass
    except OSError as error:
        raise CacheError(
            f"cache directory {root} cannot be written ({error.strerror or error}); "
            "pass --cache-dir DIR or --no-cache"
        ) from None
    return joblib.Memory(stages, verbose=0)


def _own_files(root):
    """Every regular file featpipe wrote under ``root`` (symbolic links are not followed)."""
    files = []
    for name in sorted(OWN_ENTRIES - {TAG_NAME}):
        path = root / name
        if path.is_symlink() or path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(entry for entry in path.rglob("*") if entry.is_file() or entry.is_symlink())
    return files


def cache_info(cache_dir=None):
    """Summarize a cache directory.

    Returns
    -------
    info : dict
        ``path``, ``exists``, ``n_files`` and ``n_bytes`` over the files
        featpipe wrote there, and ``n_entries``: cached stage calls.

    Raises
    ------
    CacheError
        When the path is a file or a folder that is not a featpipe cache.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    kind = cache_kind(root)
    if kind in ("file", "foreign"):
        raise _refusal(root, kind)
    files = _own_files(root) if kind in ("featpipe", "untagged") else []
    return {
        "path": str(root),
        "exists": kind != "missing",
        "n_files": len(files),
        "n_bytes": sum(path.lstat().st_size for path in files),
        "n_entries": sum(1 for path in files if path.name == "output.pkl"),
    }


def clear_cache(cache_dir=None):
    """Delete what featpipe cached under ``cache_dir`` and return the bytes freed.

    Only featpipe's own entries of a featpipe cache are removed; the folder,
    its tag and anything else in it stay.

    Raises
    ------
    CacheError
        When the path is a file or a folder that is not a featpipe cache.
    """
    info = cache_info(cache_dir)
    root = Path(info["path"])
    if cache_kind(root) == "untagged":
        prepare_cache_dir(root)
    for name in sorted(OWN_ENTRIES - {TAG_NAME}):
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.is_file() or path.is_symlink():
            path.unlink()
    return info["n_bytes"]
