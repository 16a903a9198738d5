"""The report pair: fairness.json and fairness.html always come from the same run."""

from pathlib import Path

import pytest

from fer_fairness.report.collector import write_reports, xml_name
from tests.report.test_html import facts, record


def test_a_failure_while_writing_leaves_the_old_pair_and_no_temporaries(tmp_path, monkeypatch):
    old = {"fairness.json": "old json", "fairness.html": "old page"}
    for name, text in old.items():
        (tmp_path / name).write_text(text)
    write_bytes = Path.write_bytes

    def full_disk(self, data):
        if self.suffix == ".html":  # the JSON's temporary is already written by now
            raise OSError(28, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_reports(tmp_path, records=[record()], facts=facts(), decision={"line": "x"})
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == old


def test_the_pair_replaces_the_old_one(tmp_path):
    (tmp_path / "fairness.json").write_text("old json")
    paths = write_reports(tmp_path / "reports", records=[record()], facts=facts(), decision={"line": "x"})
    assert [p.name for p in paths] == ["fairness.json", "fairness.html"]
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["fairness.html", "fairness.json"]
    assert '"line": "x"' in paths[0].read_text() and "<html" in paths[1].read_text()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("n[Bl\x01ack\x1b]", "n[Bl#x01ack#x1B]"),
        ("n[tab\there\x7f]", "n[tab\there#x7F]"),  # XML holds a tab; pytest's values escape DEL too
        ("n[Zoë 日本 \U0001f600]", "n[Zoë 日本 \U0001f600]"),
        ("n[\ufffe]", "n[#xFFFE]"),
    ],
)
def test_xml_names_escape_only_what_xml_cannot_hold(name, expected):
    assert xml_name(name) == expected
