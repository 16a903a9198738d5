"""A scriptable chat API on 127.0.0.1 for the real ``openai`` and ``google-genai`` clients.

It speaks enough of the OpenAI chat-completions and Gemini generateContent wire formats for both
SDKs, and answers each request according to a *behaviour* chosen per image (identified by the
SHA-256 of the image bytes it receives):

    answer:LABEL     a well-formed answer (JSON {"emotion": LABEL} when the request asked for a schema)
    text:FREE TEXT   the content as given
    refuse           openai: message.refusal; gemini: promptFeedback.blockReason = SAFETY
    filter           openai: finish_reason content_filter; gemini: finishReason SAFETY
    finish:REASON    gemini: a candidate stopped for REASON (RECITATION, PROHIBITED_CONTENT, ...)
    malformed        content that starts as JSON and breaks off
    429:SECONDS      HTTP 429 with Retry-After: SECONDS (429:none: without a Retry-After header)
    500              HTTP 500
    503              HTTP 503
    reset            the connection is closed without an answer (read as a connection reset)
    truncated        a well-formed answer cut short: its Content-Length promises more than is sent
    400:CODE         HTTP 400 with error code CODE (content_filter: Azure's filter refusing the request)
    401              HTTP 401 (a rejected key)
    hang             no answer until the server is closed (past any client timeout)
    html             HTTP 200 with a gateway's HTML error page (not JSON)
    htmlecho         the same, echoing the API key across character 200 (where error messages cut)
    error200         HTTP 200 whose JSON body is a gateway's ``{"error": ...}``
    shape:FIELD      HTTP 200, a well-formed envelope with FIELD of an unexpected type; openai:
                     message, fingerprint, usage, content, nan (a NaN token count); gemini: content,
                     version, usage, parts
    echo401          HTTP 401 whose message echoes the API key the request carried
    echofilter       a content-filter refusal that echoes the key (openai: HTTP 400 content_filter;
                     gemini: blockReason SAFETY with the key in blockReasonMessage)

``script(image, *behaviours)`` queues behaviours for one image (one per request); when its queue is
empty an image gets ``default(image)``. Every request is logged (``calls``) with its image, its
behaviour and whether the answer was completely sent. Use it as a context manager (a fixture per
test module), so its threads end with the test.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fer_fairness.datasets._table import Dataset
from fer_fairness.models import MODELS
from fer_fairness.models._base import PredictContext
from fer_fairness.models.resilience import Backoff
from fer_fairness.specs import Spec

TOKENS_PER_ANSWER = 100
FINGERPRINT = "fp_fake_0001"
MODEL_VERSION = "gemini-fake-001"
HANG_LIMIT_S = 10.0  # a hung handler gives up after this even if nobody closes the server


@dataclass
class Call:
    """One request as the server saw it."""

    api: str
    path: str
    image: str
    behaviour: str
    body: dict
    headers: dict
    completed: bool = False


@dataclass
class FakeAPI:
    default: Callable[[str], str] = lambda image: "answer:neutral"
    calls: list[Call] = field(default_factory=list)
    tokens: int = TOKENS_PER_ANSWER
    latency_s: float = 0.0  # every answer waits this long first (a remote API's round trip, for benchmarks)

    def __post_init__(self) -> None:
        self._queues: dict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Condition()
        self._release = threading.Event()
        self._hold_after: int | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
                api._handle(self)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    # -- for tests --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, image: str, *behaviours: str) -> None:
        with self._lock:
            self._queues[image].extend(behaviours)

    def hold_after(self, completed: int) -> None:
        """From the ``completed + 1``-th request on, every request hangs (until ``release`` or ``close``)."""
        with self._lock:
            self._hold_after = completed
            self._release.clear()  # re-armed: after an earlier release, a "hang" would end at once

    def release(self) -> None:
        """Stop holding: hung requests end (their clients are gone) and new ones are answered."""
        with self._lock:
            self._hold_after = None
        self._release.set()

    def wait_until(self, condition: Callable[[FakeAPI], bool], *, timeout_s: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while not condition(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def completed(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.completed]

    def waiting(self) -> int:
        with self._lock:
            return sum(1 for c in self.calls if c.behaviour == "hang" and not c.completed)

    def count(self, image: str | None = None) -> int:
        with self._lock:
            return sum(1 for c in self.calls if image is None or c.image == image)

    def reset_log(self) -> None:
        with self._lock:
            self.calls.clear()

    def __enter__(self) -> FakeAPI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- serving ----------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}")
        if self.latency_s:
            time.sleep(self.latency_s)
        api = "gemini" if ":generateContent" in handler.path else "openai"
        image = _image_digest(api, body)
        with self._lock:
            answered = sum(1 for c in self.calls if c.behaviour != "hang")
            if self._hold_after is not None and answered >= self._hold_after:
                behaviour = "hang"
            elif self._queues[image]:
                behaviour = self._queues[image].popleft()
            else:
                behaviour = self.default(image)
            call = Call(api, handler.path, image, behaviour, body, {k.lower(): v for k, v in handler.headers.items()})
            self.calls.append(call)
            self._lock.notify_all()
        if behaviour == "hang":
            self._release.wait(HANG_LIMIT_S)
            _quietly(lambda: handler.connection.close())
            return
        if behaviour == "reset":
            handler.close_connection = True
            _quietly(lambda: handler.connection.shutdown(socket.SHUT_RDWR))
            return
        promised = None
        if behaviour == "truncated":  # the body a well-formed answer would have, half of it sent
            behaviour, promised = "answer:anger", 2
        key = _request_key(call.headers)
        status, headers, payload = (_openai if api == "openai" else _gemini)(behaviour, body, self.tokens, key)
        if isinstance(payload, str):  # a gateway's page, not the API's JSON
            data, content_type = payload.encode(), "text/html; charset=utf-8"
        else:
            data, content_type = json.dumps(payload).encode(), "application/json"
        try:
            handler.send_response(status)
            headers = {"Content-Type": content_type, "Content-Length": str(len(data)), **headers}
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            if promised is not None:
                handler.wfile.write(data[: len(data) // promised])
                handler.wfile.flush()
                handler.close_connection = True
                _quietly(lambda: handler.connection.shutdown(socket.SHUT_RDWR))
                return
            handler.wfile.write(data)
            handler.wfile.flush()
        except OSError:
            return
        with self._lock:
            call.completed = True
            self._lock.notify_all()


def _quietly(action: Callable[[], object]) -> None:
    try:
        action()
    except OSError:
        pass


def decode_base64(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not (the genai SDK sends URL-safe without padding)."""
    return base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))


def _image_digest(api: str, body: dict) -> str:
    try:
        if api == "openai":
            for part in body["messages"][0]["content"]:
                if part.get("type") == "image_url":
                    return hashlib.sha256(base64.b64decode(part["image_url"]["url"].split(",", 1)[1])).hexdigest()
        else:
            for part in body["contents"][0]["parts"]:
                inline = part.get("inlineData") or part.get("inline_data")
                if inline:
                    return hashlib.sha256(decode_base64(inline["data"])).hexdigest()
    except (KeyError, IndexError, TypeError):
        pass
    return "no image"


def _request_key(headers: dict) -> str:
    """The API key a request carried (what a careless server would echo back)."""
    return headers.get("x-goog-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


HTML_PAGE = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
ERROR_200 = {"error": {"code": 502, "message": "upstream connect error or disconnect/reset before headers"}}


def _error(status: int, message: str, code: str, headers: dict | None = None) -> tuple[int, dict, dict]:
    return status, headers or {}, {"error": {"code": code, "message": message, "status": code, "type": code}}


def _status(behaviour: str, key: str) -> tuple[int, dict, dict | str] | None:
    kind, _, argument = behaviour.partition(":")
    if kind == "html":
        return 200, {}, HTML_PAGE
    if kind == "htmlecho":
        head = "<html><body>"
        start = 200 - len(key) // 2  # the cut falls inside the key: only redacting first hides it all
        return 200, {}, f"{head}{'x' * (start - len(head))}{key}</body></html>"
    if kind == "error200":
        return 200, {}, ERROR_200
    if kind == "echo401":
        return _error(401, f"Incorrect API key provided: {key}. Find your key at the console.", "invalid_api_key")
    if kind == "429":
        after = {} if argument == "none" else {"Retry-After": argument or "1"}
        return _error(429, "rate limited", "rate_limit_exceeded", after)
    if kind == "500":
        return _error(500, "internal error", "internal")
    if kind == "503":
        return _error(503, "service unavailable", "unavailable")
    if kind == "400":
        return _error(400, "request rejected", argument or "bad_request")
    if kind == "401":
        return _error(401, "invalid api key", "invalid_api_key")
    return None


def _openai(behaviour: str, body: dict, tokens: int, key: str) -> tuple[int, dict, dict | str]:
    if (error := _status(behaviour, key)) is not None:
        return error
    kind, _, argument = behaviour.partition(":")
    if kind == "echofilter":
        return _error(400, f"filtered (request authorised by Bearer {key})", "content_filter")
    if kind == "shape":
        good = _openai("answer:anger", body, tokens, key)[2]
        broken = {
            "message": lambda d: d["choices"][0].update(message="anger"),
            "fingerprint": lambda d: d.update(system_fingerprint={"id": FINGERPRINT}),
            "usage": lambda d: d.update(usage="plenty"),
            "content": lambda d: d["choices"][0]["message"].update(content={"emotion": "anger"}),
            "nan": lambda d: d["usage"].update(total_tokens=float("nan")),  # sent as NaN, not JSON
        }
        broken[argument](good)
        return 200, {}, good
    content, refusal, finish = None, None, "stop"
    if kind == "answer":
        content = json.dumps({"emotion": argument}) if "response_format" in body else argument
    elif kind == "text":
        content = argument
    elif kind == "refuse":
        refusal = "I'm sorry, I can't help with identifying people's emotions."
    elif kind == "filter":
        finish = "content_filter"
    elif kind == "malformed":
        content = '{"emotion": "ang'
    else:
        raise ValueError(f"unknown behaviour {behaviour!r}")
    return (
        200,
        {},
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "?"),
            "system_fingerprint": FINGERPRINT,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": tokens - 1, "completion_tokens": 1, "total_tokens": tokens},
        },
    )


def _gemini(behaviour: str, body: dict, tokens: int, key: str) -> tuple[int, dict, dict | str]:
    if (error := _status(behaviour, key)) is not None:
        return error
    kind, _, argument = behaviour.partition(":")
    usage = {"promptTokenCount": tokens - 1, "candidatesTokenCount": 1, "totalTokenCount": tokens}
    base = {"usageMetadata": usage, "modelVersion": MODEL_VERSION, "responseId": "fake"}
    if kind == "echofilter":
        feedback = {"blockReason": "SAFETY", "blockReasonMessage": f"blocked for key {key}"}
        return 200, {}, {**base, "promptFeedback": feedback}
    if kind == "shape":
        good = _gemini("answer:anger", body, tokens, key)[2]
        broken = {
            "content": lambda d: d["candidates"][0].update(content="anger"),
            "version": lambda d: d.update(modelVersion={"name": MODEL_VERSION}),
            "usage": lambda d: d.update(usageMetadata="plenty"),
            "parts": lambda d: d["candidates"][0]["content"].update(parts="anger"),
        }
        broken[argument](good)
        return 200, {}, good
    if kind == "refuse":
        return 200, {}, {**base, "promptFeedback": {"blockReason": "SAFETY"}}
    if kind in ("filter", "finish"):
        reason = argument or "SAFETY"
        return 200, {}, {**base, "candidates": [{"finishReason": reason, "index": 0}]}
    text = {"answer": argument, "text": argument, "malformed": '{"emotion": "ang'}.get(kind)
    if text is None:
        raise ValueError(f"unknown behaviour {behaviour!r}")
    candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}
    return 200, {}, {**base, "candidates": [candidate]}


# The registry entries the chat adapters are wired under (the package registry is wired separately).


def parse_spec(text: str) -> Spec:
    return MODELS.parse(text)


def chat_model(cls, text: str, *, env: dict[str, str | None], sleeps: list | None = None):
    """A chat adapter wired for tests: ``env`` instead of os.environ (None drops a key), fast
    backoff, waits recorded in ``sleeps`` instead of slept, seeded jitter."""
    return cls(
        parse_spec(text),
        env={k: v for k, v in env.items() if v is not None},
        backoff=Backoff(base_s=0.5, cap_s=4.0),
        sleep=(sleeps if sleeps is not None else []).append,
        rng=random.Random(0),
    )


def api_context(tmp_path: Path, **limits) -> PredictContext:
    """Two requests in flight, short timeouts, two retries, no progress bar (override any)."""
    values = {"concurrency": 2, "timeout_s": 5.0, "max_retries": 2, **limits}
    return PredictContext(seed=0, cache_dir=tmp_path / "cache", progress=False, **values)


def closed_port() -> int:
    """A local port nobody listens on (connection refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- tiny datasets --------------------------------------------------------------------------------


def png_bytes(seed: int, size: int = 4) -> bytes:
    """A tiny PNG, different for every seed."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def tiny_dataset(
    root: Path,
    emotions_and_groups: list[tuple[str, str]],
    *,
    labels: tuple[str, ...] = ("anger", "happiness", "neutral"),
    name: str = "tiny",
    seed: int = 0,
) -> tuple[Dataset, dict[str, str]]:
    """A dataset of tiny PNGs (one per (emotion, group) row) and its sample id -> image digest map."""
    root.mkdir(parents=True, exist_ok=True)
    rows, digests = [], {}
    for i, (emotion, group) in enumerate(emotions_and_groups):
        data = png_bytes(seed * 100_000 + i)
        sample_id = f"s{i:04d}"
        (root / f"{sample_id}.png").write_bytes(data)
        digests[sample_id] = hashlib.sha256(data).hexdigest()
        row = {"sample_id": sample_id, "path": f"{sample_id}.png", "emotion": emotion, "subject_id": f"p{i}"}
        rows.append({**row, "group": group})
    samples = pd.DataFrame(rows)
    return Dataset(name=name, root=root, samples=samples, attributes=("group",), emotions=labels), digests
