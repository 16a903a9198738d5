"""The response cache: a key per answer-determining fact, durable writes, safe for processes and threads."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import sqlite3
import threading

import pytest

from fer_fairness.errors import ModelError
from fer_fairness.models import response_cache
from fer_fairness.models.response_cache import (
    CACHE_SCHEMA_VERSION,
    FILENAME,
    ResponseCache,
    cache_key,
    content_digest,
)

BASE = dict(model="m", inputs={"image": "a" * 64}, settings={"temperature": 0, "seed": 0}, prompt="p", version="v1")


def test_the_key_is_sha256_of_the_documented_recipe():
    document = {
        "schema": CACHE_SCHEMA_VERSION,
        "model": "m",
        "version": "v1",
        "inputs": {"image": "a" * 64},
        "prompt": "p",
        "settings": {"temperature": 0, "seed": 0},
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert cache_key(**BASE) == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    "change",
    [
        {"model": "m2"},
        {"version": "v2"},
        {"inputs": {"image": "b" * 64}},
        {"prompt": "p2"},
        {"settings": {"temperature": 0, "seed": 1}},
        {"settings": {"temperature": 0, "seed": 0, "max_tokens": 5}},
    ],
)
def test_every_part_changes_the_key(change):
    assert cache_key(**{**BASE, **change}) != cache_key(**BASE)


def test_the_schema_version_changes_the_key(monkeypatch):
    before = cache_key(**BASE)
    monkeypatch.setattr(response_cache, "CACHE_SCHEMA_VERSION", CACHE_SCHEMA_VERSION + 1)
    assert cache_key(**BASE) != before


def test_setting_order_does_not_change_the_key():
    assert cache_key(**{**BASE, "settings": {"seed": 0, "temperature": 0}}) == cache_key(**BASE)


def test_settings_must_be_json():
    with pytest.raises(TypeError):
        cache_key(**{**BASE, "settings": {"device": object()}})


def test_content_digest_is_sha256():
    assert content_digest(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_json_and_bytes_round_trip_and_persist(tmp_path):
    with ResponseCache.in_dir(tmp_path) as cache:
        assert cache.put("k1", {"choices": [{"text": "anger"}], "n": 1.5}, model="m", meta={"tokens": 3})
        assert cache.put("k2", b"\x00\x01embedding", model="clip")
        assert cache.get("nope") is None
    assert (tmp_path / FILENAME).is_file()
    with ResponseCache.in_dir(tmp_path) as cache:
        entries = cache.get_many(["k1", "k2", "k3"])
        assert set(entries) == {"k1", "k2"}
        assert entries["k1"].payload == {"choices": [{"text": "anger"}], "n": 1.5}
        assert entries["k1"].meta == {"tokens": 3} and entries["k1"].model == "m"
        assert entries["k2"].payload == b"\x00\x01embedding"
        assert cache.count() == 2 and cache.count(model="clip") == 1


def test_the_first_answer_is_kept(tmp_path):
    with ResponseCache.in_dir(tmp_path) as cache:
        assert cache.put("k", "first", model="m")
        assert not cache.put("k", "second", model="m")
        assert cache.get("k").payload == "first"
        assert cache.discard(["k", "other"]) == 1
        assert cache.get("k") is None


def test_many_keys_are_written_and_read_in_batches(tmp_path):
    with ResponseCache.in_dir(tmp_path) as cache:
        assert cache.put_many(((f"k{i}", i) for i in range(1200)), model="m") == 1200
        assert cache.put_many([("k0", "again"), ("new", b"x")], model="m") == 1
        assert cache.get("k0").payload == 0
        found = cache.get_many([f"k{i}" for i in range(0, 1300)])
    assert len(found) == 1200 and found["k1199"].payload == 1199


def test_the_file_is_in_wal_mode(tmp_path):
    ResponseCache.in_dir(tmp_path).close()
    with sqlite3.connect(tmp_path / FILENAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_threads_write_at_once(tmp_path):
    with ResponseCache.in_dir(tmp_path) as cache:
        threads = [
            threading.Thread(target=lambda t=t: [cache.put(f"{t}-{i}", i, model="m") for i in range(50)])
            for t in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert cache.count() == 200


def _write_many(directory: str, worker: int) -> None:
    with ResponseCache.in_dir(directory) as cache:
        for i in range(40):
            cache.put(f"shared-{i}", {"worker": worker}, model="m")
            cache.put(f"own-{worker}-{i}", i, model="m")


def test_processes_write_at_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(str(tmp_path), w)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    with ResponseCache.in_dir(tmp_path) as cache:
        assert cache.count() == 40 + 3 * 40
        assert cache.get("shared-7").payload["worker"] in (0, 1, 2)


def test_a_file_with_another_layout_is_refused(tmp_path):
    with sqlite3.connect(tmp_path / FILENAME) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(ModelError, match=r"written with layout version 99, this version reads 1; move it aside"):
        ResponseCache.in_dir(tmp_path)


def test_a_corrupt_file_is_one_clear_error(tmp_path):
    (tmp_path / FILENAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ModelError, match=r"responses\.sqlite: not a usable SQLite file"):
        ResponseCache.in_dir(tmp_path)
