"""Bringing your own: models, datasets and criteria registered from a conftest or an installed package.

Each project here is a user's repository (its own rootdir), with the package installed; the oracle
for every number is the project's data counted directly, never the suite's earlier output.
"""

import json
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer_fairness.criteria.catalogue import BUILTIN
from fer_fairness.errors import ConfigError
from fer_fairness.models import MODELS

GATE_TESTS = """
import pytest
from fer_fairness import gate

@pytest.mark.fairness("accuracy_gap")
def test_accuracy_gap(fairness_record):
    gate(fairness_record)
"""

# Black faces are read correctly 60 of 100 times, White faces 95 of 100 (the model reads the file name).
FACES = [(f"b{i}", "Black", "happiness" if i % 2 else "anger") for i in range(100)] + [
    (f"w{i}", "White", "happiness" if i % 2 else "anger") for i in range(100)
]


def _answer(sample_id: str, emotion: str) -> str:
    group, index = sample_id[0], int(sample_id[1:])
    wrong = (group == "b" and index % 5 < 2) or (group == "w" and index % 20 == 0)
    other = "anger" if emotion == "happiness" else "happiness"
    return other if wrong else emotion


def _project(pytester, conftest: str, tests: str = GATE_TESTS, thresholds: str = "") -> None:
    """A user's repository: faces.csv + images, a conftest, fairness tests, a policy."""
    images = pytester.path / "images"
    images.mkdir()
    rows = []
    for sample_id, race, emotion in FACES:
        # The image's pixel value encodes the answer the stand-in model gives (an independent oracle).
        answer = _answer(sample_id, emotion)
        Image.new("L", (4, 4), 200 if answer == "happiness" else 50).save(images / f"{sample_id}.png")
        rows.append(
            {
                "sample_id": sample_id,
                "path": f"images/{sample_id}.png",
                "emotion": emotion,
                "subject_id": sample_id,
                "race": race,
            }
        )
    pd.DataFrame(rows).to_csv(pytester.path / "faces.csv", index=False)
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\ntestpaths = ["fairness_tests"]\n')
    pytester.makeconftest(textwrap.dedent(conftest))
    (pytester.path / "fairness_tests").mkdir()
    (pytester.path / "fairness_tests" / "test_gate.py").write_text(textwrap.dedent(tests))
    policy = '[groups]\nintersections = "none"\n[reference]\nrace = "White"\n[settings]\nmin_group_size = 10\n'
    policy += textwrap.dedent(thresholds)
    (pytester.path / "thresholds.toml").write_text(policy)


CONFTEST = """
import numpy as np
import fer_fairness

def bright_is_happy(images):
    return ["Happy" if np.asarray(image).mean() > 128 else "ANGRY" for image in images]

def pytest_fairness_models(config):
    return {"mine": fer_fairness.BatchModel("mine", bright_is_happy, version="1")}

def pytest_fairness_datasets(config):
    return {"faces": lambda spec: fer_fairness.manifest("faces.csv", name="faces", **spec.options)}
"""


def _run(pytester, *args: str):
    return pytester.runpytest_subprocess(
        "--fairness-model=mine", "--fairness-dataset=faces", "-p", "no:cacheprovider", *args
    )


def _records(pytester) -> list[dict]:
    return json.loads((pytester.path / "reports" / "fairness.json").read_text())["tests"]


def test_a_conftest_model_and_dataset_are_gated_like_the_built_in_ones(pytester):
    _project(pytester, CONFTEST)
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    (gap,) = [r for r in _records(pytester) if r["criterion"] == "accuracy_gap"]
    assert gap["test_id"] == "mine|faces|race=Black~White"
    assert gap["rates"] == {"Black": pytest.approx(0.60), "White": pytest.approx(0.95)}
    assert gap["verdict"] == "FAIL"
    # version given: a re-run answers from the cache and asks the model nothing
    again = _run(pytester)
    again.stdout.fnmatch_lines(["*mine: 0 calls, 200 cache hits*"])


def test_a_user_criterion_is_corrected_decided_and_reported_like_the_built_in_ones(pytester):
    conftest = (
        CONFTEST
        + """
def _anger_missed(counts, tensor, _detail):
    anger = counts[..., tensor.labels.index("anger"), :]
    evaluated = anger[..., tensor.evaluated_mask()].sum(axis=-1)
    return evaluated - anger[..., tensor.outcomes.index("anger")], evaluated

def pytest_fairness_criteria(config):
    return [fer_fairness.rate_gap("anger_missed", _anger_missed, metric="anger miss rate difference",
                                  tolerance=0.1, denominator="anger faces (evaluated)")]
"""
    )
    tests = (
        GATE_TESTS
        + """
@pytest.mark.fairness("anger_missed")
def test_anger_missed(fairness_record):
    gate(fairness_record)
"""
    )
    _project(pytester, conftest, tests, thresholds='[criteria.anger_missed]\nowner = "us"\n')
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    records = {r["criterion"]: r for r in _records(pytester)}
    own = records["anger_missed"]
    # The oracle: anger faces answered wrongly, per group, counted from the faces themselves.
    faces = pd.DataFrame(FACES, columns=["sample_id", "race", "emotion"])
    faces["answer"] = [_answer(s, e) for s, e in zip(faces["sample_id"], faces["emotion"], strict=True)]
    anger = faces[faces["emotion"] == "anger"]
    missed = (anger["answer"] != "anger").groupby(anger["race"]).mean()
    assert own["rates"] == {"Black": pytest.approx(missed["Black"]), "White": pytest.approx(missed["White"])}
    assert own["estimate"] == pytest.approx(missed["Black"] - missed["White"])
    assert own["owner"] == "us" and own["threshold"] and own["band_high"] == pytest.approx(0.1)
    # corrected with the built-in ones: the gate's alpha is shared by the criteria that can decide here (the
    # built-in ones but no_regression, which needs a baseline, and the score criteria, since this model gives
    # labels only), plus this one
    assert own["family"] == "anger_missed|mine|faces" and own["verdict"] in ("FAIL", "INCONCLUSIVE")
    tested = sum(1 for c in BUILTIN if c.requires not in ("baseline", "scores", "counterfactual", "perturbations")) + 1
    assert records["accuracy_gap"]["confidence_nominal"] == pytest.approx(1 - 0.05 / tested)


@pytest.mark.parametrize(
    ("conftest", "message"),
    [
        ("def pytest_fairness_models(config):\n    return ['mine']\n", "*must return a mapping of model kind*"),
        (
            "def pytest_fairness_models(config):\n    return {'predictions': object()}\n",
            "*registers model kind 'predictions', which fer-fairness already defines*",
        ),
        ("def pytest_fairness_models(config):\n    return {'my model': object()}\n", "*kind 'my model'; a kind is*"),
        (
            "def pytest_fairness_models(config):\n    raise KeyError('weights')\n",
            "*pytest_fairness_models in *failed: KeyError*",
        ),
        (
            "def pytest_fairness_criteria(config):\n    return ['accuracy_gap']\n",
            "*gave str 'accuracy_gap'; a criterion is a fer_fairness.Criterion*",
        ),
        (
            "import fer_fairness\n"
            "def pytest_fairness_criteria(config):\n"
            "    return [fer_fairness.rate_gap('accuracy_gap', lambda c, t, d: (c, c), metric='m')]\n",
            "*defines criterion 'accuracy_gap', which fer-fairness defines*",
        ),
        (
            "import fer_fairness\n"
            "def pytest_fairness_criteria(config):\n"
            "    return [fer_fairness.rate_gap('Gap!', lambda c, t, d: (c, c), metric='m')]\n",
            "*criterion name 'Gap!' must be lower-case*",
        ),
    ],
    ids=["not-a-mapping", "built-in-kind", "bad-kind", "hook-raises", "not-a-criterion", "criterion-clash", "bad-name"],
)
def test_registration_mistakes_are_one_usage_line(pytester, conftest, message):
    _project(pytester, conftest)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize(
    ("model", "args", "message"),
    [
        ("object()", ["--fairness-model=mine"], "*gave object, which lacks a non-empty str name, describe()*"),
        (
            "fer_fairness.BatchModel('mine', lambda images: ['purple'] * len(images))",
            ["--fairness-model=mine"],
            "*answered 'purple', which names no emotion*",
        ),
        (
            "fer_fairness.BatchModel('mine', lambda images: 1 / 0)",
            ["--fairness-model=mine"],
            "*predict_batch failed on a batch of *: ZeroDivisionError*",
        ),
        (
            "fer_fairness.BatchModel('mine', lambda images: [[1, 2]] * len(images), labels=['happy', 'angry', 'sad'])",
            ["--fairness-model=mine"],
            "*returned (*, 2) for * images; with labels given it must return one row of 3 scores*",
        ),
        (
            "fer_fairness.BatchModel('mine', str, labels=['happy', 'joy'])",
            ["--fairness-model=mine"],
            "*two labels name one emotion*",
        ),
        (
            "fer_fairness.BatchModel('mine', str)",
            ["--fairness-model=mine:v2"],
            "*is a ready model; it takes no target*",
        ),
        (
            "fer_fairness.BatchModel('mine', str)",
            ["--fairness-model=mien"],
            "*unknown model kind 'mien'*did you mean 'mine'*",
        ),
    ],
    ids=[
        "no-contract",
        "unknown-label",
        "model-raises",
        "wrong-width",
        "repeated-emotion",
        "options-on-object",
        "typo",
    ],
)
def test_a_broken_user_model_is_one_usage_line(pytester, model, args, message):
    conftest = f"""
import fer_fairness

def pytest_fairness_models(config):
    return {{"mine": {model}}}

def pytest_fairness_datasets(config):
    return {{"faces": lambda spec: fer_fairness.manifest("faces.csv", name="faces")}}
"""
    _project(pytester, conftest)
    result = pytester.runpytest_subprocess("--fairness-dataset=faces", "-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_dataset_object_from_a_conftest_is_checked_like_a_manifest(pytester):
    conftest = """
import pandas as pd
import fer_fairness

def pytest_fairness_datasets(config):
    samples = pd.DataFrame({"sample_id": ["a", "b"], "path": ["a.png", "b.png"], "emotion": ["anger", "glee"],
                            "subject_id": ["a", "b"], "race": ["x", "y"]})
    return {"odd": fer_fairness.Dataset(name="odd", root=".", samples=samples, attributes=("race",),
                                         emotions=("anger",))}
"""
    _project(pytester, conftest)
    result = pytester.runpytest_subprocess("--fairness-dataset=odd", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: dataset 'odd': emotion label(s) 'glee' are not in the vocabulary*"])


ADAPTER = '''
import pandas as pd
import fer_fairness

class AcmeModel:
    """A third party's adapter: answers by the image's brightness, like the conftest model above."""

    def __init__(self, spec):
        self.name = spec.option("name") or "acme"

    def describe(self):
        return {"kind": "acme"}

    def predict(self, dataset, *, context):
        import numpy as np
        from PIL import Image
        answers = []
        for path in dataset.samples["path"]:
            with Image.open(dataset.root / path) as image:
                answers.append("happiness" if np.asarray(image).mean() > 128 else "anger")
        return pd.DataFrame({"sample_id": dataset.samples["sample_id"], "outcome": answers, "raw": answers})

def acme_missed(counts, tensor, detail):
    evaluated = counts[..., tensor.evaluated_mask()].sum(axis=(-2, -1))
    return evaluated - (counts * tensor.correct_mask()).sum(axis=(-2, -1)), evaluated

ERROR_RATE = fer_fairness.rate_gap("acme_error_rate", acme_missed, metric="error rate difference", tolerance=0.05)
'''


def test_an_installed_package_registers_a_model_and_a_criterion_by_entry_point(pytester, monkeypatch):
    """A throwaway distribution on the path (its dist-info holds the entry points), as pip would install it."""
    site = pytester.path / "site"
    (site / "acme_fer").mkdir(parents=True)
    (site / "acme_fer" / "__init__.py").write_text(ADAPTER)
    info = site / "acme_fer-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-fer\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[fer_fairness.models]\nacme = acme_fer:AcmeModel\n\n"
        "[fer_fairness.criteria]\nerror_rate = acme_fer:ERROR_RATE\n"
    )
    tests = (
        GATE_TESTS
        + """
@pytest.mark.fairness("acme_error_rate")
def test_acme_error_rate(fairness_record):
    gate(fairness_record)
"""
    )
    _project(pytester, CONFTEST, tests)
    monkeypatch.setenv("PYTHONPATH", str(site))
    result = pytester.runpytest_subprocess(
        "--fairness-model=acme", "--fairness-dataset=faces", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str() + result.stderr.str()
    records = {r["criterion"]: r for r in _records(pytester)}
    assert records["accuracy_gap"]["test_id"] == "acme|faces|race=Black~White"
    assert records["accuracy_gap"]["rates"] == {"Black": pytest.approx(0.60), "White": pytest.approx(0.95)}
    # error rate = 1 - accuracy, from the same faces
    assert records["acme_error_rate"]["rates"] == {"Black": pytest.approx(0.40), "White": pytest.approx(0.05)}
    # a typo among installed kinds is helped like a built-in one
    typo = pytester.runpytest_subprocess("--fairness-model=acm", "--fairness-dataset=faces", "-p", "no:cacheprovider")
    typo.stderr.fnmatch_lines(["ERROR: unknown model kind 'acm'*did you mean 'acme'*acme[[]:TARGET]*"])


def test_fairness_record_is_listed_with_help_and_asks_for_its_marker(pytester):
    _project(pytester, CONFTEST, "def test_unmarked(fairness_record):\n    pass\n")
    listed = _run(pytester, "--fixtures")
    listed.stdout.fnmatch_lines(["fairness_record*", "*One fairness test's verdict record*"])
    result = _run(pytester)
    result.stdout.fnmatch_lines(["*asks for fairness_record but has no fairness marker*"])


@pytest.mark.parametrize(
    ("spec", "blocked", "extra"),
    [
        ("clip-zeroshot:ViT-B-32@openai", "torch", "clip"),
        ("clip-probe:ViT-B-32@openai", "open_clip", "clip"),
        ("paligemma:google/paligemma-3b-mix-224", "transformers", "paligemma"),
        ("onnx:model.onnx?labels=happy,angry", "onnxruntime", "onnx"),
        ("hf-classifier:org/fer-vit", "transformers", "hf"),
        ("openai:gpt-4o", "openai", "openai"),
        ("gemini:gemini-2.0-flash", "google.genai", "gemini"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(monkeypatch, tmp_path, spec, blocked, extra):
    """Each adapter built with its library absent (a None in sys.modules makes its import fail)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"not really")
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    for name in [m for m in list(sys.modules) if m == blocked or m.startswith(blocked + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, blocked, None)
    with pytest.raises(ConfigError) as caught:
        MODELS.build(MODELS.parse(spec))
    assert str(caught.value).endswith(f"pip install 'fer-fairness[{extra}]'")
    assert f"needs the '{extra}' extra" in str(caught.value)


def test_every_built_in_criterion_is_defined_once_with_its_test():
    """One place per criterion: its definition, and a marked test in fairness_tests/."""
    from pathlib import Path

    tests = "".join(p.read_text() for p in (Path(__file__).parents[2] / "fairness_tests").glob("test_*.py"))
    names = [c.name for c in BUILTIN]
    assert len(set(names)) == len(names)
    for name in names:
        assert f'@pytest.mark.fairness("{name}")' in tests


def test_rate_gap_selectors_see_group_and_person_slices_alike():
    """A selector is written once for (..., T, O); groups and persons are both such slices."""
    from fer_fairness.counts import CountTensor
    from fer_fairness.criteria.catalogue import correct

    t = CountTensor(
        attribute="race",
        groups=("a",),
        labels=("anger", "happiness"),
        outcomes=("anger", "happiness", "refused", "unparseable", "error"),
        counts=np.array([[[3, 1, 1, 0, 2], [0, 4, 0, 0, 0]]]),
    )
    x, n = correct(t.counts[0], t, None)
    assert (int(x), int(n)) == (7, 9)  # 3 + 4 right; 2 not evaluated are in no denominator
    xs, ns = correct(t.counts, t, None)
    assert xs.tolist() == [7] and ns.tolist() == [9]
