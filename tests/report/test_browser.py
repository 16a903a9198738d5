"""fairness.html in a real browser: headless Chromium opens the file from disk, runs the page's own self-test
(the "#selftest" fragment), and the test reads the result from the dumped DOM. No Python driver needed."""

import re
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fer_fairness.report.html import write_html
from tests.report.test_charts import counts, floor, ratio
from tests.report.test_html import confusion, facts, mixed_records, record

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: install Debian's package (apt-get install -y chromium)"
)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


class Elements(HTMLParser):
    """Every element's attributes by id."""

    def __init__(self, html: str):
        super().__init__()
        self.by_id: dict[str, dict] = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.by_id[attrs["id"]] = attrs


def page(tmp_path: Path, records: list[dict]) -> Path:
    drawn = [floor("Black", 0.6), floor("White", 0.8), ratio(0, 2.0, 1.6, 2.4, "FAIL")]
    charted = [*records, *({**record(), **r} for r in drawn)]  # every field a record has
    return write_html(tmp_path / "fairness.html", records=charted, facts={**facts(), "counts": [counts(3)]})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The page for a mixed run, its self-test DOM and the browser's log."""
    tmp_path = tmp_path_factory.mktemp("browser")
    records = [confusion(), *mixed_records(7)]
    path = page(tmp_path, records)
    result = chromium(tmp_path, "--dump-dom", path.as_uri() + "#selftest")
    assert result.returncode == 0, result.stderr[-2000:]
    return tmp_path, path, Elements(result.stdout), result.stderr


def test_the_page_runs_without_console_errors(run):
    _, _, dom, log = run
    assert dom.by_id["js-errors"]["data-count"] == "0"
    assert "Uncaught" not in log
    assert not re.search(r"CONSOLE\(\d+\)\].*error", log, re.IGNORECASE)


def test_filtering_changes_the_visible_rows(run):
    _, path, dom, _ = run
    result = dom.by_id["selftest"]
    rows = re.findall(r'<tr class="\w+" id="t-[0-9a-f]{12}" data-test="[^"]*" data-verdict="(\w+)"', path.read_text())
    wanted = Counter(rows)
    total = int(result["data-total"])
    assert total == len(rows) > 0
    for verdict in ("FAIL", "PASS", "INCONCLUSIVE"):
        assert int(result[f"data-{verdict.lower()}"]) == wanted[verdict] < total  # each filter narrows the table
    assert 1 <= int(result["data-search"]) < total  # a test id finds itself, and not everything
    assert result["data-sorted"] == "descending"  # two clicks on a heading sort up, then down
    assert int(result["data-cleared"]) == total


def test_the_key_sections_exist_and_the_filters_appear(run):
    _, _, dom, _ = run
    for section in ("findings", "matrix", "toc", "tests", "run-facts", "charts-accuracy", "charts-forest"):
        assert section in dom.by_id, section
    assert "hidden" not in dom.by_id["filters"]  # shown once the script runs


def test_an_error_in_the_page_would_be_caught(tmp_path):
    # The console check above can fail: an error thrown on the page reaches the DOM and the log.
    path = page(tmp_path, mixed_records(1))
    path.write_text(path.read_text().replace("</body>", "<script>throw new Error('boom')</script></body>"))
    result = chromium(tmp_path, "--dump-dom", path.as_uri())
    dom = Elements(result.stdout)
    assert dom.by_id["js-errors"]["data-count"] == "1"
    assert "boom" in result.stdout


@pytest.mark.parametrize("width", [1280, 400])
def test_a_screenshot_is_saved(run, width):
    tmp_path, path, _, _ = run
    shot = tmp_path / f"fairness-{width}.png"
    result = chromium(
        tmp_path, f"--screenshot={shot}", f"--window-size={width},1600", "--hide-scrollbars", path.as_uri()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
