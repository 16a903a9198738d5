"""What every chat-API adapter shares: cache first, resilient calls for what is missing, strict reading.

A subclass says how to send one image with the prompt (``_send``), what identifies its answers
(``settings``) and how to read a stored response (``interpret``). The response is stored before it
is read, so ``interpret`` can change without a single new call.

A body that is not the model's answer at all (a gateway's HTML page or ``{"error": ...}`` sent with
HTTP 200, named by ``transport_failure``) is a transport failure: retried, never stored, and an
``error`` outcome if it persists; one already stored by an older version is dropped and asked again.
An answer whose shape ``interpret`` cannot read is ``unparseable`` with its raw kept, never a crash.
The API key (and anything shaped like a bearer token) is redacted from every error message, stored
body and raw column, because CI logs and cache files outlive the key's secrecy.

Each request is sent only under the key's claim in the response cache: a run sharing the cache
directory that is asking for the same image is waited for, and its answer read instead of paid for.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from fer_fairness.datasets._table import Dataset
from fer_fairness.errors import ConfigError, ModelError
from fer_fairness.labels import NON_ANSWERS
from fer_fairness.models import prompts as prompt_book
from fer_fairness.models._base import OUTCOME_COLUMNS, PredictContext
from fer_fairness.models.parsing import Parsed
from fer_fairness.models.resilience import Backoff, Failure, PermanentError, Reply, Runner, TransientError, Usage
from fer_fairness.models.response_cache import Entry, ResponseCache, cache_key, content_digest
from fer_fairness.specs import Spec, check_options, int_option

REDACTED = "[REDACTED]"
# A configured key shorter than this is not a real key; replacing it everywhere would garble text.
MIN_SECRET_LENGTH = 6
# Credentials recognisable without knowing them: "Bearer <token>", OpenAI "sk-..." and Google "AIza..." keys.
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_KEY_SHAPES = re.compile(r"\bsk-[A-Za-z0-9_-]{16,}|\bAIza[0-9A-Za-z_-]{30,}")
# What a stored body of an unexpected shape raises in a reader: read as unparseable, not a crash.
_SHAPE_ERRORS = (AttributeError, TypeError, KeyError, IndexError)
# Polling for another run's answer: first soon (it may be in flight), then no busier than twice a second.
_FIRST_POLL_S = 0.02
_MAX_POLL_S = 0.5
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


@dataclass(frozen=True, kw_only=True)
class Reading:
    """A stored response read: the outcome, why, and the model version it reports (if any)."""

    outcome: str
    reason: str
    version: str | None = None

    @classmethod
    def of(cls, parsed: Parsed, *, version: str | None = None) -> Reading:
        return cls(outcome=parsed.outcome, reason=parsed.reason, version=version)


@dataclass(kw_only=True)
class _Job:
    key: str
    path: Path
    digest: str
    sample_ids: list[str] = field(default_factory=list)
    shared: bool = False  # answered by another run on the same cache while this one waited


def image_mime(data: bytes, path: Path) -> str:
    """The image's media type from its first bytes (file names lie), for the data URL / inline part."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise ModelError(f"cannot send image {path}: not a PNG, JPEG, GIF or WebP file")


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with every secret and every bearer-token-shaped string replaced by ``[REDACTED]``."""
    for secret in sorted(secrets, key=len, reverse=True):  # a key containing another goes first
        text = text.replace(secret, REDACTED)
    return _KEY_SHAPES.sub(REDACTED, _BEARER.sub(lambda match: match.group(1) + REDACTED, text))


def redact_payload(payload: Any, secrets: Sequence[str] = ()) -> Any:
    """A JSON value (or bytes) with ``redact`` applied to every string in it, keys included."""
    if isinstance(payload, str):
        return redact(payload, secrets)
    if isinstance(payload, dict):
        return {redact_payload(k, secrets): redact_payload(v, secrets) for k, v in payload.items()}
    if isinstance(payload, list):
        return [redact_payload(item, secrets) for item in payload]
    if isinstance(payload, bytes):
        return redact(payload.decode("utf-8", "surrogateescape"), secrets).encode("utf-8", "surrogateescape")
    return payload


def usage_tokens(payload: Any, section: str, field: str) -> int:
    """Tokens a response reports under ``payload[section][field]``; 0 when absent or not a count."""
    usage = payload.get(section) if isinstance(payload, dict) else None
    value = usage.get(field) if isinstance(usage, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return int(value)


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity (the cache cannot store them); ValueError if not JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def error_body_message(payload: Any) -> str:
    """The message of an ``{"error": ...}`` body, wherever it is (a string, or ``error.message``)."""
    inner = payload.get("error") if isinstance(payload, dict) else None
    message = inner.get("message") if isinstance(inner, dict) else inner
    return message if isinstance(message, str) and message else _compact(inner)


def flag_option(spec: Spec, key: str, default: bool) -> bool:
    text = spec.option(key)
    if text is None:
        return default
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"model '{spec.text}': option {key} must be 1 or 0 (true/false); got {text!r}")


class ChatModel:
    """Base of the chat-API adapters; see the module docstring.

    The keyword arguments exist for tests: ``env`` replaces the process environment, ``sleep``,
    ``clock`` and ``rng`` drive the backoff, ``backoff`` its base and cap.
    """

    kind: ClassVar[str]
    # Environment variables that may hold the API key (the first one set is used).
    key_variables: ClassVar[tuple[str, ...]] = ()
    OPTIONS: ClassVar[tuple[str, ...]] = ("name", "seed", "max_tokens", "structured")

    def __init__(
        self,
        spec: Spec,
        *,
        env: Mapping[str, str] | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ):
        check_options(spec, self.OPTIONS, what="model")
        if not spec.target.strip():
            raise ConfigError(f"model '{spec.text}': name the model after '{self.kind}:', e.g. {self.example}")
        self.spec = spec
        self.model_id = spec.target.strip()
        self.name = spec.option("name") or self.model_id
        # The API seed is the model's, not the run's: a new statistics seed must not repay every call.
        self.seed = int_option(spec, "seed", 0, minimum=0)
        self.max_tokens = int_option(spec, "max_tokens", 64, minimum=1)
        self.structured = flag_option(spec, "structured", True)
        self.env = dict(os.environ if env is None else env)
        self._backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._usage = Usage()
        self._versions: set[str] = set()
        self._versions_lock = threading.Lock()
        self._prompts: dict[str, str] = {}
        # Known before any call, so answers read back from the cache are redacted too.
        candidates = (self.env.get(name, "").strip() for name in self.key_variables)
        self._secrets = tuple(sorted({key for key in candidates if len(key) >= MIN_SECRET_LENGTH}))

    # -- what a subclass provides ---------------------------------------------------------------

    example: ClassVar[str] = ""

    def settings(self, labels: Sequence[str]) -> dict[str, Any]:
        """Every setting that shapes an answer (part of the cache key)."""
        raise NotImplementedError

    def interpret(self, payload: Any, labels: Sequence[str]) -> Reading:
        """A stored response -> outcome; pure, so it can be re-run over the cache."""
        raise NotImplementedError

    def transport_failure(self, payload: Any) -> str | None:
        """Why a stored or received body is not a model answer at all (a gateway's error), or None."""
        raise NotImplementedError

    def _connect(self, context: PredictContext) -> None:
        """Make the client (checking the key) before the first call; not needed for a cached run."""
        raise NotImplementedError

    def _send(self, image: bytes, mime: str, prompt: str, labels: Sequence[str], timeout_s: float) -> Reply:
        """One request; raises TransientError, PermanentError or ModelError (stops the run)."""
        raise NotImplementedError

    # -- the contract -----------------------------------------------------------------------------

    def usage(self) -> dict[str, int]:
        """Calls made, cache hits, retries, tokens used, and outcomes by kind, for the summary."""
        return self._usage.as_dict()

    def prompts(self) -> dict[str, str]:
        """The template, and the prompt as rendered for each dataset seen."""
        rendered = {f"chat[{dataset}]": text for dataset, text in sorted(self._prompts.items())}
        return {"chat": prompt_book.TEMPLATES["chat"], **rendered}

    def model_versions(self) -> list[str]:
        with self._versions_lock:
            return sorted(self._versions)

    def predict(self, dataset: Dataset, *, context: PredictContext) -> pd.DataFrame:
        labels = tuple(dataset.emotions)
        prompt = prompt_book.chat_prompt(labels)
        self._prompts[dataset.name] = prompt
        settings = self.settings(labels)
        jobs: dict[str, _Job] = {}
        for sample_id, relative in dataset.samples[["sample_id", "path"]].itertuples(index=False):
            path = dataset.root / relative
            digest = content_digest(self._read(path))
            key = cache_key(model=self.model_id, inputs={"image": digest}, prompt=prompt, settings=settings)
            # Identical images are one question: asked once, answered for every sample showing them.
            jobs.setdefault(key, _Job(key=key, path=path, digest=digest)).sample_ids.append(str(sample_id))
        results: dict[str, tuple[str, str]] = {}
        with ResponseCache.in_dir(context.cache_dir) as cache:
            stored = cache.get_many(jobs)
            # Stored by a version that took a gateway's error for an answer: forget it, ask again.
            cache.discard([key for key, entry in stored.items() if self.transport_failure(entry.payload)])
            for key, entry in stored.items():
                if not self.transport_failure(entry.payload):
                    self._usage.add("cache_hits")
                    self._record(jobs.pop(key), entry.payload, labels, results)
            missing = list(jobs.values())
            if missing:
                self._connect(context)

                def call(job: _Job, timeout_s: float) -> Reply:
                    if (entry := _await_claim(cache, job.key)) is not None:
                        self._usage.add("calls", -1)  # the runner counted a request that was never sent
                        job.shared = True
                        return Reply(payload=entry.payload)
                    image = self._read(job.path)
                    if content_digest(image) != job.digest:
                        raise ModelError(f"{self.name}: image {job.path} changed during the run; run again")
                    try:
                        reply = self._send(image, image_mime(image, job.path), prompt, labels, timeout_s)
                    except (TransientError, PermanentError, ModelError) as error:
                        error.args = (self.redact(str(error)),)  # the message reaches CI logs and results
                        raise
                    payload = redact_payload(reply.payload, self._secrets)
                    if (why := self.transport_failure(payload)) is not None:
                        raise TransientError(self.redact(why), kind="gateway")
                    return Reply(payload=payload, tokens=reply.tokens)

                def on_reply(job: _Job, reply: Reply) -> None:
                    if job.shared:
                        self._usage.add("cache_hits")
                    else:
                        cache.put(job.key, reply.payload, model=self.model_id, meta={"tokens": reply.tokens})
                        cache.release(job.key)
                    self._record(job, reply.payload, labels, results)

                def on_failure(job: _Job, failure: Failure) -> None:
                    cache.release(job.key)  # nothing stored: another run sharing the cache may try
                    raw = {"error": failure.kind, "message": failure.message, "attempts": failure.attempts}
                    for sample_id in job.sample_ids:
                        self._usage.add("error")
                        results[sample_id] = ("error", _compact(raw))

                runner: Runner[_Job] = Runner(
                    name=self.name,
                    context=context,
                    usage=self._usage,
                    backoff=self._backoff,
                    sleep=self._sleep,
                    clock=self._clock,
                    rng=self._rng,
                )
                runner.run(
                    missing, call=call, on_reply=on_reply, on_failure=on_failure, desc=f"{self.name} on {dataset.name}"
                )
        order = dataset.samples["sample_id"].astype(str)
        return pd.DataFrame([(sample_id, *results[sample_id]) for sample_id in order], columns=list(OUTCOME_COLUMNS))

    # -- helpers ----------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` without this model's API key or anything shaped like a bearer token."""
        return redact(text, self._secrets)

    def _record(self, job: _Job, payload: Any, labels: Sequence[str], results: dict[str, tuple[str, str]]) -> None:
        try:
            reading = self.interpret(payload, labels)
        except _SHAPE_ERRORS as error:
            # A reader missed a shape: the body stays stored and readable, and a fixed reader re-reads it.
            reading = Reading(outcome="unparseable", reason=f"response of an unexpected shape ({error})")
        if isinstance(reading.version, str) and reading.version:
            with self._versions_lock:
                self._versions.add(reading.version)
        raw = self.redact(_compact(payload))
        for sample_id in job.sample_ids:
            self._usage.add(reading.outcome if reading.outcome in NON_ANSWERS else "answered")
            results[sample_id] = (reading.outcome, raw)

    def _read(self, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as error:
            raise ModelError(f"{self.name}: cannot read image {path}: {error.strerror}") from None

    def _secret(self, names: Sequence[str]) -> str:
        """The first of ``names`` set in the environment, or one line saying what was looked for."""
        for name in names:
            value = self.env.get(name, "").strip()
            if value:
                if len(value) >= MIN_SECRET_LENGTH and value not in self._secrets:
                    self._secrets = tuple(sorted({*self._secrets, value}))
                return value
        raise ModelError(
            f"{self.name}: no API key; set {' or '.join(names)} in the environment "
            "(responses already cached are used without one)"
        )


def _await_claim(cache: ResponseCache, key: str) -> Entry | None:
    """None once this run holds ``key``'s claim; the answer, if another run stored it meanwhile.

    A claim of a live owner is waited out; a dead owner's lapses (see ``ResponseCache.claim``), so
    this ends. Real sleeps: the wait is for another process, not a backoff a test replaces.
    """
    pause = _FIRST_POLL_S
    while True:
        status = cache.claim(key)
        if status == "mine":
            return None
        if status == "answered" and (entry := cache.get(key)) is not None:
            return entry
        time.sleep(pause)
        pause = min(pause * 2, _MAX_POLL_S)


def _compact(payload: Any) -> str:
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
