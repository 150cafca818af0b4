"""Damaged evidence rows (hand-edited SQL): the test they belong to fails, naming the row,
and every other test scores as before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from readyml.registry import Registry, open_registry
from readyml.score import compute_score
from readyml.score.correlation import version_points
from readyml.score.evidence_rows import DamagedEvidence, parse_evidence_row, read_evidence
from readyml.score.scoring import TestStatus
from readyml.types import Evidence
from score.conftest import NOW, PROJECT, record, record_repeated

# (SQL assignment that damages a row, what the reason must say was found)
DAMAGES = [
    ("details = '{not json'", "details: expected a JSON object, found invalid JSON '{not json'"),
    ("details = '[1, 2]'", "details: expected a JSON object, found list [1, 2]"),
    ("details = 'null'", "details: expected a JSON object, found null"),
    (
        """details = '{"reused_from_run": [1]}'""",
        "details.reused_from_run: expected a run id, found [1]",
    ),
    (
        """details = '{"max_age_days": "soon"}'""",
        "details.max_age_days: expected a number of days, found 'soon'",
    ),
    ("passed = 'yes'", "passed: expected a boolean (0 or 1), found 'yes'"),
    ("automated = 2", "automated: expected a boolean (0 or 1), found 2"),
    ("created_at = 'yesterday'", "created_at: expected a date and time, found 'yesterday'"),
    ("version = 'x'", "version: expected a version number (1, 2, ...) or null, found 'x'"),
    ("run_id = X'AB'", "run_id: expected text or null, found b'\\xab'"),
]


def damage(registry: Registry, row_id: int, assignment: str) -> None:
    """Edit one evidence row by hand, as a user with ``sqlite3`` would."""
    with registry.store.engine.begin() as connection:
        connection.execute(text(f"UPDATE evidence SET {assignment} WHERE id = :id"), {"id": row_id})


def scored_project(
    registry: Registry,
) -> tuple[dict[str, tuple[float, TestStatus, str]], list[str]]:
    """Each test's (points, status, reason), and the unattributed rows' descriptions."""
    records, damaged = read_evidence(registry, PROJECT)
    report = compute_score(records, project=PROJECT, now=NOW, damaged=damaged)
    tests = {t.test.id: (t.points, t.status, t.reason) for t in report.tests}
    return tests, [row.describe() for row in report.unattributed]


@pytest.mark.parametrize(("assignment", "found"), DAMAGES)
def test_a_damaged_row_fails_its_test_naming_the_row(
    registry: Registry, assignment: str, found: str
) -> None:
    record_repeated(registry, "data-1")
    record_repeated(registry, "infra-3")
    row_id = record(registry, "model-1", run_id="run-damaged")
    record(registry, "model-1", run_id="run-good", days_ago=0.5)
    damage(registry, row_id, assignment)
    tests, unattributed = scored_project(registry)
    points, status, reason = tests["model-1"]
    assert (points, status) == (0.0, "failing")
    assert reason.startswith(f"evidence row {row_id} (test model-1")
    assert found in reason
    assert tests["data-1"][:2] == (1.0, "automated")
    assert tests["infra-3"][:2] == (1.0, "automated")
    assert unattributed == []


def test_a_damaged_row_is_shown_as_failed_evidence(registry: Registry) -> None:
    row_id = record(registry, "model-1", run_id="run-damaged")
    damage(registry, row_id, "details = '{not json'")
    records, damaged = read_evidence(registry, PROJECT)
    report = compute_score(records, project=PROJECT, now=NOW, damaged=damaged)
    (item,) = report.test("model-1").evidence
    assert (item.passed, item.run_id, item.details["damaged_row"]) == (False, "run-damaged", row_id)
    assert str(item.details["error"]).startswith("details: expected a JSON object")


def test_a_row_naming_no_rubric_test_is_reported_apart(registry: Registry) -> None:
    record_repeated(registry, "model-1")
    row_id = record(registry, "data-2", run_id="run-x")
    damage(registry, row_id, "test_id = 'model-9'")
    tests, unattributed = scored_project(registry)
    assert tests["model-1"][:2] == (1.0, "automated")
    assert tests["data-2"][:2] == (0.0, "missing")
    assert unattributed == [
        f"evidence row {row_id} (run run-x): test_id: expected a rubric test id (data-N, "
        "model-N, infra-N, monitor-N with N in 1..7), found 'model-9'"
    ]


def test_every_problem_of_a_row_is_named() -> None:
    row = {
        "id": 4,
        "test_id": "infra-1",
        "passed": None,
        "automated": 1,
        "project": PROJECT,
        "run_id": "r",
        "model_name": None,
        "version": True,
        "created_at": "2026-05-01T00:00:00",
        "details": "{}",
        "artifact": None,
    }
    parsed = parse_evidence_row(row)
    assert isinstance(parsed, DamagedEvidence)
    assert parsed.problem == (
        "passed: expected a boolean (0 or 1), found None; "
        "version: expected a version number (1, 2, ...) or null, found True"
    )


@pytest.fixture
def any_registry(tmp_path: Path, store_url: str) -> Iterator[Registry]:
    """A registry on each metadata store backend (they hand back untyped rows differently)."""
    opened = open_registry(tmp_path / ".readyml", store_url=store_url)
    try:
        yield opened
    finally:
        opened.store.close()


def test_good_rows_read_back_as_the_store_wrote_them(any_registry: Registry) -> None:
    registry = any_registry
    registry.add_evidence(
        Evidence(
            "monitor-7",
            False,
            True,
            PROJECT,
            details={"metric": "accuracy", "measured": 0.5},
            run_id="r1",
            model_name="m",
            version=3,
            artifact="a.json",
            created_at=NOW,
        )
    )
    records, damaged = read_evidence(registry, PROJECT)
    assert damaged == []
    assert records == registry.list_evidence(project=PROJECT)


def test_the_correlation_check_skips_a_damaged_online_row(registry: Registry) -> None:
    row_id = record(registry, "monitor-7", run_id="run-online")
    damage(registry, row_id, "details = '{not json'")
    assert version_points(registry, PROJECT, "no-such-model") == (None, [])


def test_a_row_dated_in_the_future_cannot_outrank_newer_failures(registry: Registry) -> None:
    future = record(registry, "infra-1", run_id="run-future", days_ago=-365)
    record(registry, "infra-1", run_id="run-now", passed=False, days_ago=0.1)
    record(registry, "infra-2", run_id="run-skewed", days_ago=-0.01)  # 15 min: clock skew
    record(registry, "infra-2", run_id="run-before", days_ago=1)
    records, damaged = read_evidence(registry, PROJECT, now=NOW)
    assert [(row.row_id, row.problem) for row in damaged] == [
        (
            future,
            "created_at: expected a time not after now (2026-06-01 12:00 UTC), "
            "found 2027-06-01 12:00 UTC",
        )
    ]
    report = compute_score(records, project=PROJECT, now=NOW, damaged=damaged)
    assert (report.test("infra-1").points, report.test("infra-1").status) == (0.0, "failing")
    assert (report.test("infra-2").points, report.test("infra-2").status) == (1.0, "automated")
