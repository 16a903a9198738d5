"""The openai adapter, driving the real ``openai`` client against a local fake server."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json

import pytest

from fer_fairness.errors import BudgetExhausted, ConfigError, ModelError
from fer_fairness.models import MODELS, parsing
from fer_fairness.models.openai_chat import OpenAIChatModel
from fer_fairness.models.prompts import chat_prompt
from fer_fairness.models.response_cache import ResponseCache

from .fake_api import (
    FINGERPRINT,
    TOKENS_PER_ANSWER,
    FakeAPI,
    api_context,
    chat_model,
    closed_port,
    parse_spec,
    tiny_dataset,
)

pytest.importorskip("openai")


@pytest.fixture
def fake_api():
    with FakeAPI() as api:
        yield api


LABELS = ("anger", "happiness", "neutral")


spec = parse_spec


def model(api, text: str = "openai:gpt-test", sleeps: list | None = None, **env) -> OpenAIChatModel:
    return chat_model(
        OpenAIChatModel,
        text,
        env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"{api.url}/v1", **env},
        sleeps=sleeps,
    )


context = api_context


@pytest.fixture
def dataset(tmp_path):
    return tiny_dataset(tmp_path / "images", [("anger", "a"), ("happiness", "a"), ("neutral", "b"), ("anger", "b")])


def outcomes(frame) -> dict[str, str]:
    return dict(zip(frame["sample_id"], frame["outcome"], strict=True))


def test_every_behaviour_ends_as_a_label_or_a_non_answer(fake_api, dataset, tmp_path):
    data, digests = dataset
    behaviours = {"s0000": "answer:anger", "s0001": "refuse", "s0002": "filter", "s0003": "malformed"}
    for sample_id, behaviour in behaviours.items():
        fake_api.script(digests[sample_id], behaviour)
    adapter = model(fake_api)
    frame = adapter.predict(data, context=context(tmp_path))
    assert list(frame.columns) == ["sample_id", "outcome", "raw"]
    assert outcomes(frame) == {"s0000": "anger", "s0001": "refused", "s0002": "refused", "s0003": "unparseable"}
    raw = dict(zip(frame["sample_id"], frame["raw"], strict=True))
    assert json.loads(raw["s0003"])["choices"][0]["message"]["content"] == '{"emotion": "ang'  # kept for audit
    assert json.loads(raw["s0001"])["choices"][0]["message"]["refusal"].startswith("I'm sorry")
    assert adapter.usage() == {
        "calls": 4,
        "cache_hits": 0,
        "retries": 0,
        "tokens": 4 * TOKENS_PER_ANSWER,
        "answered": 1,
        "refused": 2,
        "unparseable": 1,
        "error": 0,
    }
    assert adapter.describe()["system_fingerprint"] == FINGERPRINT
    # refusals, filtered and malformed answers are final: a re-run asks nothing
    again = model(fake_api).predict(data, context=context(tmp_path))
    assert fake_api.count() == 4 and list(again["raw"]) == list(frame["raw"])


def test_the_registry_entry_builds_the_adapter():
    adapter = MODELS.factory("openai")(spec("openai:gpt-4o-2024-08-06?name=gpt4o&seed=3"))
    assert isinstance(adapter, OpenAIChatModel) and adapter.name == "gpt4o" and adapter.seed == 3


def test_the_request_is_deterministic_structured_and_carries_the_image(fake_api, dataset, tmp_path):
    data, digests = dataset
    model(fake_api, "openai:gpt-test?seed=7&max_tokens=5&detail=low").predict(data, context=context(tmp_path))
    call = next(c for c in fake_api.calls if c.image == digests["s0000"])
    body = call.body
    assert call.path == "/v1/chat/completions" and call.headers["authorization"] == "Bearer sk-test"
    assert body["model"] == "gpt-test" and body["temperature"] == 0 and body["seed"] == 7 and body["max_tokens"] == 5
    text, image = body["messages"][0]["content"]
    assert text == {"type": "text", "text": chat_prompt(LABELS)}
    assert image["image_url"]["detail"] == "low"
    prefix, encoded = image["image_url"]["url"].split(",", 1)
    assert prefix == "data:image/png;base64"
    assert hashlib.sha256(base64.b64decode(encoded)).hexdigest() == digests["s0000"]
    schema = body["response_format"]["json_schema"]
    assert body["response_format"]["type"] == "json_schema" and schema["strict"] is True
    assert schema["schema"]["properties"]["emotion"]["enum"] == list(LABELS)
    assert call.headers["x-stainless-retry-count"] == "0"


def test_free_text_answers_are_read_strictly(fake_api, dataset, tmp_path):
    data, digests = dataset
    texts = ["The person looks furious.", "not happy", "Happy or neutral?", "I'm sorry, I can't help with that."]
    for sample_id, text in zip(digests, texts, strict=True):
        fake_api.script(digests[sample_id], f"text:{text}")
    frame = model(fake_api, "openai:gpt-test?structured=0").predict(data, context=context(tmp_path))
    assert "response_format" not in fake_api.calls[0].body
    assert list(frame["outcome"]) == ["anger", "unparseable", "unparseable", "refused"]


def test_429_and_500_are_retried_honouring_retry_after(fake_api, dataset, tmp_path):
    data, digests = dataset
    fake_api.script(digests["s0000"], "429:3", "answer:anger")
    fake_api.script(digests["s0001"], "500", "500", "answer:happiness")
    sleeps: list[float] = []
    adapter = model(fake_api, sleeps=sleeps)
    frame = adapter.predict(data, context=context(tmp_path, concurrency=1))
    assert list(frame["outcome"]) == ["anger", "happiness", "neutral", "neutral"]
    assert fake_api.count(digests["s0000"]) == 2 and fake_api.count(digests["s0001"]) == 3 and fake_api.count() == 7
    usage = adapter.usage()
    assert usage["calls"] == 7 and usage["retries"] == 3 and usage["tokens"] == 4 * TOKENS_PER_ANSWER
    assert 3.0 <= sleeps[0] <= 3.5  # Retry-After: 3, plus at most base_s of jitter
    assert 0 <= sleeps[1] <= 0.5 and 0 <= sleeps[2] <= 1.0


def test_failures_after_retries_are_errors_and_never_cached(fake_api, dataset, tmp_path):
    data, digests = dataset
    fake_api.script(digests["s0000"], "500", "500", "500")
    fake_api.script(digests["s0001"], "hang", "hang")
    adapter = model(fake_api)
    frame = adapter.predict(data, context=context(tmp_path, timeout_s=0.3, max_retries=1))
    assert outcomes(frame) == {"s0000": "error", "s0001": "error", "s0002": "neutral", "s0003": "neutral"}
    raw = dict(zip(frame["sample_id"], frame["raw"], strict=True))
    assert json.loads(raw["s0000"]) == {"error": "server", "message": "HTTP 500: internal error", "attempts": 2}
    assert json.loads(raw["s0001"])["error"] == "timeout"
    assert fake_api.count(digests["s0000"]) == 2 and fake_api.count(digests["s0001"]) == 2
    assert adapter.usage()["error"] == 2 and adapter.usage()["retries"] == 2
    # a re-run asks again for the failures only (the 500 left in the script, then the default answer)
    fake_api.reset_log()
    again = model(fake_api).predict(data, context=context(tmp_path, timeout_s=0.3, max_retries=1))
    assert {c.image for c in fake_api.calls} == {digests["s0000"], digests["s0001"]}
    assert outcomes(again)["s0001"] == "neutral"


def test_a_rerun_is_served_from_the_cache(fake_api, dataset, tmp_path):
    data, _ = dataset
    model(fake_api).predict(data, context=context(tmp_path))
    assert fake_api.count() == 4
    fake_api.reset_log()
    adapter = model(fake_api, OPENAI_API_KEY=None)  # no key needed when nothing is missing
    frame = adapter.predict(data, context=context(tmp_path))
    assert fake_api.count() == 0
    assert list(frame["outcome"]) == ["neutral"] * 4
    assert adapter.usage()["cache_hits"] == 4 and adapter.usage()["calls"] == 0 and adapter.usage()["tokens"] == 0
    assert adapter.describe()["system_fingerprint"] == FINGERPRINT  # recorded from the stored responses


def test_a_changed_setting_or_prompt_is_a_new_question(fake_api, dataset, tmp_path):
    data, _ = dataset
    model(fake_api).predict(data, context=context(tmp_path))
    model(fake_api, "openai:gpt-test?seed=1").predict(data, context=context(tmp_path))
    model(fake_api, "openai:gpt-test?name=other").predict(data, context=context(tmp_path))  # a name is not a setting
    assert fake_api.count() == 8
    wider = dataclasses.replace(data, emotions=(*LABELS, "sadness"))  # another label list, another prompt
    model(fake_api).predict(wider, context=context(tmp_path))
    assert fake_api.count() == 12
    assert "sadness" in fake_api.calls[-1].body["messages"][0]["content"][0]["text"]


def test_identical_images_are_asked_once(fake_api, tmp_path):
    data, digests = tiny_dataset(tmp_path / "images", [("anger", "a"), ("anger", "b")])
    (data.root / "s0001.png").write_bytes((data.root / "s0000.png").read_bytes())
    frame = model(fake_api).predict(data, context=context(tmp_path))
    assert fake_api.count() == 1 and list(frame["outcome"]) == ["neutral", "neutral"]


def test_a_parser_change_rereads_stored_responses_without_calls(fake_api, dataset, tmp_path, monkeypatch):
    data, digests = dataset
    for sample_id in digests:
        fake_api.script(digests[sample_id], "text:The person looks livid.")
    first = model(fake_api, "openai:gpt-test?structured=0").predict(data, context=context(tmp_path))
    assert set(first["outcome"]) == {"unparseable"}
    fake_api.reset_log()
    monkeypatch.setattr(parsing, "WORD_TO_EMOTION", {**parsing.WORD_TO_EMOTION, "livid": "anger"})
    second = model(fake_api, "openai:gpt-test?structured=0").predict(data, context=context(tmp_path))
    assert fake_api.count() == 0
    assert set(second["outcome"]) == {"anger"}
    assert list(second["raw"]) == list(first["raw"])


def test_the_budget_stops_cleanly_and_a_rerun_completes(fake_api, tmp_path):
    data, _ = tiny_dataset(tmp_path / "images", [("anger", "a")] * 10)
    with pytest.raises(BudgetExhausted) as raised:
        model(fake_api).predict(data, context=context(tmp_path, concurrency=1, budget_tokens=3 * TOKENS_PER_ANSWER))
    assert str(raised.value).startswith("gpt-test: token budget of 300 reached (300 tokens used) during gpt-test on ")
    assert "3 of 10 calls done and cached, 7 left" in str(raised.value)
    with ResponseCache.in_dir(tmp_path / "cache") as cache:
        assert cache.count(model="gpt-test") == 3
    fake_api.reset_log()
    frame = model(fake_api).predict(data, context=context(tmp_path, concurrency=1))
    assert fake_api.count() == 7 and len(frame) == 10 and set(frame["outcome"]) == {"neutral"}


def test_an_unreachable_server_gives_errors_after_retries(dataset, tmp_path):
    data, _ = dataset
    sleeps: list[float] = []
    adapter = OpenAIChatModel(
        spec("openai:gpt-test"),
        env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port()}/v1"},
        sleep=sleeps.append,
    )
    frame = adapter.predict(data, context=context(tmp_path, max_retries=1))
    assert set(frame["outcome"]) == {"error"}
    assert json.loads(frame["raw"].iloc[0])["error"] == "connection"
    assert adapter.usage()["calls"] == 8 and len(sleeps) == 4


def test_a_missing_key_is_one_clear_line(fake_api, dataset, tmp_path):
    data, _ = dataset
    with pytest.raises(ModelError) as raised:
        model(fake_api, OPENAI_API_KEY=None).predict(data, context=context(tmp_path))
    assert str(raised.value) == (
        "gpt-test: no API key; set OPENAI_API_KEY in the environment (responses already cached are used without one)"
    )
    assert fake_api.count() == 0


def test_a_rejected_key_stops_the_run(fake_api, dataset, tmp_path):
    data, _ = dataset
    fake_api.default = lambda image: "401"
    with pytest.raises(ModelError, match=r"^gpt-test: HTTP 401 from the API, the API key was rejected"):
        model(fake_api).predict(data, context=context(tmp_path, concurrency=1))
    assert fake_api.count() == 1


def test_a_content_filter_rejection_is_a_cached_refusal_and_a_bad_request_an_error(fake_api, dataset, tmp_path):
    data, digests = dataset
    fake_api.script(digests["s0000"], "400:content_filter")
    fake_api.script(digests["s0001"], "400:invalid_image")
    frame = model(fake_api).predict(data, context=context(tmp_path))
    assert list(frame["outcome"]) == ["refused", "error", "neutral", "neutral"]
    assert fake_api.count() == 4  # a 400 is not retried
    fake_api.reset_log()
    model(fake_api).predict(data, context=context(tmp_path))
    assert [c.image for c in fake_api.calls] == [digests["s0001"]]  # the refusal was cached, the error not


def test_base_url_defaults_and_options_are_checked(fake_api):
    adapter = OpenAIChatModel(spec("openai:gpt-4o-2024-08-06"), env={})
    assert adapter.base_url == "https://api.openai.com/v1" and adapter.name == "gpt-4o-2024-08-06"
    with pytest.raises(ConfigError, match=r"option detail must be one of auto, low, high; got 'huge'"):
        OpenAIChatModel(spec("openai:gpt?detail=huge"), env={})
    with pytest.raises(ConfigError, match=r"option seed must be an integer >= 0; got 'x'"):
        OpenAIChatModel(spec("openai:gpt?seed=x"), env={})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) temperature"):
        OpenAIChatModel(spec("openai:gpt?temperature=1"), env={})
    with pytest.raises(ConfigError, match=r"model 'openai:' needs a target after the colon: openai:MODEL"):
        OpenAIChatModel(spec("openai:"), env={})


def test_prompts_are_reported(fake_api, dataset, tmp_path):
    data, _ = dataset
    adapter = model(fake_api)
    adapter.predict(data, context=context(tmp_path))
    prompts = adapter.prompts()
    assert prompts["chat[tiny]"] == chat_prompt(LABELS) and "{labels}" in prompts["chat"]


# -- answers that cannot be read: gateway errors, odd shapes, echoed keys ---------------------------

CANARY = "canary-7f3a9c1e5b"  # not shaped like any known token: only the configured key can catch it


def cache_bytes(tmp_path) -> bytes:
    """Every byte of the cache directory (the SQLite file and any WAL or journal beside it)."""
    return b"".join(path.read_bytes() for path in sorted((tmp_path / "cache").iterdir()) if path.is_file())


def test_gateway_error_bodies_with_status_200_are_retried_and_never_cached(fake_api, dataset, tmp_path):
    data, digests = dataset
    fake_api.script(digests["s0000"], "html", "html")
    fake_api.script(digests["s0001"], "error200", "answer:happiness")
    adapter = model(fake_api)
    frame = adapter.predict(data, context=context(tmp_path, max_retries=1))
    assert outcomes(frame) == {"s0000": "error", "s0001": "happiness", "s0002": "neutral", "s0003": "neutral"}
    failure = json.loads(frame["raw"].iloc[0])
    assert failure["error"] == "gateway" and failure["attempts"] == 2 and "502 Bad Gateway" in failure["message"]
    assert fake_api.count(digests["s0000"]) == 2 and fake_api.count(digests["s0001"]) == 2
    assert adapter.usage()["error"] == 1 and adapter.usage()["unparseable"] == 0 and adapter.usage()["retries"] == 2
    with ResponseCache.in_dir(tmp_path / "cache") as cache:
        assert cache.count() == 3
    fake_api.reset_log()
    again = model(fake_api).predict(data, context=context(tmp_path))
    assert [c.image for c in fake_api.calls] == [digests["s0000"]] and outcomes(again)["s0000"] == "neutral"


def test_a_gateway_error_cached_by_an_older_version_is_asked_again(fake_api, dataset, tmp_path, monkeypatch):
    data, digests = dataset
    fake_api.script(digests["s0000"], "error200")
    with monkeypatch.context() as old:  # the version that took the error body for an answer
        old.setattr(OpenAIChatModel, "transport_failure", lambda self, payload: None)
        first = model(fake_api).predict(data, context=context(tmp_path, max_retries=0))
    assert outcomes(first)["s0000"] == "unparseable"
    fake_api.reset_log()
    adapter = model(fake_api)
    again = adapter.predict(data, context=context(tmp_path))
    assert [c.image for c in fake_api.calls] == [digests["s0000"]] and outcomes(again)["s0000"] == "neutral"
    assert adapter.usage()["cache_hits"] == 3
    with ResponseCache.in_dir(tmp_path / "cache") as cache:
        payloads = [entry.payload for entry in cache.get_many(_keys(cache)).values()]
    assert len(payloads) == 4 and all("error" not in payload for payload in payloads)


def _keys(cache) -> list[str]:
    return [row[0] for row in cache._db.execute("SELECT key FROM responses")]


def test_bodies_of_an_unexpected_shape_are_unparseable_and_read_back_without_a_call(fake_api, dataset, tmp_path):
    data, digests = dataset
    shapes = {"s0000": "shape:message", "s0001": "shape:fingerprint", "s0002": "shape:content", "s0003": "shape:usage"}
    for sample_id, behaviour in shapes.items():
        fake_api.script(digests[sample_id], behaviour)
    adapter = model(fake_api)
    first = adapter.predict(data, context=context(tmp_path))
    expected = {"s0000": "unparseable", "s0001": "anger", "s0002": "unparseable", "s0003": "anger"}
    assert outcomes(first) == expected
    assert json.loads(first["raw"].iloc[0])["choices"][0]["message"] == "anger"  # the raw body is kept
    assert adapter.describe()["system_fingerprint"] == FINGERPRINT  # the object fingerprint is not a version
    assert adapter.usage()["tokens"] == 3 * TOKENS_PER_ANSWER  # usage "plenty" counts nothing
    fake_api.reset_log()
    # the cache now holds every odd body: reading it back must neither crash nor call
    again = model(fake_api, OPENAI_API_KEY=None).predict(data, context=context(tmp_path))
    assert fake_api.count() == 0 and outcomes(again) == expected and list(again["raw"]) == list(first["raw"])


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"choices": [{"message": "anger"}]}, "choices[0].message is not an object"),
        ({"choices": "anger"}, "response has no choices"),
        ({"choices": [{"message": {"content": ["anger"]}}]}, "no text content"),
        ({"choices": [{"message": {"content": "anger"}, "finish_reason": ["x"]}]}, "free text"),
    ],
)
def test_reading_odd_shapes_directly(payload, reason):
    from fer_fairness.models.openai_chat import read_completion

    assert read_completion(payload, LABELS).reason == reason


def test_an_echoed_key_is_redacted_from_the_error_the_cache_and_the_raw(fake_api, dataset, tmp_path):
    data, digests = dataset
    fake_api.script(digests["s0000"], "echofilter")
    frame = model(fake_api, OPENAI_API_KEY=CANARY).predict(data, context=context(tmp_path))
    assert outcomes(frame)["s0000"] == "refused"
    with ResponseCache.in_dir(tmp_path / "cache") as cache:
        stored = json.dumps([entry.payload for entry in cache.get_many(_keys(cache)).values()])
    assert "Bearer [REDACTED]" in stored and CANARY not in stored
    assert CANARY.encode() not in cache_bytes(tmp_path)
    assert not frame["raw"].str.contains(CANARY).any()
    fake_api.default = lambda image: "echo401"
    with pytest.raises(ModelError) as raised:
        model(fake_api, OPENAI_API_KEY=CANARY).predict(data, context=context(tmp_path / "other"))
    assert str(raised.value) == (
        "gpt-test: HTTP 401 from the API, the API key was rejected: "
        "Incorrect API key provided: [REDACTED]. Find your key at the console."
    )


def test_token_shaped_strings_are_redacted_without_knowing_them():
    from fer_fairness.models._chat import redact

    text = "auth: Bearer abc.DEF-123_xyz, key sk-proj-0123456789abcdefABCD, AIza" + "x" * 35 + " ok"
    assert redact(text) == "auth: Bearer [REDACTED], key [REDACTED], [REDACTED] ok"
    assert redact("my key is hunter22-long", ["hunter22-long"]) == "my key is [REDACTED]"
    assert redact("the bearer of bad news") == "the bearer of bad news"  # a word, not a token


def test_a_gateway_page_echoing_the_key_is_redacted_before_it_is_cut_short(fake_api, dataset, tmp_path):
    data, digests = dataset
    fake_api.script(digests["s0000"], "htmlecho")
    frame = model(fake_api, OPENAI_API_KEY=CANARY).predict(data, context=context(tmp_path, max_retries=0))
    message = json.loads(frame["raw"].iloc[0])["message"]
    assert frame["outcome"].iloc[0] == "error" and "[REDACTE" in message and CANARY[:6] not in message


def test_a_body_with_nan_is_a_transport_failure_not_a_crash(fake_api, dataset, tmp_path):
    data, digests = dataset
    fake_api.script(digests["s0000"], "shape:nan")
    frame = model(fake_api).predict(data, context=context(tmp_path, max_retries=0))
    assert outcomes(frame)["s0000"] == "error" and json.loads(frame["raw"].iloc[0])["error"] == "gateway"
