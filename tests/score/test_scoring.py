"""Scoring from evidence in a real SQLite store, against hand-computed expectations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from readyml.config import ScoreSpec
from readyml.registry import Registry
from readyml.score import RUBRIC, ScoreReport, band, compute_score
from readyml.score.attestations import Attestation
from readyml.types import Evidence
from score.conftest import NOW, PROJECT, record, record_repeated

ALL_IDS = [t.id for t in RUBRIC]


def scored(registry: Registry, spec: ScoreSpec | None = None) -> ScoreReport:
    return compute_score(
        registry.list_evidence(project=PROJECT), project=PROJECT, now=NOW, spec=spec
    )


def window_days(test_id: str) -> int:
    return 7 if test_id.startswith("monitor") else 90


@pytest.mark.parametrize("test_id", ALL_IDS)
def test_points_drop_from_one_to_zero_when_evidence_is_removed(
    registry: Registry, test_id: str
) -> None:
    record_repeated(registry, test_id)
    assert scored(registry).test(test_id).points == 1.0
    assert scored(registry).test(test_id).status == "automated"
    assert registry.store.delete_evidence(PROJECT, test_id) == 2
    result = scored(registry).test(test_id)
    assert (result.points, result.status) == (0.0, "missing")


@pytest.mark.parametrize("test_id", ALL_IDS)
def test_points_drop_from_one_to_zero_when_the_latest_evidence_fails(
    registry: Registry, test_id: str
) -> None:
    record_repeated(registry, test_id, days_ago=2)
    assert scored(registry).test(test_id).points == 1.0
    record(registry, test_id, passed=False, days_ago=0.5)
    result = scored(registry).test(test_id)
    assert (result.points, result.status) == (0.0, "failing")


@pytest.mark.parametrize("test_id", ALL_IDS)
def test_points_drop_from_one_to_zero_when_evidence_goes_stale(
    registry: Registry, test_id: str
) -> None:
    days = window_days(test_id)
    record_repeated(registry, test_id, days_ago=days - 2)
    assert scored(registry).test(test_id).points == 1.0
    registry.store.delete_evidence(PROJECT, test_id)
    record_repeated(registry, test_id, days_ago=days + 1)
    result = scored(registry).test(test_id)
    assert (result.points, result.status) == (0.0, "stale")


def test_one_automated_run_earns_half_a_point(registry: Registry) -> None:
    record(registry, "infra-1")
    result = scored(registry).test("infra-1")
    assert (result.points, result.status, result.automated) == (0.5, "automated-once", True)


def test_records_of_one_run_count_as_one_run(registry: Registry) -> None:
    record(registry, "infra-3", run_id="same", days_ago=2)
    record(registry, "infra-3", run_id="same", days_ago=1)
    assert scored(registry).test("infra-3").status == "automated-once"


def test_an_earlier_failure_does_not_stop_a_repeated_test_from_scoring(
    registry: Registry,
) -> None:
    record(registry, "data-1", passed=False, days_ago=3)
    record(registry, "data-1", days_ago=1)
    assert scored(registry).test("data-1").points == 1.0


def test_repeat_runs_is_configurable(registry: Registry) -> None:
    record_repeated(registry, "data-1")
    assert scored(registry, ScoreSpec(repeat_runs=3)).test("data-1").points == 0.5
    assert scored(registry, ScoreSpec(repeat_runs=2)).test("data-1").points == 1.0


def test_window_overrides_make_monitoring_evidence_stale_sooner(registry: Registry) -> None:
    record_repeated(registry, "monitor-2", days_ago=3)
    assert scored(registry).test("monitor-2").points == 1.0
    spec = ScoreSpec(max_age_days={"monitor": 2})
    assert scored(registry, spec).test("monitor-2").status == "stale"


def test_only_fresh_runs_count_towards_repetition(registry: Registry) -> None:
    record(registry, "monitor-5", days_ago=30)
    record(registry, "monitor-5", days_ago=1)
    assert scored(registry).test("monitor-5").status == "automated-once"


def manual(test_id: str, *, days_ago: float = 1.0, passed: bool = True) -> Attestation:
    return Attestation(
        test_id, "Ada", NOW - timedelta(days=days_ago), "ran it", "https://x/1", passed
    )


def test_manual_attestation_earns_half_a_point(registry: Registry) -> None:
    evidence = [manual("model-1").to_evidence(PROJECT)]
    result = compute_score(evidence, now=NOW).test("model-1")
    assert (result.points, result.status, result.automated) == (0.5, "manual", False)
    assert result.evidence[0].source == "attestation"
    assert result.evidence[0].link == "https://x/1"


def test_automated_and_repeated_beats_manual(registry: Registry) -> None:
    record_repeated(registry, "model-3", days_ago=2)
    evidence = [*registry.list_evidence(PROJECT), manual("model-3").to_evidence(PROJECT)]
    assert compute_score(evidence, now=NOW).test("model-3").points == 1.0


def test_manual_counts_when_the_automated_run_failed_earlier(registry: Registry) -> None:
    record(registry, "model-4", passed=False, days_ago=3)
    evidence = [*registry.list_evidence(PROJECT), manual("model-4").to_evidence(PROJECT)]
    result = compute_score(evidence, now=NOW).test("model-4")
    assert (result.points, result.status) == (0.5, "manual")


def test_a_newer_failing_manual_run_zeroes_the_test(registry: Registry) -> None:
    record_repeated(registry, "model-6", days_ago=3)
    evidence = [
        *registry.list_evidence(PROJECT),
        manual("model-6", passed=False).to_evidence(PROJECT),
    ]
    assert compute_score(evidence, now=NOW).test("model-6").status == "failing"


def test_once_automated_and_manual_is_half_a_point_from_the_manual(registry: Registry) -> None:
    record(registry, "model-7", days_ago=2)
    evidence = [*registry.list_evidence(PROJECT), manual("model-7").to_evidence(PROJECT)]
    result = compute_score(evidence, now=NOW).test("model-7")
    assert (result.points, result.status) == (0.5, "manual")


def test_hand_computed_mixed_project(registry: Registry) -> None:
    # data: 7 repeated automated tests                       -> 7
    for n in range(1, 8):
        record_repeated(registry, f"data-{n}")
    # model: 3 repeated, 2 manual, 1 automated once, 1 none  -> 3 + 1 + 0.5 = 4.5
    for n in (1, 2, 3):
        record_repeated(registry, f"model-{n}")
    record(registry, "model-6")
    attestations = [manual("model-4"), manual("model-5")]
    # infra: 4 repeated, 1 failing, 2 stale                  -> 4
    for n in (1, 2, 3, 4):
        record_repeated(registry, f"infra-{n}")
    record_repeated(registry, "infra-5", days_ago=2)
    record(registry, "infra-5", passed=False, days_ago=0.1)
    record_repeated(registry, "infra-6", days_ago=120)
    record_repeated(registry, "infra-7", days_ago=91)
    # monitor: 2 repeated, 2 manual, 1 stale (8 days > 7)    -> 2 + 1 = 3
    record_repeated(registry, "monitor-1")
    record_repeated(registry, "monitor-2")
    attestations += [manual("monitor-3"), manual("monitor-4")]
    record_repeated(registry, "monitor-5", days_ago=8)
    evidence = [
        *registry.list_evidence(PROJECT),
        *(a.to_evidence(PROJECT) for a in attestations),
    ]
    report = compute_score(evidence, project=PROJECT, now=NOW)
    assert report.sections == {"data": 7.0, "model": 4.5, "infra": 4.0, "monitor": 3.0}
    assert report.final == 3.0
    assert report.band == "reasonably tested"
    assert [t.status for t in report.tests if t.test.section == "infra"] == [
        *["automated"] * 4,
        "failing",
        "stale",
        "stale",
    ]


def test_evidence_of_other_projects_does_not_count(registry: Registry) -> None:
    record_repeated(registry, "data-1")
    record(registry, "data-2", project="other")
    report = scored(registry)
    assert report.test("data-1").points == 1.0
    assert report.test("data-2").status == "missing"


def test_empty_project_is_a_research_project() -> None:
    report = compute_score([], now=NOW)
    assert report.final == 0.0
    assert report.band == "more of a research project"
    assert all(t.status == "missing" for t in report.tests)


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        (0.0, "more of a research project"),
        (0.5, "not totally untested, serious holes"),
        (1.0, "not totally untested, serious holes"),
        (1.5, "a first pass at basic productionization"),
        (2.0, "a first pass at basic productionization"),
        (3.0, "reasonably tested"),
        (3.5, "strong levels of automated testing, appropriate for mission-critical systems"),
        (5.0, "strong levels of automated testing, appropriate for mission-critical systems"),
        (5.5, "exceptional"),
        (7.0, "exceptional"),
    ],
)
def test_bands_follow_the_paper(final: float, expected: str) -> None:
    assert band(final) == expected


def test_report_lists_at_most_five_newest_records_newest_first(registry: Registry) -> None:
    for day in range(1, 9):
        record(registry, "data-1", days_ago=day)
    evidence = scored(registry).test("data-1").evidence
    assert len(evidence) == 5
    assert [round(e.age_s / 86400) for e in evidence] == [1, 2, 3, 4, 5]


def test_a_failing_test_says_why_from_its_evidence(registry: Registry) -> None:
    registry.add_evidence(
        Evidence(
            "model-3",
            False,
            True,
            PROJECT,
            run_id="r1",
            created_at=NOW - timedelta(days=1),
            details={"reason": "no search space declared (tuning.space)"},
        )
    )
    record(registry, "model-4", passed=False)
    assert scored(registry).test("model-3").reason == (
        "the latest automated run failed: no search space declared (tuning.space)"
    )
    assert scored(registry).test("model-4").reason == "the latest automated run failed"


def test_a_run_that_reused_a_cached_check_is_not_another_execution(registry: Registry) -> None:
    record(registry, "data-1", run_id="r1", days_ago=2)
    registry.add_evidence(
        Evidence(
            "data-1",
            True,
            True,
            PROJECT,
            run_id="r2",
            created_at=NOW - timedelta(days=1),
            details={"reused_from_run": "r1"},
        )
    )
    once = scored(registry).test("data-1")
    assert (once.status, once.points) == ("automated-once", 0.5)
    record(registry, "data-1", run_id="r3", days_ago=0.5)
    assert scored(registry).test("data-1").status == "automated"
