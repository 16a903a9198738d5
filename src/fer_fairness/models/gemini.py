"""``gemini:MODEL``: Gemini through the ``google-genai`` SDK.

Each image goes inline beside the closed-label prompt. With ``structured=1`` (the default) the answer
is constrained to the label enum (``response_mime_type="text/x.enum"``); otherwise it is read as
free text by the strict parser. temperature 0 and a fixed seed; ``modelVersion`` of every answer is
recorded. Safety settings are an option (``safety=BLOCK_NONE`` for every category, or
``safety=HARASSMENT:BLOCK_ONLY_HIGH,HATE_SPEECH:BLOCK_NONE``) and part of the cache key.

A blocked prompt (``promptFeedback.blockReason``) or a candidate stopped for SAFETY,
PROHIBITED_CONTENT, BLOCKLIST, SPII, RECITATION or an image-safety reason is ``refused``: the
model's final answer, cached. The raw response body is stored as the server sent it (the API key
redacted); one of an unexpected shape is unparseable. A body that is not a generateContent response
(a gateway's HTML page or ``{"error": ...}`` sent with HTTP 200) is a transport failure, retried and
never stored.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from fer_fairness.errors import ConfigError, ModelError
from fer_fairness.models._base import PredictContext
from fer_fairness.models._chat import ChatModel, Reading, error_body_message, strict_json, usage_tokens
from fer_fairness.models.parsing import Parsed, parse_choice, parse_text
from fer_fairness.models.resilience import PermanentError, Reply, TransientError
from fer_fairness.specs import Spec

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"
KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
BASE_URL_VARIABLES = ("GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL")
HARM_CATEGORIES = ("HARASSMENT", "HATE_SPEECH", "SEXUALLY_EXPLICIT", "DANGEROUS_CONTENT", "CIVIC_INTEGRITY")
# ``safety=THRESHOLD`` alone sets these four; CIVIC_INTEGRITY only when named.
DEFAULT_HARM_CATEGORIES = HARM_CATEGORIES[:4]
BLOCK_THRESHOLDS = ("BLOCK_NONE", "BLOCK_ONLY_HIGH", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_LOW_AND_ABOVE", "OFF")
# Finish reasons that mean the answer was withheld by a policy: a refusal, not a parse failure.
BLOCK_FINISHES = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)
FATAL_STATUS = {401: "the API key was rejected", 403: "access denied", 404: "unknown model or endpoint"}


class GeminiModel(ChatModel):
    """``gemini:MODEL?name=N&seed=0&max_tokens=64&structured=1&safety=...``."""

    kind: ClassVar[str] = "gemini"
    example: ClassVar[str] = "gemini:gemini-1.5-pro-002"
    key_variables: ClassVar[tuple[str, ...]] = KEY_VARIABLES
    OPTIONS: ClassVar[tuple[str, ...]] = (*ChatModel.OPTIONS, "safety")

    def __init__(self, spec: Spec, **kwargs: Any):
        # Imported now, so a missing extra is one usage line before any data is read (Registry.build).
        from google import genai
        from google.genai import errors, types

        super().__init__(spec, **kwargs)
        self._sdk: Any = (genai, types, errors)
        self.safety = parse_safety(spec.text, spec.option("safety"))
        self.base_url = next((self.env[v] for v in BASE_URL_VARIABLES if self.env.get(v)), DEFAULT_BASE_URL)
        self.base_url = self.base_url.rstrip("/")
        self._clients: dict[float, Any] = {}
        self._clients_lock = threading.Lock()
        self._transport: Any = None
        self._key: str | None = None

    def settings(self, labels: Sequence[str]) -> dict[str, Any]:
        return {
            "api": f"generateContent {API_VERSION}",
            "base_url": self.base_url,
            "temperature": 0,
            "seed": self.seed,
            "max_output_tokens": self.max_tokens,
            "response": {"mime_type": "text/x.enum", "enum": list(labels)} if self.structured else "text/plain",
            "safety": [list(pair) for pair in self.safety],
            "image": "original bytes, inline",
        }

    def describe(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "model": self.model_id,
            "base_url": self.base_url,
            "api_version": API_VERSION,
            "temperature": "0",
            "seed": str(self.seed),
            "max_output_tokens": str(self.max_tokens),
            "structured": "text/x.enum" if self.structured else "free text",
            "safety": ",".join(f"{c}:{t}" for c, t in self.safety) or "API defaults",
            "model_version": ", ".join(self.model_versions()) or "none seen",
        }

    # -- one request ------------------------------------------------------------------------------

    def _connect(self, context: PredictContext) -> None:
        self._key = self._secret(self.key_variables)
        if self._clients:  # connected once already
            return
        # The SDK's HTTP library (httpx2 in current releases, httpx before): its timeout and transport
        # errors are what a hung or dropped connection raises.
        for module in ("httpx2", "httpx"):
            try:
                self._transport = importlib.import_module(module)
                break
            except ImportError:
                continue
        self._client(context.timeout_s)

    def _client(self, timeout_s: float) -> Any:
        with self._clients_lock:  # one client per timeout; a dropped duplicate would close its transport
            client = self._clients.get(timeout_s)
            if client is None:
                genai, types, _ = self._sdk
                options = types.HttpOptions(
                    base_url=self.base_url,
                    api_version=API_VERSION,
                    timeout=max(int(timeout_s * 1000), 1),  # milliseconds
                    retry_options=types.HttpRetryOptions(attempts=1),  # retries belong to the resilience layer
                )
                client = genai.Client(api_key=self._key, vertexai=False, http_options=options)
                self._clients[timeout_s] = client
            return client

    def _config(self, labels: Sequence[str]) -> Any:
        _, types, _ = self._sdk
        structured = (
            {"response_mime_type": "text/x.enum", "response_schema": {"type": "STRING", "enum": list(labels)}}
            if self.structured
            else {}
        )
        return types.GenerateContentConfig(
            temperature=0,
            seed=self.seed,
            max_output_tokens=self.max_tokens,
            safety_settings=[
                types.SafetySetting(category=f"HARM_CATEGORY_{category}", threshold=threshold)
                for category, threshold in self.safety
            ]
            or None,
            should_return_http_response=True,  # keep the body exactly as sent, parse it ourselves
            **structured,
        )

    def _send(self, image: bytes, mime: str, prompt: str, labels: Sequence[str], timeout_s: float) -> Reply:
        _, types, errors = self._sdk
        contents = [types.Part.from_bytes(data=image, mime_type=mime), prompt]
        try:
            response = self._client(timeout_s).models.generate_content(
                model=self.model_id, contents=contents, config=self._config(labels)
            )
        except errors.APIError as error:
            raise _status_error(self.name, error) from None
        except Exception as error:
            raise self._transport_error(error, timeout_s) from None
        body = response.sdk_http_response.body if response.sdk_http_response else None
        try:
            payload = strict_json(body or "")
        except ValueError:
            # A proxy's error page: the request never reached the model. Redacted before it is cut short,
            # so no prefix of the key survives the cut.
            snippet = self.redact(str(body))[:200]
            raise TransientError(f"a response body that is not JSON: {snippet!r}", kind="gateway") from None
        return Reply(payload=payload, tokens=usage_tokens(payload, "usageMetadata", "totalTokenCount"))

    def transport_failure(self, payload: Any) -> str | None:
        return generate_content_transport_failure(payload)

    def _transport_error(self, error: Exception, timeout_s: float) -> Exception:
        transport = self._transport
        if transport is not None and isinstance(error, transport.TimeoutException):
            return TransientError(f"no answer within {timeout_s:g} s", kind="timeout")
        if transport is not None and isinstance(error, transport.TransportError):
            return TransientError(f"connection failed: {error}", kind="connection")
        return error  # a bug or an SDK change: surface it, do not count it as the model's answer

    # -- reading a stored response ----------------------------------------------------------------

    def interpret(self, payload: Any, labels: Sequence[str]) -> Reading:
        return read_generate_content(payload, labels, structured=self.structured)


def parse_safety(spec_text: str, value: str | None) -> tuple[tuple[str, str], ...]:
    """``BLOCK_NONE`` (the four standard categories) or ``CATEGORY:THRESHOLD,...``; checked."""
    if value is None or not value.strip():
        return ()
    allowed = (
        f"a threshold ({', '.join(BLOCK_THRESHOLDS)}) or CATEGORY:THRESHOLD pairs "
        f"with categories {', '.join(HARM_CATEGORIES)}"
    )
    if ":" not in value:
        if value.strip().upper() not in BLOCK_THRESHOLDS:
            raise ConfigError(f"model '{spec_text}': option safety must be {allowed}; got {value!r}")
        return tuple((category, value.strip().upper()) for category in DEFAULT_HARM_CATEGORIES)
    pairs: dict[str, str] = {}
    for part in value.split(","):
        category, _, threshold = part.strip().upper().partition(":")
        category = category.removeprefix("HARM_CATEGORY_")
        if category not in HARM_CATEGORIES or threshold not in BLOCK_THRESHOLDS:
            raise ConfigError(f"model '{spec_text}': option safety must be {allowed}; got {part.strip()!r}")
        pairs[category] = threshold
    return tuple(sorted(pairs.items()))


def generate_content_transport_failure(payload: Any) -> str | None:
    """Why a body is not a generateContent response at all (a gateway answered), or None."""
    if not isinstance(payload, dict):
        return "HTTP 200 with a body that is not a JSON object"
    if "error" in payload and not {"candidates", "promptFeedback"} & payload.keys():
        return f"HTTP 200 with an error body: {error_body_message(payload)}"[:300]
    return None


def read_generate_content(payload: Any, labels: Sequence[str], *, structured: bool = True) -> Reading:
    """A stored generateContent body -> outcome (block and finish reasons first, then the text).

    Every field is type-checked: a body of an unexpected shape is unparseable, never an exception.
    """
    if not isinstance(payload, dict):
        return Reading.of(Parsed("unparseable", "response is not a JSON object"))
    model_version = payload.get("modelVersion")
    version = model_version if isinstance(model_version, str) and model_version else None
    block = _field(payload, "promptFeedback", "blockReason")
    if block:
        return Reading.of(Parsed("refused", f"prompt blocked: {block}"), version=version)
    candidates = payload.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        return Reading.of(Parsed("unparseable", "response has no candidates"), version=version)
    candidate = candidates[0]
    finish = candidate.get("finishReason")
    finish = finish if isinstance(finish, str) else None
    if finish in BLOCK_FINISHES:
        return Reading.of(Parsed("refused", f"finishReason {finish}"), version=version)
    if candidate.get("content") is not None and not isinstance(candidate["content"], dict):
        return Reading.of(Parsed("unparseable", "candidates[0].content is not an object"), version=version)
    parts = _field(candidate, "content", "parts")
    if parts is not None and not isinstance(parts, list):
        return Reading.of(Parsed("unparseable", "candidates[0].content.parts is not a list"), version=version)
    texts = [p.get("text") for p in parts or () if isinstance(p, dict) and not p.get("thought")]
    text = "".join(t for t in texts if isinstance(t, str))
    parsed = parse_choice(text, labels) if structured else parse_text(text, labels)
    if finish not in (None, "STOP") and parsed.outcome not in labels:
        parsed = Parsed(parsed.outcome, f"{parsed.reason}; finishReason {finish}")
    return Reading.of(parsed, version=version)


def _field(document: dict, outer: str, inner: str) -> Any:
    """``document[outer][inner]``, or None where either level is missing or not an object."""
    section = document.get(outer)
    return section.get(inner) if isinstance(section, dict) else None


def _status_error(name: str, error: Any) -> Exception:
    status = int(error.code or 0)
    headers = error.response.headers if getattr(error, "response", None) is not None else {}
    message = error.message or error.status or ""
    if status == 429:
        return TransientError(f"HTTP 429 rate limited: {message}", kind="rate_limit", headers=headers)
    if status >= 500 or status in (408, 409):
        return TransientError(f"HTTP {status}: {message}", kind="server", headers=headers)
    if status in FATAL_STATUS:
        return ModelError(f"{name}: HTTP {status} from the API, {FATAL_STATUS[status]}: {message}")
    return PermanentError(f"HTTP {status}: {message}", kind="rejected")
