"""PaliGemma adapter on tiny models built here and loaded back through ``from_pretrained``, offline.

Each model is a real ``PaliGemmaForConditionalGeneration`` (a 1-layer SigLIP vision tower, a 1-layer
Gemma) with a real ``PaliGemmaProcessor`` around a word-level tokenizer that knows the prompt's words
and the label words. One has random weights (its answers are image-dependent garbage); one is wired by hand so that
greedy decoding answers "happy" and stops, which exercises the label path end to end.
"""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from fer_fairness.datasets.synthetic import SyntheticSpec, load_synthetic  # noqa: E402
from fer_fairness.errors import ConfigError, ModelError  # noqa: E402
from fer_fairness.labels import BASIC_SEVEN, NON_ANSWERS  # noqa: E402
from fer_fairness.models import paligemma  # noqa: E402
from fer_fairness.models._base import OUTCOME_COLUMNS, PredictContext  # noqa: E402
from fer_fairness.models.paligemma import PROMPT, PaliGemma, render_prompt  # noqa: E402
from fer_fairness.specs import Registry  # noqa: E402

REGISTRY = Registry(
    what="model",
    entries={"paligemma": "fer_fairness.models.paligemma:PaliGemma"},
    usage={"paligemma": "paligemma:REPO_OR_PATH"},
)
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]
WORDS = [
    *"answer en What emotion does this face show ? Choose one of : , .".split(),
    *BASIC_SEVEN,
    *"angry happy sad surprised afraid disgusted".split(),
]


def build(text: str) -> PaliGemma:
    spec = REGISTRY.parse(text)
    return REGISTRY.factory(spec.kind)(spec)


def context(path) -> PredictContext:
    return PredictContext(seed=0, cache_dir=path, progress=False)


def save_tiny_paligemma(folder, *, answer: str | None = None) -> None:
    """A tiny PaliGemma and its processor, saved as a transformers folder.

    With ``answer``, every layer's output projections are zeroed, so the last hidden state is the
    current token's embedding; embeddings and an untied head then make greedy decoding say ``answer``
    after any prompt token, and end of sequence after ``answer``.
    """
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        PreTrainedTokenizerFast,
        SiglipImageProcessor,
        SiglipVisionConfig,
    )

    vocabulary = {word: index for index, word in enumerate(SPECIALS + WORDS)}
    word_level = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocabulary, unk_token="<unk>"))
    word_level.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=word_level, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    images = SiglipImageProcessor(size={"height": 32, "width": 32})
    images.image_seq_length = (32 // 8) ** 2
    processor = PaliGemmaProcessor(image_processor=images, tokenizer=tokenizer)  # adds <image> and loc/seg tokens
    text = GemmaConfig(
        vocab_size=len(processor.tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        pad_token_id=vocabulary["<pad>"],
        bos_token_id=vocabulary["<bos>"],
        eos_token_id=vocabulary["<eos>"],
        tie_word_embeddings=False,
        initializer_range=0.5,
    )
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
    )
    config = PaliGemmaConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_id=processor.image_token_id,
        projection_dim=32,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = PaliGemmaForConditionalGeneration(config).eval()
    if answer is not None:
        wire_to_answer(model, vocabulary[answer], vocabulary["<eos>"])
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def wire_to_answer(model, answer_id: int, eos_id: int) -> None:
    language = model.model.language_model
    with torch.no_grad():
        for layer in language.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embeddings = language.embed_tokens.weight
        embeddings.zero_()
        embeddings[:, 0] = 1.0  # "any token": next is the answer
        embeddings[answer_id, 0], embeddings[answer_id, 1] = 0.0, 1.0  # "the answer": next is end of sequence
        language.norm.weight.fill_(-1.0)  # Gemma scales by (1 + weight): keep dimensions 0 and 1 only
        language.norm.weight[:2] = 0.0
        head = model.lm_head.weight
        assert head.data_ptr() != embeddings.data_ptr()
        head.zero_()
        head[answer_id, 0] = 10.0
        head[eos_id, 1] = 10.0


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("paligemma")
    save_tiny_paligemma(root / "random")
    save_tiny_paligemma(root / "happy", answer="happy")
    return {"random": root / "random", "happy": root / "happy"}


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """14 tiny synthetic faces: 2 subjects x 7 expressions."""
    spec = SyntheticSpec(subjects=(("light", "female", 1), ("dark", "male", 1)), variants=1, image_size=32)
    return load_synthetic(cache_dir=tmp_path_factory.mktemp("faces"), seed=0, progress=False, spec=spec)


@pytest.fixture(scope="module")
def random_model(folders):
    return build(f"paligemma:{folders['random']}?batch_size=4")


def test_loads_through_from_pretrained_with_local_files_only(folders, monkeypatch):
    from transformers import PaliGemmaForConditionalGeneration

    seen = []
    original = PaliGemmaForConditionalGeneration.from_pretrained.__func__

    def spy(cls, source, *args, **kwargs):
        seen.append((str(source), kwargs.get("local_files_only")))
        return original(cls, source, *args, **kwargs)

    monkeypatch.setattr(PaliGemmaForConditionalGeneration, "from_pretrained", classmethod(spy))
    model = build(f"paligemma:{folders['random']}")
    assert seen == [(str(folders["random"].resolve()), True)]
    assert type(model.processor).__name__ == "PaliGemmaProcessor"
    assert not model.model.training
    assert model.identity.startswith("sha256:")


def test_the_prompt_reaches_the_model_word_for_word(random_model):
    prompt = render_prompt(BASIC_SEVEN)
    assert prompt == (
        "answer en What emotion does this face show? Choose one of: "
        "anger, disgust, fear, happiness, neutral, sadness, surprise."
    )
    ids = random_model.processor.tokenizer(prompt)["input_ids"]
    assert random_model.processor.tokenizer.unk_token_id not in ids
    assert random_model.processor.tokenizer.decode(ids) == prompt.replace("?", " ?").replace(":", " :").replace(
        ",", " ,"
    ).replace(".", " .")


def test_random_weights_give_labels_or_unparseable_deterministically(random_model, folders, faces, tmp_path):
    outcomes = random_model.predict(faces, context=context(tmp_path / "a"))
    assert list(outcomes.columns) == list(OUTCOME_COLUMNS)
    assert list(outcomes["sample_id"]) == list(faces.samples["sample_id"])
    assert set(outcomes["outcome"]) <= set(faces.emotions) | {"unparseable"}
    assert outcomes["raw"].map(type).eq(str).all()
    assert outcomes["raw"].nunique() > len(faces.samples) // 2  # answers depend on the image
    again = build(f"paligemma:{folders['random']}?batch_size=3").predict(faces, context=context(tmp_path / "b"))
    pd.testing.assert_frame_equal(outcomes, again)


def test_a_model_that_says_happy_is_read_as_happiness(folders, faces, tmp_path):
    model = build(f"paligemma:{folders['happy']}")
    outcomes = model.predict(faces, context=context(tmp_path))
    assert (outcomes["raw"] == "happy").all()
    assert (outcomes["outcome"] == "happiness").all()
    assert model.usage() == {"calls": len(faces.samples), "cache_hits": 0, "unparseable": 0, "error": 0}


def test_answers_are_cached_raw_and_reparsed_without_generating(folders, faces, tmp_path, monkeypatch):
    first = build(f"paligemma:{folders['happy']}")
    expected = first.predict(faces, context=context(tmp_path))
    stored = list((tmp_path / "paligemma").rglob("*.json"))
    assert len(stored) == len(faces.samples)
    assert {json.loads(p.read_text())["raw"] for p in stored} == {"happy"}

    second = build(f"paligemma:{folders['happy']}")
    monkeypatch.setattr(second.model, "generate", pytest.fail)
    pd.testing.assert_frame_equal(second.predict(faces, context=context(tmp_path)), expected)
    assert second.usage()["cache_hits"] == len(faces.samples) and second.usage()["calls"] == 0

    # a parser change re-reads the stored answers: without the synonym, "happy" is no longer a label
    monkeypatch.setattr(paligemma, "WORD_TO_EMOTION", {})
    reparsed = second.predict(faces, context=context(tmp_path))
    assert (reparsed["outcome"] == "unparseable").all() and (reparsed["raw"] == "happy").all()
    assert second.usage()["calls"] == 0 and second.usage()["unparseable"] == len(faces.samples)


def test_a_failing_sample_is_an_error_outcome_and_is_not_cached(folders, faces, tmp_path, monkeypatch):
    model = build(f"paligemma:{folders['happy']}?batch_size=4")
    original = model.generate
    calls = []

    def flaky(images, prompt):
        calls.append(len(images))
        if len(calls) == 2 or len(calls) == 4:  # the second batch fails, then its second sample alone
            raise RuntimeError("CUDA out of memory\nTried to allocate")
        return original(images, prompt)

    monkeypatch.setattr(model, "generate", flaky)
    outcomes = model.predict(faces, context=context(tmp_path))
    assert calls[:6] == [4, 4, 1, 1, 1, 1]
    failed = outcomes["outcome"] == "error"
    assert failed.sum() == 1 and outcomes.index[failed][0] == 5
    assert outcomes.loc[5, "raw"] == "RuntimeError: CUDA out of memory Tried to allocate"
    assert set(outcomes.loc[~failed, "outcome"]) == {"happiness"}
    assert model.usage()["error"] == 1
    assert len(list((tmp_path / "paligemma").rglob("*.json"))) == len(faces.samples) - 1


def test_a_model_that_never_answers_is_a_model_error(folders, faces, tmp_path, monkeypatch):
    model = build(f"paligemma:{folders['happy']}")
    monkeypatch.setattr(model, "generate", lambda images, prompt: 1 / 0)
    with pytest.raises(ModelError, match=r"generation failed for every sample; the first: ZeroDivisionError"):
        model.predict(faces, context=context(tmp_path))


def test_describe_and_prompts(random_model, folders):
    facts = random_model.describe()
    assert facts["kind"] == "paligemma" and facts["source"] == str(folders["random"].resolve())
    assert facts["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert facts["dtype"] == ("bfloat16" if torch.cuda.is_available() else "float32")
    assert facts["prompt"] == PROMPT and "greedy" in facts["decoding"]
    assert facts["transformers"] == transformers.__version__
    assert random_model.prompts()["prompt"] == PROMPT
    assert "angry->anger" in random_model.prompts()["parser"]
    assert random_model.name == "paligemma:random"


def one_line_error(error_type, text):
    with pytest.raises(error_type) as caught:
        build(text)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_weights_are_one_line_saying_what_and_where(tmp_path, monkeypatch):
    message = one_line_error(ModelError, f"paligemma:{tmp_path / 'nowhere'}")
    assert message.startswith(f"paligemma: no folder at {tmp_path / 'nowhere'}; expected a transformers model")
    (tmp_path / "empty").mkdir()
    message = one_line_error(ModelError, f"paligemma:{tmp_path / 'empty'}")
    assert message.startswith(f"paligemma: no config.json in the folder at {tmp_path / 'empty'}")

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = one_line_error(ModelError, "paligemma:google/paligemma-3b-mix-224")
    assert message.startswith(
        f"paligemma: cannot load google/paligemma-3b-mix-224: looked in {tmp_path / 'hub'} with the hub offline"
    )


def test_a_folder_without_weights_is_one_line(folders, tmp_path):
    for file in folders["random"].iterdir():
        if file.suffix != ".safetensors":
            shutil.copy(file, tmp_path / file.name)
    message = one_line_error(ModelError, f"paligemma:{tmp_path}")
    assert message.startswith(f"paligemma: cannot load the model folder {tmp_path}: ")
    assert "model.safetensors" in message


def test_a_folder_holding_another_model_is_refused(tmp_path):
    from transformers import GemmaConfig

    GemmaConfig(vocab_size=8, hidden_size=8, intermediate_size=8, num_hidden_layers=1).save_pretrained(tmp_path)
    message = one_line_error(ModelError, f"paligemma:{tmp_path}")
    assert message == f"paligemma: {tmp_path} holds a 'gemma' model, not PaliGemma"


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        ("", r"model 'paligemma:' needs a target after the colon: paligemma:REPO_OR_PATH"),
        ("x/y?temperature=1", r"unknown option\(s\) temperature \(allowed: revision, device, dtype"),
        ("x/y?max_new_tokens=0", r"option max_new_tokens must be an integer >= 1; got '0'"),
        ("x/y?dtype=int8", r"option dtype must be one of float32, bfloat16, float16; got 'int8'"),
        ("/models/p?revision=main", r"option revision applies to hub repos, not to a local folder"),
    ],
)
def test_bad_specs_are_usage_errors(suffix, message):
    with pytest.raises(ConfigError, match=message):
        build(f"paligemma:{suffix}")


def test_non_answers_are_known_kinds():
    assert {"unparseable", "error"} <= set(NON_ANSWERS)
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
