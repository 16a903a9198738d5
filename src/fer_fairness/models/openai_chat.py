"""``openai:MODEL``: any OpenAI-compatible chat-completions server, through the ``openai`` client.

Each image goes as a base64 data URL beside the closed-label prompt. With ``structured=1`` (the
default) the answer is constrained by a strict JSON schema whose only field is an enum of the
dataset's labels; the strict free-text parser reads servers that ignore the schema. temperature 0
and a fixed seed; the ``system_fingerprint`` of every answer is recorded. ``message.refusal`` and a
``content_filter`` finish (or a 400 whose error code is ``content_filter``) are refusals, cached as
the model's final answer; malformed JSON, or a completion of an unexpected shape, is unparseable,
its raw text kept. A body that is not a completion (a gateway's HTML page or ``{"error": ...}`` sent
with HTTP 200) is a transport failure, retried and never stored. Retries belong to the resilience
layer, so the client's own are switched off.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, ClassVar

from fer_fairness.errors import ConfigError, ModelError
from fer_fairness.models._base import PredictContext
from fer_fairness.models._chat import ChatModel, Reading, error_body_message, strict_json, usage_tokens
from fer_fairness.models.parsing import Parsed, parse_json_answer
from fer_fairness.models.resilience import PermanentError, Reply, TransientError
from fer_fairness.specs import Spec

DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEY_VARIABLES = ("OPENAI_API_KEY",)
ANSWER_FIELD = "emotion"
REFUSAL_FINISHES = frozenset({"content_filter"})
# Status codes that mean the configuration is wrong for every request: stop the run, say so once.
FATAL_STATUS = {401: "the API key was rejected", 403: "access denied", 404: "unknown model or endpoint"}


class OpenAIChatModel(ChatModel):
    """``openai:MODEL?name=N&seed=0&max_tokens=64&structured=1&detail=auto``."""

    kind: ClassVar[str] = "openai"
    example: ClassVar[str] = "openai:gpt-4o-2024-08-06"
    key_variables: ClassVar[tuple[str, ...]] = KEY_VARIABLES
    OPTIONS: ClassVar[tuple[str, ...]] = (*ChatModel.OPTIONS, "detail")
    DETAILS: ClassVar[tuple[str, ...]] = ("auto", "low", "high")

    def __init__(self, spec: Spec, **kwargs: Any):
        # Imported now, so a missing extra is one usage line before any data is read (Registry.build).
        import openai

        super().__init__(spec, **kwargs)
        self._openai = openai
        self.detail = spec.option("detail", "auto")
        if self.detail not in self.DETAILS:
            raise ConfigError(
                f"model '{spec.text}': option detail must be one of {', '.join(self.DETAILS)}; got {self.detail!r}"
            )
        self.base_url = (self.env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._client = None

    def settings(self, labels: Sequence[str]) -> dict[str, Any]:
        return {
            "api": "openai.chat.completions",
            "base_url": self.base_url,
            "temperature": 0,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
            "detail": self.detail,
            "response_format": response_format(labels) if self.structured else None,
            "image": "original bytes, base64 data URL",
        }

    def describe(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "model": self.model_id,
            "base_url": self.base_url,
            "temperature": "0",
            "seed": str(self.seed),
            "max_tokens": str(self.max_tokens),
            "structured": "json_schema enum" if self.structured else "free text",
            "detail": self.detail,
            "system_fingerprint": ", ".join(self.model_versions()) or "none seen",
        }

    # -- one request ------------------------------------------------------------------------------

    def _connect(self, context: PredictContext) -> None:
        if self._client is not None:
            return
        key = self._secret(self.key_variables)
        self._client = self._openai.OpenAI(
            api_key=key, base_url=self.base_url, max_retries=0, timeout=context.timeout_s
        )

    def _send(self, image: bytes, mime: str, prompt: str, labels: Sequence[str], timeout_s: float) -> Reply:
        openai = self._openai
        url = f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"
        content = [
            {"type": "text", "text": prompt},
            {"type": "image_url", "image_url": {"url": url, "detail": self.detail}},
        ]
        extra = {"response_format": response_format(labels)} if self.structured else {}
        try:
            response = self._client.chat.completions.with_raw_response.create(
                model=self.model_id,
                messages=[{"role": "user", "content": content}],
                temperature=0,
                seed=self.seed,
                max_tokens=self.max_tokens,
                timeout=timeout_s,
                **extra,
            )
        except openai.APITimeoutError as error:
            raise TransientError(f"no answer within {timeout_s:g} s ({error})", kind="timeout") from None
        except openai.APIConnectionError as error:
            raise TransientError(f"connection failed: {error}", kind="connection") from None
        except openai.APIStatusError as error:
            if _error_code(error.body) == "content_filter":
                # The provider's filter refused the request itself: the model's final answer, cached.
                return Reply(payload={"rejected": "content_filter", "status": error.status_code, "body": error.body})
            raise _status_error(self.name, error) from None
        try:
            payload = strict_json(response.text)
        except ValueError:
            # A proxy's error page: the request never reached the model. Redacted before it is cut short,
            # so no prefix of the key survives the cut.
            snippet = self.redact(response.text)[:200]
            raise TransientError(f"HTTP {response.status_code}, body not JSON: {snippet!r}", kind="gateway") from None
        return Reply(payload=payload, tokens=usage_tokens(payload, "usage", "total_tokens"))

    def transport_failure(self, payload: Any) -> str | None:
        return completion_transport_failure(payload)

    # -- reading a stored response ----------------------------------------------------------------

    def interpret(self, payload: Any, labels: Sequence[str]) -> Reading:
        return read_completion(payload, labels)


def response_format(labels: Sequence[str]) -> dict[str, Any]:
    """A strict JSON schema whose one field must be one of the labels."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "facial_expression",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {ANSWER_FIELD: {"type": "string", "enum": list(labels)}},
                "required": [ANSWER_FIELD],
                "additionalProperties": False,
            },
        },
    }


def completion_transport_failure(payload: Any) -> str | None:
    """Why a body is not a chat completion at all (a gateway answered, not the model), or None."""
    if not isinstance(payload, dict):
        return "HTTP 200 with a body that is not a JSON object"
    if "error" in payload and "choices" not in payload:
        return f"HTTP 200 with an error body: {error_body_message(payload)}"[:300]
    return None


def read_completion(payload: Any, labels: Sequence[str]) -> Reading:
    """A stored chat-completions body (or a cached content-filter rejection) -> outcome.

    Every field is type-checked: a body of an unexpected shape is unparseable, never an exception.
    """
    if not isinstance(payload, dict):
        return Reading.of(Parsed("unparseable", "response is not a JSON object"))
    if "rejected" in payload:  # a 400 content_filter rejection, cached as the model's answer
        return Reading.of(Parsed("refused", "request rejected by the content filter"))
    fingerprint = payload.get("system_fingerprint")
    version = fingerprint if isinstance(fingerprint, str) and fingerprint else None
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return Reading.of(Parsed("unparseable", "response has no choices"), version=version)
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        return Reading.of(Parsed("unparseable", "choices[0].message is not an object"), version=version)
    if message.get("refusal"):
        return Reading.of(Parsed("refused", "message.refusal"), version=version)
    if isinstance(choice.get("finish_reason"), str) and choice["finish_reason"] in REFUSAL_FINISHES:
        return Reading.of(Parsed("refused", f"finish_reason {choice['finish_reason']}"), version=version)
    content = message.get("content")
    if not isinstance(content, str):
        return Reading.of(Parsed("unparseable", "no text content"), version=version)
    return Reading.of(parse_json_answer(content, labels, field=ANSWER_FIELD), version=version)


def _error_code(body: Any) -> str | None:
    """The error code of an error body, wherever the server put it (top level or under "error")."""
    if not isinstance(body, dict):
        return None
    inner = body.get("error")
    return body.get("code") or (inner.get("code") if isinstance(inner, dict) else None)


def _status_error(name: str, error: Any) -> Exception:
    status = error.status_code
    headers = error.response.headers
    body = error.body if isinstance(error.body, dict) else {}
    message = body.get("message") or error.message
    if status == 429:
        return TransientError(f"HTTP 429 rate limited: {message}", kind="rate_limit", headers=headers)
    if status >= 500 or status in (408, 409):
        return TransientError(f"HTTP {status}: {message}", kind="server", headers=headers)
    if status in FATAL_STATUS:
        return ModelError(f"{name}: HTTP {status} from the API, {FATAL_STATUS[status]}: {message}")
    return PermanentError(f"HTTP {status}: {message}", kind="rejected")
