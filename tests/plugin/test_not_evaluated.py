"""A sample whose answer never arrived was not evaluated: counted per group, never scored, and above
settings.max_not_evaluated the run stops with one line; a re-run asks the API only for what is missing."""

import hashlib
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer_fairness.counts import build_counts
from fer_fairness.errors import ModelError
from fer_fairness.evaluated import check_evaluated, count_not_evaluated
from tests.models.fake_api import FakeAPI
from tests.studies import write_study

FAIRNESS_TESTS = """
import pytest
from fer_fairness.gate import gate

@pytest.mark.fairness("accuracy_gap")
def test_accuracy_gap(fairness_record):
    gate(fairness_record)
"""


# -- the two functions, against direct counts --------------------------------------------------------


def outcomes(kinds: list[str], raw: list[str] | None = None) -> pd.DataFrame:
    raw = raw if raw is not None else kinds
    return pd.DataFrame({"sample_id": [f"s{i}" for i in range(len(kinds))], "outcome": kinds, "raw": raw})


API_MODEL = SimpleNamespace(name="gpt-x", usage=dict)  # an adapter with usage() calls an API and caches
FILE_MODEL = SimpleNamespace(name="vendor")


@pytest.mark.parametrize(
    ("errors", "total", "limit", "stops"),
    [
        (1, 100, 0.01, False),  # exactly at the limit: goes on
        (2, 100, 0.01, True),
        (0, 100, 0.0, False),
        (1, 100, 0.0, True),  # limit 0: any sample not evaluated stops the run
        (100, 100, 1.0, False),  # limit 1: never stops (the report still shows them)
    ],
)
def test_the_limit_is_a_share_of_the_model_x_dataset(errors, total, limit, stops):
    table = outcomes(["error"] * errors + ["anger"] * (total - errors))
    if not stops:
        check_evaluated(table, model=API_MODEL, dataset="d", limit=limit)
        return
    with pytest.raises(ModelError) as info:
        check_evaluated(table, model=API_MODEL, dataset="d", limit=limit)
    assert f"left {errors} of {total} samples of dataset 'd' not evaluated" in str(info.value)


def test_refusals_and_unparseable_answers_are_the_models_and_never_stop_the_run():
    table = outcomes(["refused"] * 50 + ["unparseable"] * 50)
    check_evaluated(table, model=API_MODEL, dataset="d", limit=0.0)


def test_the_message_quotes_the_first_failure_and_says_what_a_rerun_does():
    raw = ["anger", json.dumps({"error": "server", "message": "HTTP 503:\nunavailable", "attempts": 6}), "x"]
    with pytest.raises(ModelError) as info:
        check_evaluated(outcomes(["anger", "error", "error"], raw), model=API_MODEL, dataset="faces", limit=0.01)
    assert str(info.value) == (
        "model 'gpt-x' left 2 of 3 samples of dataset 'faces' not evaluated (transport failures, e.g. HTTP 503: "
        "unavailable); above settings.max_not_evaluated = 0.01 the run stops. Answers received so far are cached: "
        "a re-run asks only for the 2 missing samples."
    )
    with pytest.raises(ModelError) as info:
        check_evaluated(outcomes(["error", "anger"]), model=FILE_MODEL, dataset="faces", limit=0.01)
    assert str(info.value) == (
        "model 'vendor' left 1 of 2 samples of dataset 'faces' not evaluated (transport failures); above "
        "settings.max_not_evaluated = 0.01 the run stops. Supply answers for the 1 samples marked 'error', "
        "or raise the limit."
    )


def test_counts_per_group_equal_a_direct_count_of_the_rows():
    rng = np.random.default_rng(7)
    n = 400
    joined = pd.DataFrame(
        {
            "race": rng.choice(["Black", "White", "Asian"], n),
            "gender": rng.choice(["female", "male"], n),
            "emotion": rng.choice(["anger", "happiness"], n),
            "outcome": rng.choice(["anger", "happiness", "refused", "error"], n, p=[0.4, 0.4, 0.1, 0.1]),
            "subject_id": [f"p{i}" for i in range(n)],
        }
    )
    labels = ("anger", "happiness")
    tables = [
        SimpleNamespace(model="m", dataset="d", tensor=build_counts(joined, attributes=a, labels=labels))
        for a in (("race",), ("gender",), ("race", "gender"))
    ]
    expected = {
        attribute: {
            group: int(((joined[attribute] == group) & (joined["outcome"] == "error")).sum())
            for group in sorted(joined[attribute].unique())
        }
        for attribute in ("race", "gender")
    }
    assert count_not_evaluated(tables) == {"m": {"d": expected}}  # intersections are left to the margins


# -- through the plugin, against a fake API server ---------------------------------------------------


def api_study(root, per_group: int) -> tuple[str, list[str], dict[str, str]]:
    """A manifest of 2 * per_group distinct images (group majority / minority); returns its path, the
    image digests in sample order and each digest's true emotion."""
    cells = [({"group": g}, e, e, per_group // 2) for g in ("majority", "minority") for e in ("anger", "happiness")]
    manifest, _ = write_study(root, cells)
    samples = pd.read_csv(manifest)
    digests, truth = [], {}
    for i, row in enumerate(samples.itertuples()):
        path = root / row.path
        Image.new("RGB", (2, 2), color=(i % 256, i // 256, 7)).save(path)  # distinct: one question per image
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        digests.append(digest)
        truth[digest] = row.emotion
    return str(manifest), digests, truth


def api_args(pytester, manifest: str) -> list[str]:
    pytester.mkdir("fairness_tests")
    (pytester.path / "fairness_tests" / "test_api.py").write_text(FAIRNESS_TESTS)
    (pytester.path / "thresholds.toml").write_text('[groups]\nintersections = "none"\n')
    return [
        "fairness_tests",
        f"--fairness-dataset=manifest:{manifest}?name=faces",
        "--fairness-model=openai:gpt-fake",
        "--fairness-concurrency=8",
        "--fairness-max-retries=0",  # a 500 fails at once: no backoff to wait for
        "-p",
        "no:cacheprovider",
    ]


@pytest.fixture
def openai_env(monkeypatch):
    pytest.importorskip("openai")

    def connect(api: FakeAPI) -> None:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{api.url}/v1")

    return connect


def test_a_total_outage_stops_the_run_and_passes_nothing(pytester, openai_env):
    manifest, _, _ = api_study(pytester.path, per_group=40)
    with FakeAPI(default=lambda image: "500") as api:
        openai_env(api)
        result = pytester.runpytest_subprocess(*api_args(pytester, manifest))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: model 'gpt-fake' left 80 of 80 samples of dataset 'faces' not evaluated (transport failures, "
            "e.g. HTTP 500: *); above settings.max_not_evaluated = 0.01 the run stops. Answers received so far are "
            "cached: a re-run asks only for the 80 missing samples."
        ]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "reports" / "fairness.json").exists()


def test_failures_are_never_cached_so_a_rerun_asks_only_for_them(pytester, openai_env):
    manifest, digests, truth = api_study(pytester.path, per_group=40)
    with FakeAPI(default=lambda image: f"answer:{truth[image]}") as api:
        for digest in digests[::4]:  # 20 of 80 images: the server fails once
            api.script(digest, "500")
        openai_env(api)
        args = api_args(pytester, manifest)
        first = pytester.runpytest_subprocess(*args)
        assert first.ret == pytest.ExitCode.USAGE_ERROR
        first.stderr.fnmatch_lines(["ERROR: model 'gpt-fake' left 20 of 80 samples of dataset 'faces' not evaluated*"])
        assert api.count() == 80
        second = pytester.runpytest_subprocess(*args)
        assert api.count() == 100  # the 60 answers came from the cache; only the 20 failures were asked again
        assert {c.image for c in api.calls[80:]} == set(digests[::4])
    assert second.ret == pytest.ExitCode.OK  # evaluated: 80 of 80 answered, so the run went on
    second.stdout.fnmatch_lines(["1 fairness tests: *", "gpt-fake: 20 calls, 60 cache hits*"])
    assert "not evaluated" not in second.stdout.str()
    facts = json.loads((pytester.path / "reports" / "fairness.json").read_text())["run"]
    assert facts["not_evaluated"] == {"gpt-fake": {"faces": {"group": {"majority": 0, "minority": 0}}}}


def test_one_failure_in_500_is_shown_per_group_and_the_run_goes_on(pytester, openai_env):
    manifest, digests, truth = api_study(pytester.path, per_group=250)
    samples = pd.read_csv(manifest)
    failing = digests[int(np.flatnonzero(samples["group"] == "minority")[0])]
    with FakeAPI(default=lambda image: f"answer:{truth[image]}") as api:
        api.script(failing, "500")
        openai_env(api)
        result = pytester.runpytest_subprocess(*api_args(pytester, manifest))
        assert api.count() == 500
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "gpt-fake on faces: 1 samples not evaluated (no answer arrived; never scored), by group: minority 1",
            "fer-fairness decision: GATE OPEN: 0 FAIL, 1 PASS, 0 INCONCLUSIVE",
        ]
    )
    facts = json.loads((pytester.path / "reports" / "fairness.json").read_text())["run"]
    assert facts["not_evaluated"] == {"gpt-fake": {"faces": {"group": {"majority": 0, "minority": 1}}}}
    page = (pytester.path / "reports" / "fairness.html").read_text()
    assert "Not evaluated" in page and "minority: 1" in page
