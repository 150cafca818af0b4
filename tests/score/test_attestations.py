"""Manual attestations: validated, appended as text, half a point while fresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from readyml.config import Project
from readyml.errors import ConfigError
from readyml.registry import Registry
from readyml.score import (
    Attestation,
    append_attestation,
    load_attestations,
    parse_attestation,
    score_project,
)
from score.conftest import NOW
from support import write_project

GOOD = {
    "test": "model-1",
    "by": "Ada Lovelace",
    "date": "2026-05-20",
    "note": "Reviewed the spec change",
    "link": "https://git.example.org/pr/12",
}


def test_parse_accepts_a_complete_entry() -> None:
    attestation = parse_attestation(GOOD, now=NOW)
    assert attestation.test_id == "model-1"
    assert attestation.at == datetime(2026, 5, 20, tzinfo=UTC)
    assert attestation.passed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"test": "model-9"}, r"\[0\]\.test: expected a rubric test id such as model-1, found"),
        ({"by": ""}, r"\[0\]\.by: expected a non-empty string, found ''"),
        ({"link": None}, r"\[0\]\.link: expected a non-empty string, found nothing"),
        ({"date": "last week"}, r"\[0\]\.date: expected a date such as 2026-11-20"),
        ({"date": "2027-01-01"}, r"\[0\]\.date: expected a date not in the future"),
        ({"result": "ok"}, r"\[0\]\.result: expected 'passed' or 'failed', found 'ok'"),
        ({"who": "x"}, r"\[0\]\.who: unknown key"),
    ],
)
def test_invalid_entries_name_the_entry_and_key(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = tmp_path / "attestations.yaml"
    entry = {**GOOD, **change}
    path.write_text(
        "- " + "\n  ".join(f"{k}: {v!r}" if v is not None else f"{k}:" for k, v in entry.items())
    )
    with pytest.raises(ConfigError, match=r"attestations\.yaml" + message):
        load_attestations(path, now=NOW)


def test_file_must_hold_a_list(tmp_path: Path) -> None:
    path = tmp_path / "attestations.yaml"
    path.write_text("test: model-1\n")
    with pytest.raises(ConfigError, match="expected a list of attestations, found dict"):
        load_attestations(path)


def test_missing_or_empty_file_holds_none(tmp_path: Path) -> None:
    assert load_attestations(tmp_path / "none.yaml") == []
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    assert load_attestations(tmp_path / "empty.yaml") == []


def test_append_keeps_comments_and_earlier_entries(tmp_path: Path) -> None:
    path = tmp_path / "attestations.yaml"
    path.write_text("# reviewed quarterly by the ML guild\n")
    first = Attestation("model-1", "Ada", datetime(2026, 5, 1, tzinfo=UTC), "review", "PR 1")
    second = Attestation("infra-6", "Bob", datetime(2026, 5, 2, 9, 30, tzinfo=UTC), "canary", "L")
    append_attestation(path, first)
    append_attestation(path, second)
    text = path.read_text()
    assert text.startswith("# reviewed quarterly by the ML guild\n")
    assert load_attestations(path) == [first, second]


def test_append_rewrites_a_flow_style_empty_list(tmp_path: Path) -> None:
    path = tmp_path / "attestations.yaml"
    path.write_text("[]\n")
    entry = Attestation("data-2", "Ada", datetime(2026, 5, 1, tzinfo=UTC), "ablation", "doc")
    append_attestation(path, entry)
    assert load_attestations(path) == [entry]


def test_append_refuses_to_add_to_an_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "attestations.yaml"
    path.write_text("- test: nope\n")
    entry = Attestation("data-2", "Ada", datetime(2026, 5, 1, tzinfo=UTC), "x", "y")
    with pytest.raises(ConfigError, match=r"\[0\]"):
        append_attestation(path, entry)


def test_attestations_count_half_a_point_until_they_go_stale(
    tmp_path: Path, registry: Registry
) -> None:
    root = write_project(tmp_path / "p")
    spec_path = root / "readyml.yaml"
    spec_path.write_text(spec_path.read_text() + "score:\n  attestation_max_age_days: 30\n")
    project = Project.load(root)
    recent = Attestation("model-1", "Ada", NOW - timedelta(days=10), "review", "PR 1")
    old = Attestation("model-3", "Ada", NOW - timedelta(days=40), "tuning", "doc")
    append_attestation(root / "attestations.yaml", recent)
    append_attestation(root / "attestations.yaml", old)
    report = score_project(project, registry, now=NOW)
    assert (report.test("model-1").points, report.test("model-1").status) == (0.5, "manual")
    # 40 days is inside model-3's 90-day window, but outside the attestation limit.
    assert (report.test("model-3").points, report.test("model-3").status) == (0.0, "stale")
    assert report.sections["model"] == 0.5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe- test: model-1\n", "expected a UTF-8 YAML file, cannot read it"),
        (b"- test: model-1\n  date: 2026-13-01\n", "expected dates such as 2026-11-20, found an"),
    ],
)
def test_unreadable_file_or_impossible_date_is_a_config_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "attestations.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"^attestations\.yaml: " + message):
        load_attestations(path, now=NOW)


def test_a_folder_in_place_of_the_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "attestations.yaml").mkdir()
    with pytest.raises(ConfigError, match=r"^attestations\.yaml: expected a UTF-8 YAML file"):
        load_attestations(tmp_path / "attestations.yaml", now=NOW)
