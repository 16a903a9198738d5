"""The pytest plugin: hooks only. The run lives in session.RunState, the reports in report/."""

from __future__ import annotations

import argparse
import difflib
import math
import sys
import warnings
from pathlib import Path

import pytest

from fer_fairness import hooks
from fer_fairness.config import load_thresholds
from fer_fairness.criteria import catalogue
from fer_fairness.criteria.records import Planned, Record
from fer_fairness.datasets import DATASETS
from fer_fairness.errors import ConfigError, DatasetWarning, FairnessError
from fer_fairness.models import MODELS
from fer_fairness.report.collector import ReportCollector, xml_name
from fer_fairness.session import RunState
from fer_fairness.specs import Registry

STATE = pytest.StashKey[RunState]()
FAIRNESS_RUN = pytest.StashKey[bool]()
JUNIT_FAMILY_KEY = "fer_fairness_junit_family"
OWN_JUNIT = pytest.StashKey[bool]()  # junit.xml is the plugin's default one (not the user's --junitxml)
HANDOFF = pytest.StashKey[Path]()  # the controller's evaluated records, for xdist workers to read
HANDOFF_KEY = "fer_fairness_handoff"  # xdist workerinput key: where the controller's records are
PLANNED = pytest.StashKey[int]()  # fairness tests collected, counted before -k / --lf deselect any
MARKER_ERRORS = pytest.StashKey[list[str]]()  # mistyped fairness markers, reported once collection ends
FACTS_KEY = "fer_fairness_facts"  # xdist workeroutput key: run facts travel from workers to the controller
PLANNED_KEY = "fer_fairness_planned"  # xdist workeroutput key: how many fairness tests a worker collected
RECORD_ARG = "fairness_record"
RECORD = pytest.StashKey[Record]()  # the record a fairness test was given, for its report


def _number(kind: type, *, low: float, words: str, high: float = math.inf):
    """An argparse type: the value as ``kind``, finite and in [low, high], else the user's value quoted."""

    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or not low <= number < math.inf or number > high:  # NaN fails; 'inf' never times out
            raise argparse.ArgumentTypeError(f"must be {words}, got {value!r}")
        return number

    return parse


_seed = _number(int, low=0, words="a non-negative integer")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fairness", "fer-fairness: demographic fairness gate for FER models")
    group.addoption(
        "--fairness-dataset",
        action="append",
        default=[],
        metavar="SPEC",
        help="dataset to evaluate, repeatable: "
        + ", ".join(DATASETS.usage.values())
        + " (options after ?, e.g. manifest:faces.csv?name=N&emotion=COL; default: synthetic, a generated face set)",
    )
    group.addoption(
        "--fairness-model",
        action="append",
        default=[],
        metavar="SPEC",
        help="model under test, repeatable: "
        + ", ".join(MODELS.usage.values())
        + " (options after ?, e.g. ?name=N; default: hog-probe, a linear probe on HOG features)",
    )
    group.addoption(
        "--fairness-thresholds",
        metavar="PATH",
        help="policy file (default: thresholds.toml at the rootdir; built-in defaults if there is none)",
    )
    group.addoption("--fairness-report-dir", metavar="DIR", help="where reports go (default: reports/ at the rootdir)")
    group.addoption(
        "--fairness-engine",
        metavar="ENGINE",
        help="where local models (onnx, hf-classifier, clip, paligemma, conftest BatchModels) infer: local "
        "(default), ray (a local Ray instance) or ray:ADDRESS (a cluster), with ?actors=N&gpus=G",
    )
    group.addoption(
        "--fairness-baseline",
        metavar="PATH",
        help="an earlier run's fairness.json (or its folder): adds no_regression tests, each gap against the "
        "baseline's, paired where both runs answered the same images",
    )
    group.addoption(
        "--fairness-seed", type=_seed, metavar="N", help="seed for Monte Carlo tests and models (default: 0)"
    )
    group.addoption(
        "--fairness-cache-dir",
        metavar="DIR",
        help="cache for generated data, embeddings and predictions (default: .fairness-cache at the rootdir)",
    )
    group.addoption(
        "--fairness-concurrency",
        # More threads than this is a typo (4000 for 40) opening thousands of connections; NaN is refused.
        type=_number(int, low=1, high=256, words="an integer from 1 to 256"),
        default=4,
        metavar="N",
        help="API models: requests in flight at once, 1 to 256 (default: 4)",
    )
    group.addoption(
        "--fairness-timeout",
        type=_number(float, low=0.001, words="a positive number of seconds"),
        default=60.0,
        metavar="SECONDS",
        help="API models: timeout per request (default: 60)",
    )
    group.addoption(
        "--fairness-max-retries",
        type=_number(int, low=0, words="a non-negative integer"),
        default=5,
        metavar="N",
        help="API models: retries of 429 / 5xx / timeouts, with backoff and jitter (default: 5)",
    )
    group.addoption(
        "--fairness-budget-tokens",
        type=_number(int, low=1, words="a positive integer"),
        metavar="N",
        help="API models: stop cleanly, all answers so far cached, once this many tokens are used (default: no limit)",
    )
    parser.addini(
        "fairness_testpaths",
        type="args",
        default=["fairness_tests"],
        help="folders holding fairness tests; runs that target them write JUnit by default",
    )


def _path(config: pytest.Config, value: str | None, default: str) -> Path:
    if value is None:
        return config.rootpath / default
    return config.invocation_params.dir / Path(value).expanduser()


def _is_fairness_run(config: pytest.Config) -> bool:
    """A run is a fairness run when a --fairness option is given or its targets reach a fairness folder."""
    o = config.option
    if any((o.fairness_dataset, o.fairness_model, o.fairness_thresholds, o.fairness_report_dir, o.fairness_baseline)):
        return True
    # Only folders that exist: a project without fairness tests must not notice the installed plugin.
    folders = [(config.rootpath / name).resolve() for name in config.getini("fairness_testpaths")]
    folders = [f for f in folders if f.is_dir()]
    for arg in config.args:
        target = Path(arg.split("::")[0])
        for base in (config.invocation_params.dir, config.rootpath):
            resolved = (base / target).resolve()
            if any(resolved == f or f in resolved.parents or resolved in f.parents for f in folders):
                return True
    return False


@pytest.hookimpl(tryfirst=True)  # before junitxml reads --junitxml, so our default is seen
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fairness(criterion): a fairness criterion test fed by fer-fairness")
    o = config.option
    _check_rootdir(config)
    if o.fairness_thresholds is None:
        default = config.rootpath / "thresholds.toml"
        thresholds_path = default if default.is_file() else None
    else:
        thresholds_path = _path(config, o.fairness_thresholds, "thresholds.toml")
    report_dir = _path(config, o.fairness_report_dir, "reports")
    try:
        state = RunState.from_options(
            thresholds=load_thresholds(thresholds_path, criteria=_criteria(config)),
            datasets=o.fairness_dataset,
            models=o.fairness_model,
            dataset_registry=_registry(config, DATASETS, config.hook.pytest_fairness_datasets),
            model_registry=_registry(config, MODELS, config.hook.pytest_fairness_models),
            seed=o.fairness_seed or 0,
            cache_dir=_path(config, o.fairness_cache_dir, ".fairness-cache"),
            report_dir=report_dir,
            progress="bar" if sys.stderr.isatty() else "lines",  # a CI log gets plain periodic lines
            limits={
                "concurrency": o.fairness_concurrency,
                "timeout_s": o.fairness_timeout,
                "max_retries": o.fairness_max_retries,
                "budget_tokens": o.fairness_budget_tokens,
            },
        )
    except FairnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[STATE] = state
    config.stash[FAIRNESS_RUN] = _is_fairness_run(config)
    if o.fairness_engine:
        from fer_fairness.engines import parse_engine

        try:
            state.engine = parse_engine(o.fairness_engine)
        except FairnessError as exc:
            raise pytest.UsageError(str(exc)) from None
    if o.fairness_baseline:
        from fer_fairness.baseline import load_baseline

        try:
            state.baseline = load_baseline(_path(config, o.fairness_baseline, "fairness.json"))
        except FairnessError as exc:
            raise pytest.UsageError(str(exc)) from None
    if config.stash[FAIRNESS_RUN]:
        _check_fairness_run(state, {"report": report_dir, "cache": state.cache_dir})
    if hasattr(config, "workerinput"):  # xdist worker: the controller writes every report
        return
    # --collect-only runs no test: a junit.xml of tests="0" would replace the last real one.
    if config.stash[FAIRNESS_RUN] and getattr(o, "xmlpath", None) is None and not o.collectonly:
        o.xmlpath = str(report_dir / "junit.xml")
        config.stash[OWN_JUNIT] = True
    collector = ReportCollector(config, state=state, facts_key=FACTS_KEY, planned_key=PLANNED_KEY, planned=PLANNED)
    config.pluginmanager.register(collector, "fer_fairness_report")


CRITERIA_GROUP = "fer_fairness.criteria"  # entry points of installed packages' criteria


def junit_family(config: pytest.Config) -> str:
    """The JUnit family junit.xml is written in: "xunit1" or "xunit2".

    Per-test ``<properties>`` (our verdict, interval and n per test) are valid only in xunit1: the
    xunit2 schema (Jenkins' junit-10.xsd, pytest's default family) has none inside ``<testcase>``.
    So the junit.xml this plugin writes by default is xunit1, unless the project sets
    ``junit_family``; a user's own ``--junitxml`` keeps pytest's family, and under xunit2 a verdict
    shows in the message prefix (``INCONCLUSIVE: ``, ``FAIL: ``) and in fairness.json.
    """
    given = getattr(config, "workerinput", {}).get(JUNIT_FAMILY_KEY)
    if given is not None:  # an xdist worker: the controller decided (it writes the file)
        return given
    overrides = getattr(config.option, "override_ini", None) or ()
    # Whether the project set it at all (getini cannot tell an explicit "xunit2" from the default);
    # pytest 9 deprecates the public config.inicfg for the same mapping.
    ini = getattr(config, "_inicfg", None)
    configured = "junit_family" in (ini if ini is not None else config.inicfg) or any(
        o.split("=", 1)[0].strip() == "junit_family" for o in overrides
    )
    own = config.stash.get(OWN_JUNIT, False)
    family = config.getini("junit_family") if configured or not own else "xunit1"
    return "xunit1" if family == "legacy" else family


def _set_junit_family(config: pytest.Config) -> None:
    # pytest's junitxml made its writer in pytest_configure from the ini family; ours is decided here.
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover - a future pytest without it keeps its own family
        return
    xml = config.stash.get(xml_key, None)
    if xml is not None:
        xml.family = junit_family(config)


def _implementations(config: pytest.Config, hook) -> list[tuple[str, object]]:
    """What each implementation of one of our hooks returned, with where it lives (for messages)."""
    results = []
    for impl in hook.get_hookimpls():
        where = f"{hook.name} in {impl.plugin_name}"
        kwargs = {"config": config} if "config" in impl.argnames else {}
        try:
            result = impl.function(**kwargs)
        except FairnessError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        except Exception as exc:  # the user's code failed: one line naming it, not a traceback
            raise ConfigError(f"{where} failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from exc
        if result is not None:
            results.append((where, result))
    return results


def _registry(config: pytest.Config, registry: Registry, hook) -> Registry:
    for where, added in _implementations(config, hook):
        registry = registry.with_added(added, source=where)
    return registry


def _criteria(config: pytest.Config) -> list[catalogue.Criterion]:
    """The built-in criteria, then installed packages' (entry points), then the conftest hooks'."""
    from importlib.metadata import entry_points

    criteria = list(catalogue.BUILTIN)
    for point in entry_points(group=CRITERIA_GROUP):
        where = f"entry point '{point.name}' of {getattr(point.dist, 'name', point.value)} ({CRITERIA_GROUP})"
        try:
            loaded = point.load()
        except Exception as exc:
            raise pytest.UsageError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}") from None
        loaded = loaded if isinstance(loaded, list | tuple) else [loaded]
        criteria += catalogue.check(loaded, source=where, known=criteria)
    for where, added in _implementations(config, config.hook.pytest_fairness_criteria):
        added = [added] if isinstance(added, catalogue.Criterion) else added
        if isinstance(added, str | bytes) or not hasattr(added, "__iter__"):
            raise ConfigError(f"{where} must return criteria (a list of fer_fairness.Criterion); got {added!r}")
        criteria += catalogue.check(added, source=where, known=criteria)
    return criteria


_PATH_OPTIONS = (
    "--fairness-thresholds",
    "--fairness-report-dir",
    "--fairness-cache-dir",
    "--fairness-dataset",
    "--fairness-baseline",
)


def _check_rootdir(config: pytest.Config) -> None:
    """A path option's value given as a separate word must not have chosen pytest's rootdir.

    pytest picks the rootdir before installed plugins add their options, so the value of
    ``--fairness-cache-dir PATH`` reads as a test path; the rootdir, and with it the default
    thresholds.toml, can then come from PATH's folder. The policy must be the one the user meant.
    """
    if config.option.rootdir:
        return
    root = config.rootpath.resolve()
    here = config.invocation_params.dir
    targets = [(here / a.split("::")[0]).resolve() for a in config.args] + [here.resolve()]
    if any(t == root or root in t.parents for t in targets):
        return  # the rootdir holds what is run, or where it is run from: the user's project
    args = list(config.invocation_params.args)
    for flag, value in zip(args, args[1:], strict=False):
        if flag not in _PATH_OPTIONS:
            continue
        target = (here / value.split(":", 1)[-1].split("?")[0]).resolve()
        if target == root or root in target.parents:
            raise pytest.UsageError(
                f"pytest took its rootdir {root} from the value of {flag} given as a separate word, so the "
                f"policy and reports would come from there; write {flag}={value} (or pass --rootdir)"
            )


def _check_fairness_run(state: RunState, folders: dict[str, Path]) -> None:
    """Mistakes that would otherwise surface only after every test ran, or never: usage errors now."""
    thresholds = state.thresholds
    if not thresholds.enabled():
        raise pytest.UsageError(
            f"every criterion is disabled in {thresholds.source}; enable at least one (enabled = true) to gate on it"
        )
    # These folders are made when first written to (the reports, junit.xml among them, after every test
    # ran); a file in the way would fail only then, with a traceback.
    for kind, wanted in folders.items():
        for folder in (wanted, *wanted.parents):
            if folder.exists():
                if not folder.is_dir():
                    raise pytest.UsageError(
                        f"{kind} folder {wanted} cannot be made: {folder} is a file (set --fairness-{kind}-dir)"
                    )
                break


@pytest.hookimpl(tryfirst=True)  # on an xdist controller: before workers start, so they find warm caches
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    _set_junit_family(config)
    if config.stash[FAIRNESS_RUN]:
        # Datasets load and models are built now, so their mistakes are usage errors; no model is asked
        # anything until the selected tests are known (pytest_collection_finish).
        xdist_controller = config.pluginmanager.hasplugin("dsession")
        try:
            _prepare(config, evaluate=xdist_controller and not config.option.collectonly)
        except FairnessError as exc:
            raise pytest.UsageError(str(exc)) from None
        if xdist_controller and not config.option.collectonly:
            # Workers read, never evaluate; the controller does not see which tests -k leaves to them,
            # so under xdist every model x dataset is evaluated.
            state = config.stash[STATE]
            config.stash[HANDOFF] = state.hand_off(state.cache_dir / "handoff")


@pytest.hookimpl(optionalhook=True)  # an xdist hook: absent without pytest-xdist
def pytest_configure_node(node) -> None:
    node.workerinput[JUNIT_FAMILY_KEY] = junit_family(node.config)
    path = node.config.stash.get(HANDOFF, None)
    if path is not None:
        node.workerinput[HANDOFF_KEY] = str(path)


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash[STATE]
    t = state.thresholds
    return [
        f"fer-fairness: thresholds {t.source} (mode {t.mode}, alpha {t.alpha:g}, {t.correction} per {t.family}), "
        f"seed {state.seed}",
        "fer-fairness: datasets "
        + ", ".join(s.text for s in state.dataset_specs)
        + "; models "
        + ", ".join(s.text for s in state.model_specs),
    ]


def _prepare(config: pytest.Config, *, evaluate: bool, pairs: set[tuple[str, str]] | None = None) -> None:
    """Plan the run (load datasets, build models, name the tests); with ``evaluate``, also predict and
    evaluate ``pairs`` (None: every model x dataset). An xdist worker adopts its controller's records."""
    state = config.stash[STATE]
    handoff = getattr(config, "workerinput", {}).get(HANDOFF_KEY)
    if state.records is None and handoff:
        state.take_over(Path(handoff))
    if state.records is not None:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        state.say = reporter.write_line
    # Loaders warn about what need not stop the run (a study subset of unexpected size); this
    # runs before pytest collects warnings, so pass them on to the terminal here.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetWarning)
        state.plan()
        if evaluate:
            state.prepare(pairs)
    for warning in caught:
        if issubclass(warning.category, DatasetWarning):
            state.say(f"fer-fairness: warning: {warning.message}")
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("fairness")
    if marker is None or RECORD_ARG not in metafunc.fixturenames:
        return
    criterion = marker.args[0] if marker.args else marker.kwargs.get("criterion")
    problem = _marker_problem(
        metafunc.definition.nodeid, criterion, metafunc.config.stash[STATE].thresholds.definitions
    )
    if problem and hasattr(metafunc.config, "workerinput"):
        # An xdist worker cannot stop the run with a usage error (the controller reports a crash):
        # one test that errors in setup with the same line stands in for the marker.
        metafunc.parametrize(RECORD_ARG, [_Mistyped(problem)], ids=["mistyped-marker"])
        return
    if problem:
        # A UsageError raised while collecting would become a collection error with a traceback; it is
        # raised once collection ends (pytest_collection_modifyitems), where it stops the run cleanly.
        metafunc.config.stash.setdefault(MARKER_ERRORS, []).append(problem)
        return
    thresholds = metafunc.config.stash[STATE].thresholds
    if not thresholds.criterion(criterion).enabled:
        reason = f"criterion '{criterion}' is disabled in {thresholds.source}"
        metafunc.parametrize(RECORD_ARG, [pytest.param(None, marks=pytest.mark.skip(reason=reason))], ids=["disabled"])
        return
    state = metafunc.config.stash[STATE]
    if thresholds.definitions[criterion].requires == "baseline" and state.baseline is None:
        reason = f"criterion '{criterion}' compares with a baseline run; give one with --fairness-baseline PATH"
        metafunc.parametrize(
            RECORD_ARG, [pytest.param(None, marks=pytest.mark.skip(reason=reason))], ids=["no-baseline"]
        )
        return
    try:
        _prepare(metafunc.config, evaluate=False)
    except FairnessError as exc:
        # Reached only when the run was not recognised as a fairness run up front (see
        # _is_fairness_run); a CollectError shows as one line, without a traceback.
        raise pytest.Collector.CollectError(f"fer-fairness: {exc}") from None
    # A worker holds its controller's records; otherwise the tests are named from the plan, and the
    # fixture looks each record up when its test runs.
    tests = (state.records if state.records is not None else state.planned).get(criterion, [])
    if not tests:  # one skip that says why, rather than pytest's "got empty parameter set"
        reason = _nothing_to_test(criterion, thresholds)
        metafunc.parametrize(RECORD_ARG, [pytest.param(None, marks=pytest.mark.skip(reason=reason))], ids=["none"])
        return
    metafunc.parametrize(RECORD_ARG, tests, ids=[t.test_id for t in tests], indirect=True)


def _nothing_to_test(criterion: str, thresholds) -> str:
    requires = thresholds.definitions[criterion].requires
    if requires == "perturbations":
        return (
            f"criterion '{criterion}' runs only with a sweep: list perturbations under "
            f"[criteria.{criterion}] in {thresholds.source} (e.g. perturbations = [\"blur:1.5\"])"
        )
    if requires == "counterfactual":
        return (
            f"criterion '{criterion}' needs a dataset of counterfactual renders (a counterfactual_id column), "
            'e.g. --fairness-dataset "synthetic?counterfactual=true"'
        )
    return f"criterion '{criterion}' has nothing to compare in this run's datasets"


@pytest.fixture
def fairness_record(request: pytest.FixtureRequest) -> Record:
    """One fairness test's verdict record (fer_fairness.Record): criterion, model, dataset, groups,
    estimate, corrected interval, band, verdict and reason. Tests marked
    @pytest.mark.fairness("CRITERION") get one test per record; pass it to fer_fairness.gate, or assert
    on its fields (record.ci_high, record.rates, record.n) for a check of your own."""
    param = getattr(request, "param", None)
    if param is None:  # nothing was parametrized: the test lacks the marker
        pytest.fail(
            f"{request.node.nodeid} asks for fairness_record but has no fairness marker; mark it "
            '@pytest.mark.fairness("accuracy_gap") (or another criterion) to get one test per record',
            pytrace=False,
        )
    record = param if isinstance(param, Record) else request.config.stash[STATE].record_for(param)
    request.node.stash[RECORD] = record
    if junit_family(request.config) != "xunit2":  # its schema has no per-test <properties>
        request.node.user_properties.extend((xml_name(name), value) for name, value in record.junit_properties())
    return record


class _Mistyped(str):
    """Stands in for a record where a fairness marker names no known criterion (on xdist workers)."""


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    problem = getattr(item, "callspec", None) and item.callspec.params.get(RECORD_ARG)
    if isinstance(problem, _Mistyped):
        pytest.fail(str(problem), pytrace=False)


def _marker_problem(nodeid: str, criterion: object, names) -> str | None:
    """Why a fairness marker names no known criterion (one line), or None when it names one."""
    names = list(names)
    known = ", ".join(names)
    if not isinstance(criterion, str) or not criterion:
        return (
            f"fairness marker on {nodeid} names no criterion (got {criterion!r}); "
            f'write @pytest.mark.fairness("accuracy_gap") (known: {known})'
        )
    if criterion in names:
        return None
    close = difflib.get_close_matches(criterion, names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"fairness marker on {nodeid} names criterion '{criterion}', which does not exist{hint} (known: {known})"


@pytest.hookimpl(tryfirst=True)  # before -k and --lf deselect: a fairness test left out makes the run partial
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = config.stash.get(MARKER_ERRORS, [])
    if problems:
        more = f" (and {len(problems) - 1} more mistyped fairness marker(s))" if len(problems) > 1 else ""
        raise pytest.UsageError(problems[0] + more)
    planned = 0
    for item in items:
        record = getattr(item, "callspec", None) and item.callspec.params.get(RECORD_ARG)
        if isinstance(record, Record | Planned):  # its JUnit properties are added when the record is given
            # -k cannot parse these ids ('=', '~', '|' and '->' are not in its grammar), so each part is also a
            # keyword: KIND_NAME with every run of characters other than letters, digits and '_' written '_'.
            parts = {"model": record.model, "dataset": record.dataset, "criterion": record.criterion}
            parts |= {"attribute": record.attribute, "group": record.group}
            parts |= {"reference": record.reference or "", "detail": record.detail or ""}
            for kind, name in parts.items():
                word = "_".join("".join(c if c.isalnum() or c == "_" else " " for c in name).split())
                if word:
                    item.extra_keyword_matches.add(f"{kind}_{word}")
            planned += 1
    config.stash[PLANNED] = planned


def pytest_collection_finish(session: pytest.Session) -> None:
    """The selection is known (after -k, --lf, -m): ask only the models of selected tests."""
    config = session.config
    state = config.stash.get(STATE, None)
    if state is None or state.records is not None or config.option.collectonly:
        return
    selected = [item.callspec.params[RECORD_ARG] for item in session.items if _planned(item)]
    if not selected:
        return
    pairs = None if state.thresholds.family == "run" else {(p.model, p.dataset) for p in selected}
    try:
        _prepare(config, evaluate=True, pairs=pairs)
    except FairnessError as exc:
        raise pytest.UsageError(str(exc)) from None


def _planned(item: pytest.Item) -> bool:
    return isinstance(getattr(item, "callspec", None) and item.callspec.params.get(RECORD_ARG), Planned)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    record = item.stash.get(RECORD, None)
    if record is not None and report.when == "call":
        report.fairness_record = record.to_dict()  # survives xdist: extra report attributes are serialised
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    handoff = config.stash.get(HANDOFF, None)
    if handoff is not None:
        handoff.unlink(missing_ok=True)
    state = config.stash.get(STATE, None)
    if hasattr(config, "workeroutput") and state is not None and state.records is not None:
        config.workeroutput[FACTS_KEY] = state.facts
        config.workeroutput[PLANNED_KEY] = config.stash.get(PLANNED, None)
