"""Feature stores: the on-disk format ``featpipe extract`` writes, its reader and its lock.

``featpipe.store.open(path)`` opens a finished store (:mod:`featpipe.store.reader`);
:func:`is_store` tells whether a folder holds one. The format and its writing helpers live in
:mod:`featpipe.store.format`, the exclusive lock of a writing job in :mod:`featpipe.store.lock`.
"""

from featpipe._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "FeatureStore": "reader",
    "ShardedFeatures": "reader",
    "StoreError": "format",
    "is_store": "reader",
    "open": "reader",
})
