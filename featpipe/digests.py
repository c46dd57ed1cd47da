"""sha256 digests: of a file's bytes, and of JSON-serializable values (fingerprints).

The one place featpipe hashes things. Fingerprints are truncated to the lengths they have
always had, so caches, data set fingerprints and stores written before stay valid:
:data:`KEY_CHARS` for stage cache keys (:func:`featpipe.cache.fingerprint`) and
:data:`DATASET_CHARS` for data sets (:func:`featpipe.datasets.core.fingerprint_of`).
"""

import hashlib
import json

KEY_CHARS = 20
"""Hex digits of a stage cache key: 80 bits, plenty for the keys of one cache."""

DATASET_CHARS = 32
"""Hex digits of a data set's fingerprint, recorded in run folders and stores."""

_BLOCK_BYTES = 1 << 20


def file_sha256(path):
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(_BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def json_sha256(value, n_chars=64):
    """The first ``n_chars`` hex digits of the sha256 of ``value`` as canonical JSON.

    Keys are sorted, so equal dicts give equal digests; values JSON cannot hold
    (paths, numpy scalars) are written as ``str``.
    """
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n_chars]
