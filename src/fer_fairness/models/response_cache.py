"""One content-addressed, persistent cache of model responses, shared by every adapter.

An entry is what a model returned for one input, stored *before* it is interpreted: a chat API's raw
response body (JSON), an embedding (bytes), a local model's generated text. Interpreting it again
(a fixed parser, a new non-answer rule) therefore costs no model call.

The key (``cache_key``) is a SHA-256 over everything that determines the answer: the content digest
of each input (image bytes), the rendered prompt, the model id and version, every generation and
preprocessing setting, and ``CACHE_SCHEMA_VERSION``. A path, a sample id or a dataset name is never
part of it, so the same image asked the same question is paid for once, whatever it is called.

Storage is one SQLite file (``responses.sqlite`` under the cache directory) in WAL mode with full
synchronous commits. Every ``put`` is its own committed transaction: a run killed at any instant
loses at most the answers it had not yet written, and a re-run asks only for those. Several processes
(pytest-xdist workers) and threads may read and write at once; the first answer written for a key
is kept. What to store is the caller's decision: a transport error is never a response, so adapters
do not put one; a refusal or a safety block is the model's final answer and is stored like any other.

Two runs sharing one cache directory at the same time pay for each key once: before asking a model,
a run ``claim``s the key (a row in the ``claims`` table naming its owner and a lease). A key another
live owner holds is waited for and read when its answer lands; the claim goes when the answer is put
or the request fails (``release``), so the other run may try. A background thread renews this
cache's leases while it is open; an owner killed outright stops renewing, and its claims are taken
over once the lease runs out (at once when the owner was a process on this host that is gone), so a
SIGKILL never blocks a key for good.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from fer_fairness.errors import ModelError

# Part of every key: bump it to make every stored response unreachable (e.g. when what a payload
# means changes for all adapters). An adapter-specific change belongs in that adapter's settings.
CACHE_SCHEMA_VERSION: Final = 1
# The table layout of the file (PRAGMA user_version); a file with another layout is not touched.
LAYOUT_VERSION: Final = 1
FILENAME: Final = "responses.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key     TEXT PRIMARY KEY,
    model   TEXT NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('json', 'bytes')),
    payload BLOB NOT NULL,
    meta    TEXT NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS responses_model ON responses (model);
"""
# Claims are transient (a file without them reads the same), so they join older files of this layout.
_CLAIMS = """
CREATE TABLE IF NOT EXISTS claims (
    key     TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    host    TEXT NOT NULL,
    pid     INTEGER NOT NULL,
    expires REAL NOT NULL
) WITHOUT ROWID
"""
# How long a claim outlives its owner's last renewal; renewed every third of it.
LEASE_S: Final = 30.0
Claim = Literal["mine", "answered", "held"]
_CLAIMED_BY = "SELECT owner, host, pid, expires FROM claims WHERE key = ?"
_BATCH = 500  # keys per SELECT, well under SQLite's bound-parameter limit


_INSERT = "INSERT OR IGNORE INTO responses (key, model, kind, payload, meta, created) VALUES (?, ?, ?, ?, ?, ?)"


def content_digest(data: bytes) -> str:
    """SHA-256 of an input's bytes: how an image enters a key."""
    return hashlib.sha256(data).hexdigest()


def cache_key(
    *,
    model: str,
    inputs: Mapping[str, str],
    settings: Mapping[str, Any],
    prompt: str = "",
    version: str = "",
) -> str:
    """The key of one model answer.

    ``inputs`` maps each input's role to its content digest (``{"image": content_digest(data)}``);
    ``settings`` holds every generation and preprocessing setting and must be JSON-serialisable
    (anything else is a bug, not something to stringify silently); ``version`` is the model version
    where it is known before the call (a checkpoint digest, a dated snapshot).
    """
    document = {
        "schema": CACHE_SCHEMA_VERSION,
        "model": model,
        "version": version,
        "inputs": dict(inputs),
        "prompt": prompt,
        "settings": dict(settings),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One stored answer: ``payload`` comes back as it was put (bytes, or a JSON value)."""

    key: str
    model: str
    payload: Any
    meta: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0


class ResponseCache:
    """The SQLite store behind ``cache_key``; open one per run (``in_dir``) and close it when done."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 60.0, lease_s: float = LEASE_S):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.lease_s = lease_s
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{secrets.token_hex(8)}"
        self._held: set[str] = set()
        self._closed = threading.Event()
        self._renewer: threading.Thread | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as error:
            raise ModelError(f"response cache {self.path}: cannot open it ({error})") from None
        try:
            self._prepare_patiently(busy_timeout_s)
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise ModelError(
                f"response cache {self.path}: not a usable SQLite file ({error}); "
                "move it aside or choose another cache directory"
            ) from None

    @classmethod
    def in_dir(cls, cache_dir: Path) -> ResponseCache:
        """The cache file of a cache directory (``--fairness-cache-dir``)."""
        return cls(Path(cache_dir) / FILENAME)

    def _prepare_patiently(self, timeout_s: float) -> None:
        """_prepare, retried while another process holds the file: two runs opening a new cache at
        once both try to switch it to WAL, and SQLite answers the second "database is locked" at once
        (a lock upgrade its busy handler does not wait for) rather than after the busy timeout."""
        deadline = time.monotonic() + timeout_s
        pause = 0.01
        while True:
            try:
                self._prepare()
                return
            except sqlite3.OperationalError as error:
                busy = "locked" in str(error) or "busy" in str(error)
                if not busy or time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.5)

    def _prepare(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, across processes
        db.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut, not just a killed process
        db.execute("BEGIN IMMEDIATE")  # two workers creating the file take turns
        try:
            layout = db.execute("PRAGMA user_version").fetchone()[0]
            if layout == 0:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={LAYOUT_VERSION}")
            if layout in (0, LAYOUT_VERSION):
                db.execute(_CLAIMS)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if layout not in (0, LAYOUT_VERSION):
            db.close()
            raise ModelError(
                f"response cache {self.path}: written with layout version {layout}, this version reads "
                f"{LAYOUT_VERSION}; move it aside or choose another cache directory"
            )

    def get(self, key: str) -> Entry | None:
        """The answer stored under ``key``, or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Entry]:
        """The stored answers among ``keys`` (missing keys are simply absent)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Entry] = {}
        for start in range(0, len(keys), _BATCH):
            batch = keys[start : start + _BATCH]
            marks = ",".join("?" * len(batch))
            with self._lock:
                rows = self._db.execute(
                    f"SELECT key, model, kind, payload, meta, created FROM responses WHERE key IN ({marks})", batch
                ).fetchall()
            for key, model, kind, payload, meta, created in rows:
                value = bytes(payload) if kind == "bytes" else json.loads(payload)
                found[key] = Entry(key=key, model=model, payload=value, meta=json.loads(meta), created=created)
        return found

    def put(self, key: str, payload: Any, *, model: str, meta: Mapping[str, Any] | None = None) -> bool:
        """Store and commit one answer; False when the key already had one (the first one is kept)."""
        with self._lock:
            cursor = self._db.execute(_INSERT, _row(key, payload, model, meta))
        return cursor.rowcount == 1

    def put_many(self, items: Iterable[tuple[str, Any]], *, model: str, meta: Mapping[str, Any] | None = None) -> int:
        """Store ``(key, payload)`` pairs in one committed transaction (a batch of local-model outputs,
        where one commit per row would cost more than the model); returns how many were new."""
        rows = [_row(key, payload, model, meta) for key, payload in items]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = self._db.total_changes
                self._db.executemany(_INSERT, rows)
                added = self._db.total_changes - before
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added

    def discard(self, keys: Iterable[str]) -> int:
        """Forget answers (e.g. to ask again after a provider fixed a bug); returns how many were stored."""
        removed = 0
        keys = list(keys)
        for start in range(0, len(keys), _BATCH):
            batch = keys[start : start + _BATCH]
            with self._lock:
                cursor = self._db.execute(f"DELETE FROM responses WHERE key IN ({','.join('?' * len(batch))})", batch)
            removed += cursor.rowcount
        return removed

    def claim(self, key: str) -> Claim:
        """Take ``key`` before asking for it: "mine" (ask, then ``put`` or ``release``), "answered"
        (read it with ``get``), or "held" by another live owner (wait, then try again)."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # the check and the take are one step for every process
            try:
                if self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone():
                    status: Claim = "answered"
                else:
                    row = self._db.execute(_CLAIMED_BY, (key,)).fetchone()
                    status = "held" if row and row[0] != self.owner and self._alive(*row[1:], now=now) else "mine"
                    if status == "mine":
                        self._db.execute(
                            "INSERT OR REPLACE INTO claims (key, owner, host, pid, expires) VALUES (?, ?, ?, ?, ?)",
                            (key, self.owner, self.host, os.getpid(), now + self.lease_s),
                        )
                        self._held.add(key)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if status == "mine" and self._renewer is None:
                self._renewer = threading.Thread(target=self._renew, name="fer-cache-lease", daemon=True)
                self._renewer.start()
        return status

    def release(self, key: str) -> None:
        """Give up a claim (the answer is stored, or the request failed and another run may try)."""
        with self._lock:
            self._db.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, self.owner))
            self._held.discard(key)

    def _alive(self, host: str, pid: int, expires: float, *, now: float) -> bool:
        if expires <= now:
            return False
        if host != self.host:
            return True  # another machine's process cannot be asked; its lease decides
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # someone else's process, alive
        return True

    def _renew(self) -> None:
        while not self._closed.wait(self.lease_s / 3):
            with self._lock:
                if self._closed.is_set():
                    return
                try:
                    self._db.execute(
                        "UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + self.lease_s, self.owner)
                    )
                except sqlite3.Error:
                    pass  # busy past the timeout: the next round renews, the lease has slack for it

    def count(self, *, model: str | None = None) -> int:
        """How many answers are stored (for one model id, or in all)."""
        with self._lock:
            if model is None:
                return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM responses WHERE model = ?", (model,)).fetchone()[0]

    def close(self) -> None:
        """Release every claim still held (a run that stopped early) and close the file."""
        self._closed.set()
        with self._lock:
            try:
                if self._held:
                    self._db.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
            except sqlite3.Error:
                pass  # the leases expire on their own
            self._held.clear()
            self._db.close()
        if self._renewer is not None:
            self._renewer.join()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _row(key: str, payload: Any, model: str, meta: Mapping[str, Any] | None) -> tuple:
    if isinstance(payload, bytes | bytearray | memoryview):
        kind, stored = "bytes", bytes(payload)
    else:
        kind, stored = "json", json.dumps(payload, ensure_ascii=False, allow_nan=False)
    meta_text = json.dumps(dict(meta or {}), sort_keys=True, ensure_ascii=False, allow_nan=False)
    return key, model, kind, stored, meta_text, time.time()
