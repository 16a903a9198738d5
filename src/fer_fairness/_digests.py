"""Content digests of image files, remembered across runs by what ``stat`` says about each file.

Caches are keyed by the SHA-256 of every image's bytes (never by path or time), so a cache directory
carried to another machine stays valid. Computing those digests means reading every image, which on a
warm run is most of the work left; this store remembers each file's digest next to its stat signature
(size, mtime_ns, ctime_ns, inode) so an unchanged file is not read again.

Why that is safe enough: rewriting a file changes its size or mtime, and even a write that restores
the old mtime (``touch -r``, an archive extractor) moves ctime, which user space cannot set. What is
left is a write landing in the same timestamp tick as the one recorded; as git does for its index
("racy git"), an entry is only trusted when the file had not been modified for ``RACY_NS`` before it
was hashed, which covers coarse (2 s) filesystem clocks. A wrong entry could only make a cache miss
look like a hit for a file edited in place within that tick; the digests, not the stat signatures,
still key every answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from fer_fairness._cache import stable_key

# Bump when the store's layout changes: an older file is then ignored, not misread.
STORE_VERSION = 1
# A file modified less than this long before it was hashed may still change within its mtime tick.
RACY_NS = 2_000_000_000

Signature = tuple[int, int, int, int]


def signature(stat: os.stat_result) -> Signature:
    """What must be unchanged for a remembered digest to hold: size, mtime_ns, ctime_ns, inode."""
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


def sha256_hex(data: bytes) -> str:
    """The digest ``_cache.file_digest`` gives for a file holding ``data`` (the same caches match)."""
    return hashlib.sha256(data).hexdigest()


class FileDigests:
    """A JSON store ``{path: [size, mtime_ns, ctime_ns, inode, sha256]}``; ``save`` writes it atomically.

    A missing, unreadable or older-version store is an empty one: it only ever saves work.
    """

    def __init__(self, store: Path) -> None:
        self.store = Path(store)
        self._entries: dict[str, list] = {}
        self._changed = False
        try:
            document = json.loads(self.store.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(document, dict) and document.get("version") == STORE_VERSION:
            entries = document.get("files")
            self._entries = entries if isinstance(entries, dict) else {}

    def lookup(self, path: str | Path) -> tuple[str | None, os.stat_result]:
        """(the remembered digest or None, the file's stat); a missing file raises OSError."""
        stat = os.stat(path)
        entry = self._entries.get(str(path))
        if isinstance(entry, list) and len(entry) == 5 and tuple(entry[:4]) == signature(stat):
            return entry[4], stat
        return None, stat

    def remember(self, path: str | Path, stat: os.stat_result, digest: str, *, hashed_at_ns: int) -> None:
        """Keep ``digest`` for ``path`` as ``stat`` (taken before reading) described it, unless racy."""
        if max(stat.st_mtime_ns, stat.st_ctime_ns) >= hashed_at_ns - RACY_NS:
            self._entries.pop(str(path), None)
            return
        self._entries[str(path)] = [*signature(stat), digest]
        self._changed = True

    def save(self) -> None:
        """Write the store if anything was added (concurrent writers: the last one wins, nothing breaks)."""
        if not self._changed:
            return
        # Replaced atomically but not fsynced (unlike _cache.atomic_path): after a crash the store may
        # be empty or unreadable, which only costs a re-hash, while an fsync costs every cold run.
        self.store.parent.mkdir(parents=True, exist_ok=True)
        # A name of this process's own, opened with "x" so the umask applies as to any ordinary file.
        temporary = self.store.with_name(f".{self.store.name}.{os.getpid()}-{time.monotonic_ns()}.tmp")
        try:
            with open(temporary, "x", encoding="utf-8") as handle:
                json.dump({"version": STORE_VERSION, "files": self._entries}, handle, separators=(",", ":"))
            os.replace(temporary, self.store)
        finally:
            temporary.unlink(missing_ok=True)
        self._changed = False


def now_ns() -> int:
    """Wall-clock time in the same epoch as ``st_mtime_ns``, taken before a file is read."""
    return time.time_ns()


def store_for(cache_dir: str | Path, root: str | Path) -> FileDigests:
    """The store of one image folder under a cache directory (every adapter reading it shares it)."""
    return FileDigests(Path(cache_dir) / "digests" / f"{stable_key(str(root))}.json")


def read_digests(names: Sequence[str], store: FileDigests, *, hold_bytes: int) -> tuple[list[str], dict[int, bytes]]:
    """Every file's SHA-256 in order, and the bytes read to hash them (by position, up to ``hold_bytes``).

    Remembered digests cost one stat; the others read the file once, and keeping those bytes lets the
    caller decode from memory instead of reading the file again. An unreadable file raises OSError.
    """
    digests: list[str] = []
    held: dict[int, bytes] = {}
    held_size = 0
    for position, name in enumerate(names):
        digest, stat = store.lookup(name)
        if digest is None:
            started = now_ns()
            with open(name, "rb") as handle:
                data = handle.read()
            digest = sha256_hex(data)
            store.remember(name, stat, digest, hashed_at_ns=started)
            if held_size + len(data) <= hold_bytes:
                held[position], held_size = data, held_size + len(data)
        digests.append(digest)
    store.save()
    return digests, held
