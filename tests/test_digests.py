"""The stat-keyed digest store: a remembered digest holds only while the file's stat signature does,
is never trusted for a file changed just before it was hashed, and survives a save and reload.
The oracle for every digest is hashlib over the file's bytes."""

from __future__ import annotations

import hashlib
import os
import time

from fer_fairness import _digests
from fer_fairness._digests import RACY_NS, FileDigests


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def remember(store: FileDigests, path, *, after_ns: int = RACY_NS + 1) -> None:
    """Hash ``path`` as the adapter does, ``after_ns`` after the file's last change."""
    stat = os.stat(path)
    store.remember(path, stat, sha256(path), hashed_at_ns=max(stat.st_mtime_ns, stat.st_ctime_ns) + after_ns)


def test_a_remembered_digest_is_found_after_a_save_and_reload(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"pixels")
    store = FileDigests(tmp_path / "cache" / "digests.json")
    assert store.lookup(image)[0] is None
    remember(store, image)
    store.save()
    assert FileDigests(tmp_path / "cache" / "digests.json").lookup(image)[0] == sha256(image)
    assert FileDigests(tmp_path / "cache" / "digests.json").lookup(str(image))[0] == sha256(image)


def test_a_file_changed_within_the_racy_window_is_not_remembered(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"pixels")
    store = FileDigests(tmp_path / "digests.json")
    remember(store, image, after_ns=RACY_NS)  # hashed exactly RACY_NS after the change: still racy
    assert store.lookup(image)[0] is None
    remember(store, image, after_ns=RACY_NS + 1)
    assert store.lookup(image)[0] == sha256(image)


def test_any_change_to_size_mtime_or_ctime_forgets_the_digest(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"pixels")
    store = FileDigests(tmp_path / "digests.json")
    remember(store, image)
    before = os.stat(image)
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns - 10**9))  # mtime moved, bytes kept
    assert store.lookup(image)[0] is None

    remember(store, image)
    old = os.stat(image)
    time.sleep(0.05)  # past the kernel's coarse timestamp tick, so the write moves ctime
    image.write_bytes(b"PIXELS")  # same size, new bytes, and the old mtime put back
    os.utime(image, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert os.stat(image).st_size == old.st_size and os.stat(image).st_mtime_ns == old.st_mtime_ns
    if os.stat(image).st_ctime_ns != old.st_ctime_ns:  # ctime has ns resolution on the usual filesystems
        assert store.lookup(image)[0] is None


def test_a_missing_unreadable_or_older_store_is_empty(tmp_path, monkeypatch):
    image = tmp_path / "a.png"
    image.write_bytes(b"pixels")
    assert FileDigests(tmp_path / "nowhere.json").lookup(image)[0] is None
    (tmp_path / "broken.json").write_text("{not json")
    assert FileDigests(tmp_path / "broken.json").lookup(image)[0] is None
    store = FileDigests(tmp_path / "old.json")
    remember(store, image)
    store.save()
    monkeypatch.setattr(_digests, "STORE_VERSION", _digests.STORE_VERSION + 1)
    assert FileDigests(tmp_path / "old.json").lookup(image)[0] is None


def test_saving_unchanged_writes_nothing_and_leaves_no_temporary(tmp_path):
    store = FileDigests(tmp_path / "digests.json")
    store.save()
    assert not (tmp_path / "digests.json").exists()
    image = tmp_path / "a.png"
    image.write_bytes(b"pixels")
    remember(store, image)
    store.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "digests.json"]
