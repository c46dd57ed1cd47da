"""Where cached stage outputs live, and the fingerprints that key them.

Every pipeline stage is a module-level function cached with
``joblib.Memory``. joblib hashes a call's arguments to key its output, and
hashing a 150 MB image array costs about half a second per call, so stages
never take big arrays as hashed arguments: they take short fingerprints
(computed once per data set from file lists and sizes) and receive the
arrays through arguments joblib is told to ignore.
"""

import shutil
import tempfile
from pathlib import Path

import joblib
import platformdirs

from featpipe.digests import KEY_CHARS, json_sha256
from featpipe.errors import CacheError


def default_cache_dir():
    """The user cache directory, e.g. ``~/.cache/featpipe`` on Linux."""
    return Path(platformdirs.user_cache_dir("featpipe"))


def fingerprint(*parts):
    """A short, stable hex digest of JSON-serializable ``parts`` (a stage cache key)."""
    return json_sha256(parts, KEY_CHARS)


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
        When the directory cannot be created or written.
    """
    if not enabled:
        return joblib.Memory(None, verbose=0)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stages = root / "stages"
    try:
        stages.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=stages, prefix=".write-check-"):
            pass
    except OSError as error:
        raise CacheError(
            f"cache directory {root} cannot be written ({error.strerror or error}); "
            "pass --cache-dir DIR or --no-cache"
        ) from None
    return joblib.Memory(stages, verbose=0)


def cache_info(cache_dir=None):
    """Summarize a cache directory.

    Returns
    -------
    info : dict
        ``path``, ``exists``, ``n_files`` and ``n_bytes`` over everything
        under the directory, and ``n_entries``: cached stage calls.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    files = [path for path in root.rglob("*") if path.is_file()] if root.is_dir() else []
    return {
        "path": str(root),
        "exists": root.is_dir(),
        "n_files": len(files),
        "n_bytes": sum(path.stat().st_size for path in files),
        "n_entries": sum(1 for path in files if path.name == "output.pkl"),
    }


def clear_cache(cache_dir=None):
    """Delete everything featpipe cached under ``cache_dir``; return bytes freed."""
    info = cache_info(cache_dir)
    root = Path(info["path"])
    if root.is_dir():
        shutil.rmtree(root)
    return info["n_bytes"]
