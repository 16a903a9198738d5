"""CLIP adapters on a tiny open_clip model with random weights, loaded back from local files offline.

The model is registered here (a 1-layer ViT on 32 px images and a 1-layer text tower), its random
weights are saved as a checkpoint file and as two kinds of folder, and the adapters load them through
the PRETRAINED path. Expected numbers are recomputed here with open_clip directly.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
safetensors_torch = pytest.importorskip("safetensors.torch")

from fer_fairness._cache import file_digest  # noqa: E402
from fer_fairness.datasets.synthetic import SyntheticSpec, load_synthetic  # noqa: E402
from fer_fairness.errors import ConfigError, ModelError  # noqa: E402
from fer_fairness.models import MODELS  # noqa: E402
from fer_fairness.models._base import OUTCOME_COLUMNS, PredictContext  # noqa: E402
from fer_fairness.models.clip import (  # noqa: E402
    DEFAULT_TEMPLATES,
    LABEL_WORDS,
    SCORE_PREFIX,
    ClipProbe,
    ClipZeroShot,
)
from fer_fairness.specs import Registry  # noqa: E402
from tests.models.test_probe import count_image_opens  # noqa: E402

ARCH = "fer-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
# The registry entries these adapters are wired under (the package registry may not list them yet).
ENTRIES = {
    "clip-zeroshot": "fer_fairness.models.clip:ClipZeroShot",
    "clip-probe": "fer_fairness.models.clip:clip_probe",
}
USAGE = {"clip-zeroshot": "clip-zeroshot:ARCH@PRETRAINED", "clip-probe": "clip-probe:ARCH@PRETRAINED"}
REGISTRY = Registry(what="model", entries=ENTRIES, usage=USAGE)


def build(text: str):
    spec = REGISTRY.parse(text)
    return REGISTRY.factory(spec.kind)(spec)


def context(path, **kwargs) -> PredictContext:
    return PredictContext(seed=0, cache_dir=path, progress=False, **kwargs)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The tiny model's random weights as a file, a bare folder and an open_clip folder (with config)."""
    root = tmp_path_factory.mktemp("clip-weights")
    (root / f"{ARCH}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(root / f"{ARCH}.json")
    torch.manual_seed(0)
    state = open_clip.create_model(ARCH).state_dict()
    torch.save(state, root / "tiny.pt")
    (root / "bare").mkdir()
    safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, root / "bare" / "weights.safetensors")
    (root / "hub-snapshot").mkdir()
    shutil.copy(root / "bare" / "weights.safetensors", root / "hub-snapshot" / "open_clip_model.safetensors")
    (root / "hub-snapshot" / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CONFIG}))
    return {
        "state": state,
        "file": root / "tiny.pt",
        "folder": root / "bare",
        "config-folder": root / "hub-snapshot",
    }


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """140 tiny synthetic faces: 20 subjects (5 per skin tone x gender) x 7 expressions."""
    groups = tuple((tone, gender, 5) for tone in ("light", "dark") for gender in ("female", "male"))
    spec = SyntheticSpec(subjects=groups, variants=1, image_size=32)
    return load_synthetic(cache_dir=tmp_path_factory.mktemp("faces"), seed=0, progress=False, spec=spec)


@pytest.fixture(scope="module")
def zero_shot(weights):
    return build(f"clip-zeroshot:{ARCH}@{weights['file']}")


def count_image_passes(monkeypatch, embedder) -> list[int]:
    calls = []
    original = embedder.model.encode_image

    def counted(*args, **kwargs):
        calls.append(len(args[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(embedder.model, "encode_image", counted)
    return calls


@pytest.mark.parametrize("route", ["file", "folder", "config-folder"])
def test_local_weights_load_through_the_pretrained_path(weights, route):
    model = build(f"clip-zeroshot:{ARCH}@{weights[route]}")
    loaded = model.embedder.model.state_dict()
    assert loaded.keys() == weights["state"].keys()
    for key, value in weights["state"].items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)
    assert not model.embedder.model.training
    assert model.embedder.weights.identity.startswith("sha256:")


def test_a_relative_checkpoint_path_loads_as_a_file(weights, monkeypatch):
    monkeypatch.chdir(weights["file"].parent)
    model = build(f"clip-probe:{ARCH}@tiny.pt")
    assert model.embedder.weights.source == "file"
    assert model.embedder.weights.pretrained == str(weights["file"].resolve())


def test_every_sample_gets_one_canonical_label_with_its_probability(zero_shot, faces, tmp_path):
    assert isinstance(zero_shot, ClipZeroShot)
    outcomes = zero_shot.predict(faces, context=context(tmp_path))
    assert list(outcomes.columns[:3]) == list(OUTCOME_COLUMNS)
    assert list(outcomes["sample_id"]) == list(faces.samples["sample_id"])
    assert set(outcomes["outcome"]) <= set(faces.emotions)
    scores = outcomes[[f"{SCORE_PREFIX}{label}" for label in faces.emotions]].to_numpy()
    np.testing.assert_allclose(scores.sum(axis=1), 1, atol=1e-9)
    assert (np.asarray(faces.emotions)[scores.argmax(axis=1)] == outcomes["outcome"]).all()
    np.testing.assert_allclose(outcomes["raw"].astype(float), scores.max(axis=1), atol=5e-5)


def test_zero_shot_is_deterministic_across_builds_and_runs(weights, faces, tmp_path):
    first = build(f"clip-zeroshot:{ARCH}@{weights['file']}").predict(faces, context=context(tmp_path / "a"))
    second = build(f"clip-zeroshot:{ARCH}@{weights['file']}").predict(faces, context=context(tmp_path / "b"))
    pd.testing.assert_frame_equal(first, second)


def test_text_ensemble_matches_an_independent_computation(zero_shot, weights, faces, tmp_path):
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH, pretrained=str(weights["file"]))
    model.eval()
    tokenizer = open_clip.get_tokenizer(ARCH)
    rows = []
    with torch.no_grad():
        for label in faces.emotions:
            words = LABEL_WORDS[label]
            texts = [t.format(label=words.label, adjective=words.adjective) for t in DEFAULT_TEMPLATES]
            each = torch.cat([model.encode_text(tokenizer([text])) for text in texts]).double()
            mean = (each / each.norm(dim=1, keepdim=True)).mean(dim=0)
            rows.append(mean / mean.norm())
        classes = torch.stack(rows)
        np.testing.assert_allclose(zero_shot.class_embeddings(faces.emotions), classes.numpy(), atol=1e-5)

        images = [faces.root / p for p in faces.samples["path"][:20]]
        pixels = torch.stack([preprocess(open_clip_image(p)) for p in images])
        features = model.encode_image(pixels).double()
        features = features / features.norm(dim=1, keepdim=True)
        probabilities = torch.softmax(model.logit_scale.exp().double() * features @ classes.T, dim=1).numpy()
    outcomes = zero_shot.predict(faces, context=context(tmp_path)).iloc[:20]
    scores = outcomes[[f"{SCORE_PREFIX}{label}" for label in faces.emotions]].to_numpy()
    np.testing.assert_allclose(scores, probabilities, atol=1e-4)


def open_clip_image(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def test_custom_templates_are_used_and_reported(weights, tmp_path):
    path = tmp_path / "templates.txt"
    path.write_text("# one per line\na photo of a {adjective} face.\n\n{label}\n")
    model = build(f"clip-zeroshot:{ARCH}@{weights['file']}?templates={path}")
    assert model.templates == ("a photo of a {adjective} face.", "{label}")
    assert model.prompts()["templates"] == "a photo of a {adjective} face.\n{label}"
    assert "neutral: no emotion / neutral" in model.prompts()["label words"]
    texts = model.embedder.encode_texts(["a photo of a happy face.", "happiness"]).astype(np.float64)
    expected = texts.mean(axis=0) / np.linalg.norm(texts.mean(axis=0))
    np.testing.assert_allclose(model.class_embeddings(["happiness"])[0], expected, atol=1e-6)


def test_probe_embeddings_are_normalised_cached_and_shared_with_zero_shot(weights, faces, tmp_path, monkeypatch):
    probe = build(f"clip-probe:{ARCH}@{weights['file']}")
    assert isinstance(probe, ClipProbe)
    passes = count_image_passes(monkeypatch, probe.embedder)
    outcomes = probe.predict(faces, context=context(tmp_path))
    assert sum(passes) == len(faces.samples) and max(passes) <= 32  # batched
    assert list(outcomes.columns) == list(OUTCOME_COLUMNS)
    assert list(outcomes["sample_id"]) == list(faces.samples["sample_id"])
    assert set(outcomes["outcome"]) <= set(faces.emotions)
    embeddings = probe.embeddings(faces, context=context(tmp_path))
    assert embeddings.shape == (len(faces.samples), TINY_CONFIG["embed_dim"])
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)

    again = build(f"clip-probe:{ARCH}@{weights['file']}")
    zero_shot = build(f"clip-zeroshot:{ARCH}@{weights['file']}")
    later = count_image_passes(monkeypatch, again.embedder) + count_image_passes(monkeypatch, zero_shot.embedder)
    pd.testing.assert_frame_equal(again.predict(faces, context=context(tmp_path)), outcomes)
    zero_shot.predict(faces, context=context(tmp_path))
    assert later == []


def count_model_calls(monkeypatch, embedder) -> dict[str, int]:
    """Count every encode_image and encode_text call on the embedder's model (as bench_clip does)."""
    counts = {"encode_image": 0, "encode_text": 0}
    for name in counts:
        original = getattr(embedder.model, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(embedder.model, name, counted)
    return counts


@pytest.fixture
def own_faces(faces, tmp_path, monkeypatch):
    """A copy of the faces this test may touch; files just written count as settled (no racy window)."""
    from dataclasses import replace

    from fer_fairness import _digests

    monkeypatch.setattr(_digests, "RACY_NS", -(10**12))
    shutil.copytree(faces.root, tmp_path / "faces")
    return replace(faces, root=tmp_path / "faces")


def cold_and_warm(spec: str, faces, cache: Path, monkeypatch) -> list[tuple[pd.DataFrame, dict[str, int], list[str]]]:
    """``spec``'s predictions on ``faces`` by a freshly built adapter, cold then warm (as two processes
    would make them), each with its model calls and the images it opened."""
    opened = count_image_opens(monkeypatch, faces.root)
    runs = []
    for _ in range(2):
        opened.clear()
        model = build(spec)
        calls = count_model_calls(monkeypatch, model.embedder)
        table = model.predict(faces, context=context(cache))
        runs.append((table, calls, list(opened)))
    return runs


def test_a_warm_run_reads_no_image_and_calls_no_model(weights, own_faces, tmp_path, monkeypatch):
    spec = f"clip-zeroshot:{ARCH}@{weights['file']}"
    (cold, calls, opened), (warm, calls_again, opened_again) = cold_and_warm(
        spec, own_faces, tmp_path / "cache", monkeypatch
    )
    images = [str(own_faces.root / p) for p in own_faces.samples["path"]]
    assert sorted(opened) == sorted(images)  # each image read once: hashed and decoded from the same bytes
    assert calls == {"encode_image": -(-len(images) // 32), "encode_text": 1}  # all prompts in one batch
    pd.testing.assert_frame_equal(warm, cold, check_exact=True)
    assert opened_again == [] and calls_again == {"encode_image": 0, "encode_text": 0}


def test_clip_probe_reads_each_image_once_cold_and_none_warm(weights, own_faces, tmp_path, monkeypatch):
    spec = f"clip-probe:{ARCH}@{weights['file']}"
    (cold, calls, opened), (warm, calls_again, opened_again) = cold_and_warm(
        spec, own_faces, tmp_path / "cache", monkeypatch
    )
    images = [str(own_faces.root / p) for p in own_faces.samples["path"]]
    assert sorted(opened) == sorted(images) and calls["encode_image"] == -(-len(images) // 32)
    pd.testing.assert_frame_equal(warm, cold)
    assert opened_again == [] and calls_again["encode_image"] == 0


def test_touched_images_are_hashed_again_and_changed_ones_embedded_again(weights, own_faces, tmp_path, monkeypatch):
    zero_shot = build(f"clip-zeroshot:{ARCH}@{weights['file']}")
    cold = zero_shot.predict(own_faces, context=context(tmp_path / "cache"))
    images = [own_faces.root / p for p in own_faces.samples["path"]]
    for image in images:  # new mtimes, same bytes: the digests are recomputed and still match
        stat = image.stat()
        os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**9))
    calls = count_model_calls(monkeypatch, zero_shot.embedder)
    opened = count_image_opens(monkeypatch, own_faces.root)
    pd.testing.assert_frame_equal(zero_shot.predict(own_faces, context=context(tmp_path / "cache")), cold)
    assert sorted(opened) == sorted(map(str, images)) and calls == {"encode_image": 0, "encode_text": 0}

    # Different pixels under the old name and mtime: the stat signature (ctime) no longer matches,
    # so the content digest changes and the images are embedded again.
    stat = images[0].stat()
    time.sleep(0.05)
    shutil.copy(images[1], images[0])
    os.utime(images[0], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = zero_shot.predict(own_faces, context=context(tmp_path / "cache"))
    assert calls["encode_image"] > 0 and calls["encode_text"] == 0
    np.testing.assert_array_equal(changed.iloc[0, 3:].to_numpy(), changed.iloc[1, 3:].to_numpy())


def test_a_missing_image_is_one_line_naming_it(weights, own_faces, tmp_path):
    missing = own_faces.root / own_faces.samples["path"].iloc[5]
    missing.unlink()
    zero_shot = build(f"clip-zeroshot:{ARCH}@{weights['file']}?name=zs")
    with pytest.raises(ModelError) as caught:
        zero_shot.predict(own_faces, context=context(tmp_path / "cache"))
    assert str(caught.value) == f"zs: cannot read image {missing}: No such file or directory"


def test_zero_shot_fills_the_embedding_cache_the_probe_reads(weights, faces, tmp_path, monkeypatch):
    build(f"clip-zeroshot:{ARCH}@{weights['file']}").predict(faces, context=context(tmp_path))
    probe = build(f"clip-probe:{ARCH}@{weights['file']}")
    passes = count_image_passes(monkeypatch, probe.embedder)
    embeddings = probe.embeddings(faces, context=context(tmp_path))
    assert passes == []
    np.testing.assert_array_equal(
        embeddings, probe.embedder.embed([faces.root / p for p in faces.samples["path"]], progress=False)
    )


def test_class_embeddings_are_cached_by_prompts_and_labels(weights, faces, tmp_path, monkeypatch):
    path = tmp_path / "templates.txt"
    path.write_text("a photo of a {adjective} face.\n")
    default = build(f"clip-zeroshot:{ARCH}@{weights['file']}")
    custom = build(f"clip-zeroshot:{ARCH}@{weights['file']}?templates={path}")
    calls = {id(m): count_model_calls(monkeypatch, m.embedder) for m in (default, custom)}
    labels = list(faces.emotions)
    for model, subset in (
        (default, labels),
        (custom, labels),
        (default, labels[:3]),
        (default, labels),
        (custom, labels),
    ):
        np.testing.assert_array_equal(
            model.cached_class_embeddings(subset, context=context(tmp_path)), model.class_embeddings(subset)
        )
    # each model's direct class_embeddings calls encode once per call (5 in all); the cache only
    # encoded for the three distinct (templates, labels) it was asked for
    assert calls[id(default)]["encode_text"] == 3 + 2 and calls[id(custom)]["encode_text"] == 2 + 1


def test_embedding_cache_key_follows_weights_and_preprocessing(weights, tmp_path):
    settings = build(f"clip-probe:{ARCH}@{weights['file']}").embedder.settings()
    assert settings["arch"] == ARCH
    assert settings["weights"] == f"sha256:{file_digest(weights['file'])}"
    assert "Resize(size=32" in settings["preprocess"] and " at 0x" not in settings["preprocess"]
    assert json.loads(settings["preprocess_cfg"])["size"] == [32, 32]
    assert settings["normalisation"] == "l2"
    other = {k: v.clone() for k, v in weights["state"].items()}
    other["logit_scale"] += 1
    torch.save(other, tmp_path / "other.pt")
    assert build(f"clip-probe:{ARCH}@{tmp_path / 'other.pt'}").embedder.settings()["weights"] != settings["weights"]
    copy = tmp_path / "copy.pt"
    shutil.copy(weights["file"], copy)  # same content elsewhere: the same cache entries
    assert build(f"clip-probe:{ARCH}@{copy}").embedder.settings() == settings


def test_describe_names_weights_device_versions_and_templates(zero_shot, weights):
    facts = zero_shot.describe()
    assert facts["kind"] == "clip-zeroshot"
    assert facts["arch"] == ARCH and facts["pretrained"] == str(weights["file"].resolve())
    assert facts["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert facts["torch"] == torch.__version__.split("+")[0] and facts["open_clip_torch"] == open_clip.__version__
    assert facts["templates"].split(" | ") == list(DEFAULT_TEMPLATES)
    assert zero_shot.name == f"clip-zeroshot:{ARCH}@tiny.pt"
    probe_facts = build(f"clip-probe:{ARCH}@{weights['file']}?name=p").describe()
    assert probe_facts["kind"] == "clip-probe" and probe_facts["device"] == facts["device"]
    assert "c_grid" in probe_facts["probe"]


def one_line_error(error_type, text):
    with pytest.raises(error_type) as caught:
        build(text)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_checkpoint_is_one_line_saying_what_and_where(weights, tmp_path):
    message = one_line_error(ModelError, f"clip-zeroshot:{ARCH}@{tmp_path / 'nowhere' / 'model.pt'}")
    assert message.startswith(f"clip: no checkpoint at {tmp_path / 'nowhere' / 'model.pt'}")
    (tmp_path / "empty").mkdir()
    message = one_line_error(ModelError, f"clip-probe:{ARCH}@{tmp_path / 'empty'}")
    assert message.startswith(f"clip: no single checkpoint in folder {tmp_path / 'empty'}: looked for")
    assert message.endswith("found none")
    message = one_line_error(ModelError, f"clip-zeroshot:{ARCH}@laion9000")
    assert "'laion9000' is neither an open_clip pretrained tag of fer-tiny-clip (tags: none)" in message
    assert message.endswith(f"nor a checkpoint file or folder (nothing at {Path.cwd() / 'laion9000'})")


def test_hub_tag_without_cached_weights_offline_is_one_line(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = one_line_error(ModelError, "clip-zeroshot:RN50@openai")
    assert message.startswith(
        f"clip: cannot load weights RN50@openai: looked for timm/resnet50_clip.openai/ in {tmp_path}"
    )
    assert "with the hub offline" in message


def test_wrong_architecture_for_a_checkpoint_is_a_model_error(weights):
    message = one_line_error(ModelError, f"clip-zeroshot:RN50@{weights['file']}")
    assert message.startswith(f"clip: cannot load RN50 weights from {weights['file'].resolve()}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("clip-zeroshot:ViT-B-32", r"write clip-zeroshot:ARCH@PRETRAINED"),
        ("clip-probe:@openai", r"write clip-probe:ARCH@PRETRAINED"),
        ("clip-zeroshot:ViT-B-23@openai", r"unknown open_clip architecture 'ViT-B-23'; did you mean ViT-B-32"),
        ("clip-zeroshot:ViT-B-32@openai?shots=5", r"unknown option\(s\) shots \(allowed: templates, batch_size"),
        ("clip-probe:ViT-B-32@openai?templates=x", r"unknown option\(s\) templates"),
        ("clip-probe:ViT-B-32@openai?batch_size=0", r"option batch_size must be an integer >= 1; got '0'"),
        ("clip-zeroshot:ViT-B-32@openai?templates=/no/such.txt", r"clip templates file /no/such.txt: cannot read"),
    ],
)
def test_bad_specs_are_usage_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        build(text)


def test_a_device_without_cuda_is_refused(weights):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    message = one_line_error(ModelError, f"clip-zeroshot:{ARCH}@{weights['file']}?device=cuda")
    assert message == "clip: device 'cuda' was asked for but torch sees no CUDA device"


SUITE = """
import pytest
from fer_fairness.gate import gate

@pytest.mark.fairness("accuracy_gap")
def test_accuracy_gap(fairness_record):
    gate(fairness_record)
"""


def test_both_adapters_run_through_the_whole_suite(pytester, weights, faces, monkeypatch):
    for kind, entry in ENTRIES.items():  # the package registry may not list them yet
        monkeypatch.setitem(MODELS.entries, kind, entry)
        monkeypatch.setitem(MODELS.usage, kind, USAGE[kind])
    pytester.mkdir("fairness_tests")
    (pytester.path / "fairness_tests" / "test_fair.py").write_text(SUITE)
    (pytester.path / "thresholds.toml").write_text(
        '[settings]\nmin_group_size = 10\n[groups]\nintersections = "none"\n'
    )
    result = pytester.runpytest(
        "fairness_tests",
        f"--fairness-dataset=manifest:{faces.root / 'manifest.csv'}?name=faces",
        f"--fairness-model=clip-zeroshot:{ARCH}@{weights['file']}?name=zs",
        f"--fairness-model=clip-probe:{ARCH}@{weights['folder']}?name=probe",
        f"--fairness-cache-dir={pytester.path / 'cache'}",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) == 0
    assert sum(outcomes.get(k, 0) for k in ("passed", "failed", "skipped")) == 4  # 2 models x 2 attributes
    document = json.loads((pytester.path / "reports" / "fairness.json").read_text())
    assert {t["test_id"].split("|")[0] for t in document["tests"]} == {"zs", "probe"}
