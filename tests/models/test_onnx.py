"""``onnx:PATH``: tiny classifiers exported here from torch modules, checked against those modules.

The oracle is the torch module itself, fed pixels prepared in the test by the documented formula
(PIL bilinear resize, x / 255, (x - mean) / std, the input's layout), independently of the adapter's
preprocessing.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_fairness.datasets._table import Dataset
from fer_fairness.datasets.synthetic import load_synthetic
from fer_fairness.errors import ConfigError, ModelError
from fer_fairness.models import MODELS
from fer_fairness.models._base import PredictContext

torch = pytest.importorskip("torch")
onnxruntime = pytest.importorskip("onnxruntime")  # loaded before pytester snapshots sys.modules
onnx = pytest.importorskip("onnx")  # torch's exporter writes through it

from PIL import Image  # noqa: E402

LABELS = ("happy", "angry", "sad")  # FER2013 spellings: read as happiness, anger, sadness
CANONICAL = ("happiness", "anger", "sadness")


class Net(torch.nn.Module):
    """A small conv net; ``nhwc`` takes channels last, ``softmax`` returns probabilities."""

    def __init__(self, channels: int, size: tuple[int, int], classes: int, *, nhwc=False, softmax=False, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.nhwc, self.softmax = nhwc, softmax
        self.conv = torch.nn.Conv2d(channels, 4, 3, padding=1)
        self.head = torch.nn.Linear(4 * size[0] * size[1], classes)
        with torch.no_grad():  # large enough weights that the classes differ between images
            self.head.weight.mul_(8.0)

    def forward(self, x):
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        y = self.head(torch.relu(self.conv(x)).flatten(1))
        return torch.softmax(y, dim=1) if self.softmax else y


def export(net: Net, path: Path, shape: tuple[int, ...], *, dynamic: tuple[int, ...] = (0,), labels=None) -> Path:
    """``net`` as an ONNX file; ``dynamic`` lists the input axes left open; ``labels`` go into metadata."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net.eval(),
            (torch.zeros(shape),),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["scores"],
            dynamic_axes={"image": {a: f"d{a}" for a in dynamic}, "scores": {0: "d0"}} if dynamic else None,
        )
    if labels is not None:
        model = onnx.load(str(path))
        entry = model.metadata_props.add()
        entry.key, entry.value = "labels", labels
        onnx.save(model, str(path))
    return path


def faces(root: Path, sizes: list[tuple[int, int]], *, seed: int = 0) -> Dataset:
    """One random RGB image per (width, height); the adapter converts and resizes them."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = [f"s{i}" for i in range(len(sizes))]
    for sample_id, (width, height) in zip(ids, sizes, strict=True):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels, mode="RGB").save(root / f"{sample_id}.png")
    samples = pd.DataFrame(
        {"sample_id": ids, "path": [f"{i}.png" for i in ids], "emotion": "anger", "subject_id": ids, "group": "a"}
    )
    return Dataset(name="tiny", root=root, samples=samples, attributes=("group",), emotions=CANONICAL)


SIZES = [(16, 12), (20, 16), (7, 9), (32, 24), (16, 12)]  # (width, height): some resized, one as is


def oracle(net: Net, dataset: Dataset, *, mode, size, mean, std, nhwc=False, softmax=True) -> np.ndarray:
    """Probabilities from the torch module on pixels prepared here by the formula."""
    height, width = size
    rows = []
    for path in dataset.samples["path"]:
        with Image.open(dataset.root / path) as image:
            image = image.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.float64) / 255.0
        pixels = pixels.reshape(height, width, -1)
        rows.append((pixels - np.asarray(mean)) / np.asarray(std))
    batch = np.stack(rows) if nhwc else np.stack(rows).transpose(0, 3, 1, 2)
    with torch.no_grad():
        out = net(torch.from_numpy(batch.astype(np.float32))).double().numpy()
    if not softmax:
        return out
    out = np.exp(out - out.max(axis=1, keepdims=True))
    return out / out.sum(axis=1, keepdims=True)


def build(text: str):
    return MODELS.build(MODELS.parse(text))


def run(model, dataset: Dataset, cache: Path) -> pd.DataFrame:
    return model.predict(dataset, context=PredictContext(seed=0, cache_dir=cache, progress=False))


def assert_matches(table: pd.DataFrame, expected: np.ndarray, labels=CANONICAL) -> None:
    scores = table[[f"score_{label}" for label in labels]].to_numpy()
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    assert table["outcome"].tolist() == [labels[i] for i in expected.argmax(axis=1)]


@pytest.fixture
def rgb(tmp_path):
    net = Net(3, (12, 16), 3)
    return net, export(net, tmp_path / "fer-net.onnx", (1, 3, 12, 16))


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NORM = f"mean={','.join(map(str, MEAN))}&std={','.join(map(str, STD))}"


def test_rgb_nchw_matches_the_torch_module(rgb, tmp_path):
    net, path = rgb
    data = faces(tmp_path / "faces", SIZES)
    model = build(f"onnx:{path}?labels={','.join(LABELS)}&{NORM}&batch_size=2&provider=cpu")
    table = run(model, data, tmp_path / "cache")
    assert_matches(table, oracle(net, data, mode="RGB", size=(12, 16), mean=MEAN, std=STD))
    assert table["sample_id"].tolist() == data.samples["sample_id"].tolist()
    assert model.name == "fer-net"
    facts = model.describe()
    assert facts["labels"] == "happy->happiness, angry->anger, sad->sadness"
    assert (facts["kind"], facts["size"], facts["color"], facts["layout"], facts["output"]) == (
        "onnx",
        "12x16",
        "rgb",
        "nchw",
        "logits",
    )
    assert facts["provider"] == "CPUExecutionProvider"
    assert facts["mean"] == "0.485,0.456,0.406"
    assert model.usage() == {"calls": 5, "cache_hits": 0}


def test_a_warm_rerun_makes_no_call_and_a_new_setting_asks_again(rgb, tmp_path):
    net, path = rgb
    data = faces(tmp_path / "faces", SIZES)
    spec = f"onnx:{path}?labels={','.join(LABELS)}"
    first = run(build(spec), data, tmp_path / "cache")
    again = build(spec)
    second = run(again, data, tmp_path / "cache")
    assert again.usage() == {"calls": 0, "cache_hits": 5}
    pd.testing.assert_frame_equal(first, second)
    other = build(f"{spec}&{NORM}")  # other preprocessing, other answers: not served from the cache
    assert_matches(
        run(other, data, tmp_path / "cache"), oracle(net, data, mode="RGB", size=(12, 16), mean=MEAN, std=STD)
    )
    assert other.usage() == {"calls": 5, "cache_hits": 0}


def test_greyscale_channels_last_with_a_fixed_batch_of_two(tmp_path):
    net = Net(1, (10, 8), 3, nhwc=True, seed=1)
    # No open axis: the graph takes exactly two images, so five go in three runs, the last padded.
    path = export(net, tmp_path / "grey.onnx", (2, 10, 8, 1), dynamic=())
    data = faces(tmp_path / "faces", SIZES)
    model = build(f"onnx:{path}?labels=happiness,anger,sadness&mean=0.5&std=0.25")
    facts = model.describe()
    assert (facts["color"], facts["layout"], facts["size"]) == ("grey", "nhwc", "10x8")
    expected = oracle(net, data, mode="L", size=(10, 8), mean=(0.5,), std=(0.25,), nhwc=True)
    assert_matches(run(model, data, tmp_path / "cache"), expected)


def test_probabilities_kept_and_a_dynamic_size_given(tmp_path):
    net = Net(3, (12, 12), 3, softmax=True, seed=2)
    path = export(net, tmp_path / "p.onnx", (1, 3, 12, 12), dynamic=(0, 2, 3))
    data = faces(tmp_path / "faces", SIZES)
    model = build(f"onnx:{path}?labels={','.join(LABELS)}&size=12&output=probabilities")
    expected = oracle(net, data, mode="RGB", size=(12, 12), mean=(0, 0, 0), std=(1, 1, 1), softmax=False)
    assert_matches(run(model, data, tmp_path / "cache"), expected)


@pytest.mark.parametrize(
    "source",
    ["metadata-json", "metadata-comma", "file-lines", "file-json"],
)
def test_labels_from_metadata_or_a_file(tmp_path, source):
    net = Net(3, (12, 16), 3)
    order = ("sad", "happy", "angry")
    stored = {"metadata-json": json.dumps(order), "metadata-comma": ",".join(order)}.get(source)
    path = export(net, tmp_path / "m.onnx", (1, 3, 12, 16), labels=stored)
    query = ""
    if source == "file-lines":
        (tmp_path / "labels.txt").write_text("sad\nhappy\n\nangry\n")
        query = f"?labels_file={tmp_path / 'labels.txt'}"
    elif source == "file-json":
        (tmp_path / "labels.json").write_text(json.dumps(order))
        query = f"?labels_file={tmp_path / 'labels.json'}"
    data = faces(tmp_path / "faces", SIZES)
    expected = oracle(net, data, mode="RGB", size=(12, 16), mean=(0, 0, 0), std=(1, 1, 1))
    assert_matches(
        run(build(f"onnx:{path}{query}"), data, tmp_path / "cache"), expected, ("sadness", "happiness", "anger")
    )


class TwoInputs(torch.nn.Module):
    def forward(self, x, y):
        return x.flatten(1)[:, :3] + y.flatten(1)[:, :3]


@pytest.fixture
def files(tmp_path):
    def make(kind: str) -> Path:
        if kind == "missing":
            return tmp_path / "nowhere.onnx"
        if kind == "garbage":
            (tmp_path / "garbage.onnx").write_bytes(b"this is not a protobuf graph")
            return tmp_path / "garbage.onnx"
        if kind == "two-inputs":
            path = tmp_path / "two.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    TwoInputs(), (torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)), str(path), dynamo=False
                )
            return path
        if kind == "dynamic":
            return export(Net(3, (4, 4), 3), tmp_path / "dyn.onnx", (1, 3, 4, 4), dynamic=(0, 2, 3))
        return export(Net(3, (4, 4), 3), tmp_path / "ok.onnx", (1, 3, 4, 4))

    return make


@pytest.mark.parametrize(
    ("kind", "query", "error", "message"),
    [
        ("missing", "?labels=happy,angry,sad", ModelError, r": no ONNX file at .*nowhere\.onnx$"),
        ("garbage", "?labels=happy,angry,sad", ModelError, r"garbage\.onnx is not an ONNX model onnxruntime can load"),
        (
            "ok",
            "?labels=happy,angry",
            ModelError,
            r"outputs 3 scores per image but 2 labels were given \(happy, angry\)",
        ),
        ("ok", "?labels=happy,angry,bored", ModelError, r"label 'bored' names no emotion this suite knows"),
        ("ok", "", ModelError, r"does not name its labels .*give them in output order, e\.g\. \?labels="),
        ("ok", "?labels=happy,angry,sad&size=big", ConfigError, r"option size must be N or HxW .*; got 'big'$"),
        ("ok", "?labels=happy,angry,sad&size=8", ConfigError, r"\?size= gives height 8 but the input takes 4"),
        ("ok", "?labels=happy,angry,sad&mean=0.5,x,0.5", ConfigError, r"option mean must be 1 or 3 comma-separated"),
        ("ok", "?labels=happy,angry,sad&mean=0.5,0.5", ConfigError, r"option mean must be 1 or 3 .*got '0\.5,0\.5'$"),
        ("ok", "?labels=happy,angry,sad&std=0", ConfigError, r"option std must be 1 or 3 comma-separated positive"),
        ("ok", "?labels=happy,angry,sad&color=grey", ConfigError, r"\?color=grey but the input takes 3 channel"),
        ("ok", "?labels=happy,angry,sad&layout=nhwc", ModelError, r"input has 4 channels \(nhwc"),
        ("ok", "?labels=happy&labels_file=x.txt", ConfigError, r"give the labels once"),
        ("ok", "?labels_file=/no/such/labels.txt", ConfigError, r"cannot read labels file /no/such/labels\.txt"),
        ("ok", "?labels=happy,angry,sad&provider=tpu", ConfigError, r"option provider must be one of cpu, cuda"),
        ("ok", "?labels=happy,angry,sad&shape=4", ConfigError, r"unknown option\(s\) shape"),
        ("two-inputs", "?labels=happy,angry,sad", ModelError, r"the graph takes 2 inputs \(.*\); an image classifier"),
        ("dynamic", "?labels=happy,angry,sad", ModelError, r"has a dynamic height or width; give \?size=224"),
    ],
)
def test_mistakes_are_one_line_errors_naming_the_spec(files, kind, query, error, message):
    text = f"onnx:{files(kind)}{query}"
    with pytest.raises(error, match=message) as info:
        build(text)
    assert str(info.value).startswith(f"model '{text}'")
    assert "\n" not in str(info.value)


def test_an_absent_provider_names_the_available_ones(files):
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(
        ModelError, match=r"provider cuda was asked for but onnxruntime offers only .*CPUExecutionProvider"
    ):
        build(f"onnx:{files('ok')}?labels=happy,angry,sad&provider=cuda")


def test_without_onnxruntime_the_error_names_the_extra(files, monkeypatch):
    path = files("ok")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the onnx extra were not installed
    with pytest.raises(ConfigError) as info:
        build(f"onnx:{path}?labels=happy,angry,sad")
    assert str(info.value) == (
        "model kind 'onnx' needs the 'onnx' extra (onnxruntime is not installed): pip install 'fer-fairness[onnx]'"
    )


SUITE = """
import pytest
from fer_fairness.gate import gate

@pytest.mark.fairness("accuracy_gap")
def test_accuracy_gap(fairness_record):
    gate(fairness_record)
"""
SEVEN = ("angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")


def test_an_onnx_model_through_the_plugin(pytester, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = pytester.path / "cache"
    data = load_synthetic(cache_dir=cache, seed=0, progress=False)  # the set the run will find in its cache
    net = Net(1, (48, 48), 7, seed=3)
    path = export(net, pytester.path / "seven.onnx", (1, 1, 48, 48))
    pytester.mkdir("fairness_tests")
    (pytester.path / "fairness_tests" / "test_fair.py").write_text(SUITE)
    (pytester.path / "thresholds.toml").write_text('[groups]\nintersections = "none"\n')
    result = pytester.runpytest(
        "fairness_tests",
        f"--fairness-model=onnx:{path}?labels={','.join(SEVEN)}&mean=0.5&std=0.5&provider=cpu&name=seven",
        f"--fairness-cache-dir={cache}",
        "-p",
        "no:cacheprovider",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) == 0
    result.stdout.fnmatch_lines(["seven: 5880 calls, 0 cache hits*"])

    probabilities = oracle(net, data, mode="L", size=(48, 48), mean=(0.5,), std=(0.5,))
    canonical = np.array(["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"])
    samples = data.samples.assign(outcome=canonical[probabilities.argmax(axis=1)])
    assert samples["outcome"].nunique() > 1  # a model that always says one thing would test little
    document = json.loads((pytester.path / "reports" / "fairness.json").read_text())
    ran = sum(outcomes.get(k, 0) for k in ("passed", "failed", "skipped"))
    assert ran == len(document["tests"]) > 0
    assert {t["test_id"].split("|")[0] for t in document["tests"]} == {"seven"}
    tables = {t["attribute"]: t for t in document["run"]["counts"] if t["model"] == "seven"}
    for attribute in ("skin_tone", "gender"):
        table = tables[attribute]
        expected = np.zeros_like(np.asarray(table["counts"]))
        for row in samples.itertuples():
            group = table["groups"].index(getattr(row, attribute))
            expected[group, table["labels"].index(row.emotion), table["outcomes"].index(row.outcome)] += 1
        np.testing.assert_array_equal(np.asarray(table["counts"]), expected)
