"""The gemini adapter, driving the real ``google-genai`` client against a local fake server."""

from __future__ import annotations

import hashlib
import json

import pytest

from fer_fairness.errors import ConfigError, ModelError
from fer_fairness.models.gemini import GeminiModel, read_generate_content
from fer_fairness.models.prompts import chat_prompt
from fer_fairness.models.response_cache import ResponseCache

from .fake_api import (
    MODEL_VERSION,
    TOKENS_PER_ANSWER,
    FakeAPI,
    api_context,
    chat_model,
    closed_port,
    decode_base64,
    parse_spec,
    tiny_dataset,
)

pytest.importorskip("google.genai")

LABELS = ("anger", "happiness", "neutral")


@pytest.fixture
def fake_api():
    with FakeAPI() as api:
        yield api


@pytest.fixture
def dataset(tmp_path):
    rows = [("anger", "a"), ("happiness", "a"), ("neutral", "b"), ("anger", "b"), ("neutral", "b")]
    return tiny_dataset(tmp_path / "images", rows)


spec = parse_spec


def model(api, text: str = "gemini:gemini-test", sleeps: list | None = None, **env) -> GeminiModel:
    return chat_model(
        GeminiModel, text, env={"GEMINI_API_KEY": "g-test", "GEMINI_BASE_URL": api.url, **env}, sleeps=sleeps
    )


context = api_context


def test_answers_blocks_and_finish_reasons_become_outcomes(fake_api, dataset, tmp_path):
    data, digests = dataset
    behaviours = ["answer:anger", "refuse", "filter", "finish:RECITATION", "malformed"]
    for sample_id, behaviour in zip(digests, behaviours, strict=True):
        fake_api.script(digests[sample_id], behaviour)
    adapter = model(fake_api)
    frame = adapter.predict(data, context=context(tmp_path))
    assert list(frame["outcome"]) == ["anger", "refused", "refused", "refused", "unparseable"]
    raw = [json.loads(text) for text in frame["raw"]]
    assert raw[1]["promptFeedback"] == {"blockReason": "SAFETY"}  # the body exactly as the server sent it
    assert raw[3]["candidates"][0]["finishReason"] == "RECITATION"
    usage = adapter.usage()
    assert usage["calls"] == 5 and usage["tokens"] == 5 * TOKENS_PER_ANSWER
    assert (usage["answered"], usage["refused"], usage["unparseable"], usage["error"]) == (1, 3, 1, 0)
    assert adapter.describe()["model_version"] == MODEL_VERSION


def test_the_request_uses_the_enum_schema_safety_settings_and_the_key(fake_api, dataset, tmp_path):
    data, digests = dataset
    text = "gemini:gemini-test?seed=3&max_tokens=4&safety=HARASSMENT:BLOCK_NONE,hate_speech:BLOCK_ONLY_HIGH"
    model(fake_api, text).predict(data, context=context(tmp_path))
    call = next(c for c in fake_api.calls if c.image == digests["s0000"])
    assert call.path == "/v1beta/models/gemini-test:generateContent"
    assert call.headers["x-goog-api-key"] == "g-test"
    config = call.body["generationConfig"]
    assert config["temperature"] == 0 and config["seed"] == 3 and config["maxOutputTokens"] == 4
    assert config["responseMimeType"] == "text/x.enum"
    assert config["responseSchema"] == {"type": "STRING", "enum": list(LABELS)}
    assert call.body["safetySettings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"},
        {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"},
    ]
    image, prompt = call.body["contents"][0]["parts"]
    inline = image.get("inlineData") or image["inline_data"]
    assert hashlib.sha256(decode_base64(inline["data"])).hexdigest() == digests["s0000"]
    assert prompt == {"text": chat_prompt(LABELS)}


def test_free_text_mode(fake_api, dataset, tmp_path):
    data, digests = dataset
    texts = ["Angry.", "not happy", "happy", "I cannot identify that.", "calm"]
    for sample_id, text in zip(digests, texts, strict=True):
        fake_api.script(digests[sample_id], f"text:{text}")
    frame = model(fake_api, "gemini:gemini-test?structured=0").predict(data, context=context(tmp_path))
    assert "responseSchema" not in fake_api.calls[0].body["generationConfig"]
    assert list(frame["outcome"]) == ["anger", "unparseable", "happiness", "refused", "unparseable"]


def test_retries_then_cache(fake_api, dataset, tmp_path):
    data, digests = dataset
    fake_api.script(digests["s0000"], "429:2", "answer:anger")
    fake_api.script(digests["s0001"], "500", "hang", "answer:happiness")
    sleeps: list[float] = []
    adapter = model(fake_api, sleeps=sleeps)
    frame = adapter.predict(data, context=context(tmp_path, concurrency=1, timeout_s=0.3))
    assert list(frame["outcome"]) == ["anger", "happiness", "neutral", "neutral", "neutral"]
    assert fake_api.count() == 5 + 1 + 2 and adapter.usage()["retries"] == 3
    assert 2.0 <= sleeps[0] <= 2.5
    fake_api.reset_log()
    again = model(fake_api, GEMINI_API_KEY=None).predict(data, context=context(tmp_path))
    assert fake_api.count() == 0 and list(again["outcome"]) == list(frame["outcome"])


def test_a_server_that_keeps_failing_gives_errors(fake_api, dataset, tmp_path):
    data, digests = dataset
    fake_api.script(digests["s0000"], "500", "500")
    frame = model(fake_api).predict(data, context=context(tmp_path, max_retries=1))
    assert frame["outcome"].iloc[0] == "error"
    assert json.loads(frame["raw"].iloc[0]) == {"error": "server", "message": "HTTP 500: internal error", "attempts": 2}
    assert fake_api.count(digests["s0000"]) == 2  # the SDK's own retries are off


def test_an_unreachable_server_gives_errors_after_retries(dataset, tmp_path):
    data, _ = dataset
    env = {"GEMINI_API_KEY": "g-test", "GEMINI_BASE_URL": f"http://127.0.0.1:{closed_port()}"}
    adapter = GeminiModel(spec("gemini:gemini-test"), env=env, sleep=lambda s: None)
    frame = adapter.predict(data, context=context(tmp_path, max_retries=1))
    assert set(frame["outcome"]) == {"error"}
    assert json.loads(frame["raw"].iloc[0])["error"] == "connection"
    assert adapter.usage()["calls"] == 10 and adapter.usage()["retries"] == 5


def test_keys_and_base_urls_from_the_environment(fake_api, dataset, tmp_path):
    data, _ = dataset
    with pytest.raises(ModelError) as raised:
        model(fake_api, GEMINI_API_KEY=None).predict(data, context=context(tmp_path))
    assert str(raised.value) == (
        "gemini-test: no API key; set GEMINI_API_KEY or GOOGLE_API_KEY in the environment "
        "(responses already cached are used without one)"
    )
    model(fake_api, GEMINI_API_KEY=None, GOOGLE_API_KEY="google-key").predict(data, context=context(tmp_path))
    assert fake_api.calls[0].headers["x-goog-api-key"] == "google-key"
    other = GeminiModel(spec("gemini:g"), env={"GOOGLE_GEMINI_BASE_URL": "http://example.invalid/"})
    assert other.base_url == "http://example.invalid"
    assert GeminiModel(spec("gemini:g"), env={}).base_url == "https://generativelanguage.googleapis.com"


def test_a_rejected_key_stops_the_run(fake_api, dataset, tmp_path):
    data, _ = dataset
    fake_api.default = lambda image: "401"
    with pytest.raises(ModelError, match=r"^gemini-test: HTTP 401 from the API, the API key was rejected"):
        model(fake_api).predict(data, context=context(tmp_path, concurrency=1))


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("block_none", [["DANGEROUS_CONTENT", "BLOCK_NONE"], ["HARASSMENT", "BLOCK_NONE"]]),
        ("HARM_CATEGORY_CIVIC_INTEGRITY:OFF", [["CIVIC_INTEGRITY", "OFF"]]),
    ],
)
def test_safety_settings_are_part_of_the_key(option, expected):
    settings = GeminiModel(spec(f"gemini:g?safety={option}"), env={}).settings(LABELS)["safety"]
    assert all(pair in settings for pair in expected)
    assert GeminiModel(spec("gemini:g"), env={}).settings(LABELS)["safety"] == []


@pytest.mark.parametrize("option", ["BLOCK_SOME", "HARASSMENT:NEVER", "VIOLENCE:BLOCK_NONE"])
def test_bad_safety_settings_are_rejected(option):
    with pytest.raises(ConfigError, match=rf"option safety must be a threshold \(BLOCK_NONE, .*got '{option}'"):
        GeminiModel(spec(f"gemini:g?safety={option}"), env={})


@pytest.mark.parametrize(
    ("payload", "outcome", "reason"),
    [
        ({"candidates": [{"content": {"parts": [{"text": "neutral"}]}, "finishReason": "STOP"}]}, "neutral", ""),
        ({"candidates": [{"finishReason": "PROHIBITED_CONTENT"}]}, "refused", "finishReason PROHIBITED_CONTENT"),
        ({"promptFeedback": {"blockReason": "OTHER"}}, "refused", "prompt blocked: OTHER"),
        ({"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS"}]}, "unparseable", ""),
        ({"candidates": []}, "unparseable", "response has no candidates"),
        ("not an object", "unparseable", "response is not a JSON object"),
        (
            {"candidates": [{"content": {"parts": [{"text": "fear", "thought": True}, {"text": "anger"}]}}]},
            "anger",
            "",
        ),
    ],
)
def test_reading_stored_responses(payload, outcome, reason):
    reading = read_generate_content(payload, LABELS)
    assert reading.outcome == outcome
    assert reason in reading.reason


# -- answers that cannot be read: gateway errors, odd shapes, echoed keys ---------------------------

CANARY = "canary-7f3a9c1e5b"  # not shaped like any known token: only the configured key can catch it


def stored_payloads(tmp_path) -> list:
    with ResponseCache.in_dir(tmp_path / "cache") as cache:
        keys = [row[0] for row in cache._db.execute("SELECT key FROM responses")]
        return [entry.payload for entry in cache.get_many(keys).values()]


def test_gateway_error_bodies_with_status_200_are_retried_and_never_cached(fake_api, dataset, tmp_path):
    data, digests = dataset
    fake_api.script(digests["s0000"], "html", "html")
    fake_api.script(digests["s0001"], "error200", "answer:happiness")
    adapter = model(fake_api)
    frame = adapter.predict(data, context=context(tmp_path, max_retries=1))
    assert list(frame["outcome"]) == ["error", "happiness", "neutral", "neutral", "neutral"]
    failure = json.loads(frame["raw"].iloc[0])
    assert failure["error"] == "gateway" and failure["attempts"] == 2 and "502 Bad Gateway" in failure["message"]
    assert fake_api.count(digests["s0000"]) == 2 and fake_api.count(digests["s0001"]) == 2
    assert (adapter.usage()["error"], adapter.usage()["unparseable"]) == (1, 0)
    assert len(stored_payloads(tmp_path)) == 4
    fake_api.reset_log()
    again = model(fake_api).predict(data, context=context(tmp_path))
    assert [c.image for c in fake_api.calls] == [digests["s0000"]] and again["outcome"].iloc[0] == "neutral"


def test_bodies_of_an_unexpected_shape_are_unparseable_and_read_back_without_a_call(fake_api, dataset, tmp_path):
    data, digests = dataset
    shapes = ["shape:content", "shape:version", "shape:usage", "shape:parts", "answer:anger"]
    for sample_id, behaviour in zip(digests, shapes, strict=True):
        fake_api.script(digests[sample_id], behaviour)
    adapter = model(fake_api)
    first = adapter.predict(data, context=context(tmp_path))
    expected = ["unparseable", "anger", "anger", "unparseable", "anger"]
    assert list(first["outcome"]) == expected
    assert json.loads(first["raw"].iloc[0])["candidates"][0]["content"] == "anger"  # the raw body is kept
    assert adapter.describe()["model_version"] == MODEL_VERSION  # the object version is not recorded
    assert adapter.usage()["tokens"] == 4 * TOKENS_PER_ANSWER  # usageMetadata "plenty" counts nothing
    fake_api.reset_log()
    # the cache now holds every odd body: reading it back must neither crash nor call
    again = model(fake_api, GEMINI_API_KEY=None).predict(data, context=context(tmp_path))
    assert fake_api.count() == 0 and list(again["outcome"]) == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"candidates": [{"content": "anger"}]}, "candidates[0].content is not an object"),
        ({"candidates": [{"content": {"parts": "anger"}}]}, "candidates[0].content.parts is not a list"),
        ({"candidates": "anger"}, "response has no candidates"),
        ({"promptFeedback": "blocked", "candidates": [{"content": {"parts": [{"text": 3}]}}]}, "empty answer"),
    ],
)
def test_reading_odd_shapes_directly(payload, reason):
    assert read_generate_content(payload, LABELS).reason == reason


def test_an_echoed_key_is_redacted_from_the_error_the_cache_and_the_raw(fake_api, dataset, tmp_path):
    data, digests = dataset
    fake_api.script(digests["s0000"], "echofilter")
    frame = model(fake_api, GEMINI_API_KEY=CANARY).predict(data, context=context(tmp_path))
    assert frame["outcome"].iloc[0] == "refused"
    stored = json.dumps(stored_payloads(tmp_path))
    assert "blocked for key [REDACTED]" in stored and CANARY not in stored
    files = sorted(p for p in (tmp_path / "cache").iterdir() if p.is_file())
    assert files and all(CANARY.encode() not in path.read_bytes() for path in files)
    assert not frame["raw"].str.contains(CANARY).any()
    fake_api.default = lambda image: "echo401"
    with pytest.raises(ModelError) as raised:
        model(fake_api, GEMINI_API_KEY=CANARY).predict(data, context=context(tmp_path / "other"))
    assert CANARY not in str(raised.value) and "Incorrect API key provided: [REDACTED]." in str(raised.value)


def test_a_gateway_page_echoing_the_key_is_redacted_before_it_is_cut_short(fake_api, dataset, tmp_path):
    data, digests = dataset
    fake_api.script(digests["s0000"], "htmlecho")
    frame = model(fake_api, GEMINI_API_KEY=CANARY).predict(data, context=context(tmp_path, max_retries=0))
    message = json.loads(frame["raw"].iloc[0])["message"]
    assert frame["outcome"].iloc[0] == "error" and "[REDACTE" in message and CANARY[:6] not in message
