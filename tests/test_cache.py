"""Cache location, fingerprints, info and clear."""

import pytest

from featpipe.cache import CacheError, cache_info, clear_cache, fingerprint, make_memory


def test_fingerprint_is_stable_and_sensitive():
    assert fingerprint("a", {"x": 1, "y": 2}) == fingerprint("a", {"y": 2, "x": 1})
    assert fingerprint("a", {"x": 1}) != fingerprint("a", {"x": 2})


def test_memory_caches_and_info_counts_then_clear_empties(tmp_path):
    calls = []

    def square(value):
        calls.append(value)
        return value * value

    cached = make_memory(tmp_path).cache(square)
    assert cached(3) == 9 and cached(3) == 9
    assert calls == [3]
    assert cached.check_call_in_cache(3) and not cached.check_call_in_cache(4)
    info = cache_info(tmp_path)
    assert info["n_entries"] == 1 and info["n_bytes"] > 0
    assert clear_cache(tmp_path) == info["n_bytes"]
    assert not cache_info(tmp_path)["exists"]


def test_disabled_memory_never_caches(tmp_path):
    cached = make_memory(tmp_path, enabled=False).cache(lambda value: value)
    cached(1)
    assert not cached.check_call_in_cache(1)


def test_a_file_in_the_way_is_refused(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("not a directory")
    with pytest.raises(CacheError, match="cannot be written"):
        make_memory(blocker)
