"""hf-classifier on a tiny ViT built here from a small config and saved to a folder, offline.

The oracle is the same model object called directly on the processor's pixel values, its softmax
and argmax, and a label table written out by hand; the adapter must agree with it to 1e-5.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from fer_fairness.datasets.synthetic import SyntheticSpec, load_synthetic  # noqa: E402
from fer_fairness.errors import ConfigError, ModelError  # noqa: E402
from fer_fairness.models import MODELS  # noqa: E402
from fer_fairness.models._base import OUTCOME_COLUMNS, PredictContext  # noqa: E402

# The tiny model's label names as a FER checkpoint might spell them, and what each means (by hand).
NAMES = ("happy", "Angry", "sad", "surprised", "fearful", "disgusted", "neutral")
MEANS = {
    "happy": "happiness",
    "Angry": "anger",
    "sad": "sadness",
    "surprised": "surprise",
    "fearful": "fear",
    "disgusted": "disgust",
    "neutral": "neutral",
    "poker_face": "neutral",
}


def build(text: str):
    return MODELS.build(MODELS.parse(text))


def context(path) -> PredictContext:
    return PredictContext(seed=0, cache_dir=path, progress=False)


def save_vit(folder, names, *, seed: int = 0):
    """A 1-layer ViT classifier over 32x32 images and its image processor, saved as a transformers folder."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        initializer_range=0.5,  # logits far apart, so argmax is not decided by rounding
    )
    torch.manual_seed(seed)
    model = ViTForImageClassification(config).eval()
    processor = ViTImageProcessor(size={"height": 32, "width": 32})
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model, processor


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-classifier")
    model, processor = save_vit(root / "vit", NAMES)
    save_vit(root / "poker", (*NAMES[:6], "poker_face"))  # same weights, one label outside the alias table
    return {"model": model, "processor": processor, "folder": root / "vit", "poker": root / "poker"}


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """140 tiny synthetic faces: 20 subjects (5 per skin tone x gender) x 7 expressions."""
    groups = tuple((tone, gender, 5) for tone in ("light", "dark") for gender in ("female", "male"))
    spec = SyntheticSpec(subjects=groups, variants=1, image_size=32)
    return load_synthetic(cache_dir=tmp_path_factory.mktemp("faces"), seed=0, progress=False, spec=spec)


def oracle(vit, dataset, names=NAMES) -> tuple[list[str], np.ndarray]:
    """The tiny model called directly: outcomes (by the hand-written table) and softmax scores."""
    images = []
    for path in dataset.samples["path"]:
        with Image.open(dataset.root / path) as image:
            images.append(image.convert("RGB"))
    pixels = vit["processor"](images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        scores = torch.softmax(vit["model"](pixel_values=pixels).logits, dim=-1).numpy()
    return [MEANS[names[i]] for i in scores.argmax(axis=1)], scores


def test_labels_and_scores_equal_the_model_called_directly(vit, faces, tmp_path):
    model = build(f"hf-classifier:{vit['folder']}?batch_size=16")
    outcomes = model.predict(faces, context=context(tmp_path))
    expected, scores = oracle(vit, faces)
    assert list(outcomes.columns[:3]) == list(OUTCOME_COLUMNS)
    assert list(outcomes["sample_id"]) == list(faces.samples["sample_id"])
    assert list(outcomes["outcome"]) == expected
    assert len(set(expected)) >= 3  # the tiny model's answers depend on the image
    for column, name in enumerate(NAMES):
        np.testing.assert_allclose(outcomes[f"score_{MEANS[name]}"], scores[:, column], atol=1e-5)
    best = scores.argmax(axis=1)
    assert [raw.split(":")[0] for raw in outcomes["raw"]] == [NAMES[i] for i in best]
    assert model.usage() == {"calls": len(faces.samples), "cache_hits": 0}


def test_a_warm_rerun_makes_no_model_call(vit, faces, tmp_path, monkeypatch):
    first = build(f"hf-classifier:{vit['folder']}")
    expected = first.predict(faces, context=context(tmp_path))
    second = build(f"hf-classifier:{vit['folder']}?batch_size=5")  # batching does not change answers
    monkeypatch.setattr(second, "predict_batch", pytest.fail)
    pd.testing.assert_frame_equal(second.predict(faces, context=context(tmp_path)), expected)
    assert second.usage() == {"calls": 0, "cache_hits": len(faces.samples)}


def test_the_cache_is_keyed_by_the_weights_content(vit, faces, tmp_path):
    other = tmp_path / "other"
    save_vit(other, NAMES, seed=1)
    first, second = build(f"hf-classifier:{vit['folder']}"), build(f"hf-classifier:{other}")
    assert first.version.startswith("sha256:") and first.version != second.version
    first.predict(faces, context=context(tmp_path / "cache"))
    second.predict(faces, context=context(tmp_path / "cache"))
    assert second.usage() == {"calls": len(faces.samples), "cache_hits": 0}


def test_a_label_outside_the_alias_table_is_an_error_naming_it(vit):
    with pytest.raises(ModelError) as caught:
        build(f"hf-classifier:{vit['poker']}")
    assert str(caught.value) == (
        f"hf-classifier: {vit['poker'].resolve()} has label(s) 'poker_face' that name no emotion this suite knows "
        "(anger, contempt, disgust, fear, happiness, neutral, sadness, surprise, calm, or a word such as happy or "
        "angry); map them, e.g. ?map=poker_face=anger"
    )


def test_map_names_the_emotion_of_such_a_label(vit, faces, tmp_path):
    model = build(f"hf-classifier:{vit['poker']}?map=poker_face=neutral")
    outcomes = model.predict(faces, context=context(tmp_path))
    expected, scores = oracle(vit, faces, names=(*NAMES[:6], "poker_face"))
    assert list(outcomes["outcome"]) == expected
    np.testing.assert_allclose(outcomes["score_neutral"], scores[:, 6], atol=1e-5)
    assert "poker_face->neutral" in model.describe()["labels"]
    assert model.describe()["map"] == "poker_face=neutral"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("map=poker=neutral", r"\?map= names 'poker', which the model does not have \(its labels: happy, Angry,"),
        ("map=poker_face=blank", r"\?map= maps 'poker_face' to 'blank', which names no emotion"),
        ("map=poker_face", r"cannot read 'poker_face' in \?map=; write \?map=LABEL=emotion"),
        ("map=poker_face=neutral,poker_face=sad", r"maps 'poker_face' to both 'neutral' and 'sadness'"),
    ],
)
def test_bad_maps_are_usage_errors(vit, options, message):
    with pytest.raises(ConfigError, match=message):
        build(f"hf-classifier:{vit['poker']}?{options}")


def test_two_labels_for_one_emotion_are_refused(vit):
    with pytest.raises(ModelError) as caught:
        build(f"hf-classifier:{vit['poker']}?map=poker_face=joy")
    assert str(caught.value) == (
        f"hf-classifier: {vit['poker'].resolve()} has two labels for one emotion ('happy', 'poker_face' all mean "
        "happiness); map one elsewhere"
    )


def one_line_error(error_type, text) -> str:
    with pytest.raises(error_type) as caught:
        build(text)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_hub_name_offline_and_not_cached_is_one_line(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = one_line_error(ModelError, "hf-classifier:someone/vit-fer")
    assert message.startswith(
        f"hf-classifier: cannot load someone/vit-fer: looked in {tmp_path / 'hub'} with the hub offline "
        "(HF_HUB_OFFLINE is set); download it once or give a local model folder ("
    )


def test_missing_or_wrong_folders_are_one_line(tmp_path):
    message = one_line_error(ModelError, f"hf-classifier:{tmp_path / 'nowhere'}")
    assert message.startswith(f"hf-classifier: no folder at {tmp_path / 'nowhere'}; expected a transformers")
    from transformers import GemmaConfig

    GemmaConfig(vocab_size=8, hidden_size=8, intermediate_size=8, num_hidden_layers=1).save_pretrained(tmp_path)
    message = one_line_error(ModelError, f"hf-classifier:{tmp_path}")
    assert message.startswith(f"hf-classifier: {tmp_path} holds a 'gemma' model, not an image classifier (")


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        ("", r"model 'hf-classifier:' needs a target after the colon: hf-classifier:REPO_OR_PATH"),
        ("x/y?dtype=int8", r"unknown option\(s\) dtype \(allowed: revision, device, batch_size, name, map\)"),
        ("x/y?batch_size=0", r"option batch_size must be an integer >= 1; got '0'"),
        ("/models/v?revision=main", r"option revision applies to hub repos, not to a local folder"),
    ],
)
def test_bad_specs_are_usage_errors(suffix, message):
    with pytest.raises(ConfigError, match=message):
        build(f"hf-classifier:{suffix}")


def test_describe(vit):
    model = build(f"hf-classifier:{vit['folder']}?name=mine")
    facts = model.describe()
    assert model.name == "mine"
    assert facts["kind"] == "hf-classifier" and facts["source"] == str(vit["folder"].resolve())
    assert facts["labels"] == "happy->happiness, Angry->anger, sad->sadness, surprised->surprise, " + (
        "fearful->fear, disgusted->disgust, neutral"
    )
    assert facts["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert facts["transformers"] == transformers.__version__
    assert build(f"hf-classifier:{vit['folder']}").name == "hf-classifier:vit"
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


SUITE = """
import pytest
from fer_fairness.gate import gate

@pytest.mark.fairness("accuracy_gap")
def test_accuracy_gap(fairness_record):
    gate(fairness_record)
"""


def test_a_run_through_the_plugin_counts_what_the_model_answers(pytester, vit, faces):
    pytester.mkdir("fairness_tests")
    (pytester.path / "fairness_tests" / "test_fair.py").write_text(SUITE)
    (pytester.path / "thresholds.toml").write_text(
        '[settings]\nmin_group_size = 10\n[groups]\nintersections = "none"\n'
    )
    result = pytester.runpytest(
        "fairness_tests",
        f"--fairness-dataset=manifest:{faces.root / 'manifest.csv'}?name=faces",
        f"--fairness-model=hf-classifier:{vit['folder']}?name=vit",
        f"--fairness-cache-dir={pytester.path / 'cache'}",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) == 0
    assert sum(outcomes.get(k, 0) for k in ("passed", "failed", "skipped")) == 2  # one test per attribute
    document = json.loads((pytester.path / "reports" / "fairness.json").read_text())
    tables = {t["attribute"]: t for t in document["run"]["counts"] if t["model"] == "vit"}
    assert set(tables) == {"skin_tone", "gender"}
    predicted, _ = oracle(vit, faces)
    samples = faces.samples.assign(predicted=predicted)
    for attribute, table in tables.items():
        expected = np.zeros_like(np.asarray(table["counts"]))
        for _, row in samples.iterrows():
            g = table["groups"].index(row[attribute])
            expected[g, table["labels"].index(row["emotion"]), table["outcomes"].index(row["predicted"])] += 1
        assert table["counts"] == expected.tolist(), attribute
