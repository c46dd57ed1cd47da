"""Cache location, fingerprints, info and clear; the cache is private, tagged and never foreign."""

import os
import stat

import joblib
import pytest

from featpipe.cache import TAG_NAME, TAG_SIGNATURE, CacheError, cache_info, clear_cache, fingerprint, make_memory


def _square(value):
    return value * value


def test_fingerprint_is_stable_and_sensitive():
    assert fingerprint("a", {"x": 1, "y": 2}) == fingerprint("a", {"y": 2, "x": 1})
    assert fingerprint("a", {"x": 1}) != fingerprint("a", {"x": 2})


def test_memory_caches_and_info_counts_then_clear_empties(tmp_path):
    calls = []

    def square(value):
        calls.append(value)
        return value * value

    cached = make_memory(tmp_path / "cache").cache(square)
    assert cached(3) == 9 and cached(3) == 9
    assert calls == [3]
    assert cached.check_call_in_cache(3) and not cached.check_call_in_cache(4)
    info = cache_info(tmp_path / "cache")
    expected = sum(path.stat().st_size for path in (tmp_path / "cache" / "stages").rglob("*") if path.is_file())
    assert info["n_entries"] == 1 and info["n_bytes"] == expected > 0
    assert clear_cache(tmp_path / "cache") == info["n_bytes"]
    assert cache_info(tmp_path / "cache")["n_files"] == 0
    assert not (tmp_path / "cache" / "stages").exists() and (tmp_path / "cache" / TAG_NAME).is_file()


def test_new_cache_is_private_and_tagged(tmp_path):
    old_umask = os.umask(0o022)
    try:
        make_memory(tmp_path / "cache")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "cache" / "stages").stat().st_mode) == 0o700
    assert (tmp_path / "cache" / TAG_NAME).read_text().splitlines()[0] == TAG_SIGNATURE


def test_disabled_memory_never_caches(tmp_path):
    cached = make_memory(tmp_path / "cache", enabled=False).cache(lambda value: value)
    cached(1)
    assert not cached.check_call_in_cache(1)
    assert not (tmp_path / "cache").exists()


def test_a_file_in_the_way_is_refused(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("not a directory")
    for action in (make_memory, cache_info, clear_cache):
        with pytest.raises(CacheError, match="is a file, not a featpipe cache"):
            action(blocker)
    assert blocker.read_text() == "not a directory"


def _foreign_folder(root):
    (root / "thesis").mkdir(parents=True)
    (root / "thesis" / "chapter1.tex").write_text("precious")
    (root / "notes.txt").write_text("precious too")
    return root


def _tree(root):
    return sorted((str(path.relative_to(root)), path.read_bytes() if path.is_file() else None)
                  for path in root.rglob("*"))


def test_a_foreign_folder_is_refused_by_clear_info_and_run_and_left_untouched(tmp_path):
    root = _foreign_folder(tmp_path / "home")
    before = _tree(root)
    for action in (make_memory, cache_info, clear_cache):
        with pytest.raises(CacheError, match="is not a featpipe cache"):
            action(root)
    assert _tree(root) == before


def test_another_tools_tagged_cache_is_foreign(tmp_path):
    root = tmp_path / "other"
    root.mkdir()
    (root / TAG_NAME).write_text(f"{TAG_SIGNATURE}\n# created by sometool\n")
    (root / "blob").write_text("theirs")
    with pytest.raises(CacheError, match="is not a featpipe cache"):
        clear_cache(root)
    assert (root / "blob").read_text() == "theirs"


def test_clear_removes_only_what_featpipe_wrote(tmp_path):
    root = tmp_path / "cache"
    make_memory(root).cache(_square)(4)
    (root / "mine.txt").write_text("the user's own file in the tagged folder")
    outside = _foreign_folder(tmp_path / "outside")
    (root / "stages" / "link").symlink_to(outside, target_is_directory=True)
    clear_cache(root)
    assert (root / "mine.txt").is_file() and not (root / "stages").exists()
    assert _tree(outside) == _tree(_foreign_folder(tmp_path / "reference"))


def test_an_untagged_cache_of_the_current_layout_is_recognized_and_tagged(tmp_path):
    root = tmp_path / "cache"
    joblib.Memory(root / "stages", verbose=0).cache(_square)(5)
    (root / "cifar-10-python.tar.gz").write_bytes(b"x" * 10)
    root.chmod(0o700)
    assert not (root / TAG_NAME).exists()
    info = cache_info(root)
    assert info["n_entries"] == 1 and info["n_bytes"] > 10
    make_memory(root)
    assert (root / TAG_NAME).read_text().startswith(TAG_SIGNATURE)


def test_a_cache_others_can_write_is_refused(tmp_path):
    root = tmp_path / "cache"
    make_memory(root)
    root.chmod(0o777)
    with pytest.raises(CacheError, match="can be written by other users"):
        make_memory(root)
