"""Scoring: from evidence records to points per test, section sums, the final score and band.

The rules follow Breck et al. (2017), section VI:

* **Half a point** for a test executed manually with its results documented and
  distributed: a passing attestation (see :mod:`readyml.score.attestations`) or other
  evidence recorded with ``automated=False``.
* **One point** for a test run automatically *and repeatedly*. readyml reads
  "repeatedly" from the evidence, not from a claim: at least ``score.repeat_runs``
  (default 2) automated runs of the test inside its freshness window, counted as distinct
  pipeline runs (records sharing a ``run_id`` are one run), and the latest of them passing.
  Two runs is the least that shows the test is wired into something that runs it again
  (every pipeline run, ``readyml check`` in CI, a monitor schedule); the window shows it
  still does. A single automated passing run is a test executed once with its results
  recorded and published in the registry, which is what the paper pays half a point for.
* **Nothing** when there is no evidence, when all of it is older than the test's window
  (stale), or when the latest fresh evidence failed: a failing test earns no credit until
  it passes again.
* Each section sums to at most 7; the final ML Test Score is the minimum of the four
  sections, and its band is the paper's reading of that number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from readyml.config import Project, ScoreSpec
from readyml.registry import Registry
from readyml.score.attestations import load_attestations
from readyml.score.evidence_rows import DamagedEvidence, read_evidence
from readyml.score.rubric import RUBRIC, SECTIONS, RubricTest, Section, max_age
from readyml.types import JSON, Evidence

TestStatus = Literal["automated", "automated-once", "manual", "failing", "stale", "missing"]
AUTOMATED_POINTS = 1.0
MANUAL_POINTS = 0.5
SECTION_MAX = 7.0
# How many of a test's newest evidence records a report lists.
EVIDENCE_SHOWN = 5

# (upper bound of the final score, band) in increasing order; the paper's table.
BANDS: tuple[tuple[float, str], ...] = (
    (0.0, "more of a research project"),
    (1.0, "not totally untested, serious holes"),
    (2.0, "a first pass at basic productionization"),
    (3.0, "reasonably tested"),
    (5.0, "strong levels of automated testing, appropriate for mission-critical systems"),
)
EXCEPTIONAL = "exceptional"
# Evidence detail that caps how long one record counts (attestations carry it), in days.
MAX_AGE_DETAIL = "max_age_days"


def band(final: float) -> str:
    """The paper's reading of a final score.

    >>> band(0.0)
    'more of a research project'
    >>> band(5.5)
    'exceptional'
    """
    for upper, text in BANDS:
        if final <= upper:
            return text
    return EXCEPTIONAL


def as_utc(moment: datetime) -> datetime:
    """A timezone-aware UTC datetime (naive values are taken to be UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class EvidenceItem:
    """One evidence record as a report shows it."""

    source: Literal["store", "attestation"]
    automated: bool
    passed: bool
    created_at: datetime
    age_s: float
    fresh: bool
    run_id: str | None = None
    model: str | None = None
    link: str | None = None
    details: JSON = field(default_factory=dict)

    def to_dict(self) -> JSON:
        """JSON form."""
        return {
            "source": self.source,
            "automated": self.automated,
            "passed": self.passed,
            "created_at": self.created_at.isoformat(),
            "age_s": round(self.age_s, 1),
            "fresh": self.fresh,
            "run_id": self.run_id,
            "model": self.model,
            "link": self.link,
            "details": self.details,
        }


@dataclass(frozen=True)
class TestScore:
    """How one rubric test scored, and why."""

    __test__ = False  # a rubric test, not a pytest test

    test: RubricTest
    points: float
    status: TestStatus
    reason: str
    automated: bool
    max_age: timedelta
    evidence: list[EvidenceItem]

    @property
    def last_age_s(self) -> float | None:
        """Age of the newest evidence in seconds, or ``None`` without evidence."""
        return self.evidence[0].age_s if self.evidence else None

    def to_dict(self) -> JSON:
        """JSON form (the ``tests`` items of the score JSON)."""
        return {
            "id": self.test.id,
            "title": self.test.title,
            "points": self.points,
            "automated": self.automated,
            "status": self.status,
            "evidence": [item.to_dict() for item in self.evidence],
        }


@dataclass(frozen=True)
class ScoreReport:
    """A project's ML Test Score.

    Attributes:
        project: The project name.
        computed_at: The time the freshness windows were measured from.
        final: The minimum of the four section sums.
        band: The paper's reading of ``final``.
        sections: Points per section (each at most 7).
        tests: All 28 tests in rubric order.
        unattributed: Damaged evidence rows that name no rubric test (each damaged row that
            names one fails that test instead).
    """

    project: str
    computed_at: datetime
    final: float
    band: str
    sections: dict[Section, float]
    tests: list[TestScore]
    unattributed: list[DamagedEvidence] = field(default_factory=list)

    def to_dict(self) -> JSON:
        """The score JSON (see ``docs/score-schema.json``)."""
        return {
            "final": self.final,
            "band": self.band,
            "sections": dict(self.sections),
            "tests": [t.to_dict() for t in self.tests],
        }

    def test(self, test_id: str) -> TestScore:
        """The score of one test by id."""
        for item in self.tests:
            if item.test.id == test_id:
                return item
        raise KeyError(f"no rubric test {test_id!r} in the report")


def _item(evidence: Evidence, now: datetime, window: timedelta) -> EvidenceItem:
    created = as_utc(evidence.created_at or now)
    age = (now - created).total_seconds()
    from_attestation = not evidence.automated and evidence.details.get("source") is not None
    model = evidence.model_name
    if model is not None and evidence.version is not None:
        model = f"{model}:{evidence.version}"
    return EvidenceItem(
        source="attestation" if from_attestation else "store",
        automated=evidence.automated,
        passed=evidence.passed,
        created_at=created,
        age_s=age,
        fresh=age <= _limit_s(evidence, window),
        run_id=evidence.run_id,
        model=model,
        link=evidence.artifact,
        details=dict(evidence.details),
    )


def _damaged_item(row: DamagedEvidence, now: datetime) -> EvidenceItem:
    created = row.created_at or now
    return EvidenceItem(
        source="store",
        automated=bool(row.automated),
        passed=False,
        created_at=created,
        age_s=(now - created).total_seconds(),
        fresh=True,
        run_id=row.run_id,
        details={"damaged_row": row.row_id, "error": row.problem},
    )


def _damaged_result(damaged: Sequence[DamagedEvidence]) -> tuple[str, bool]:
    """The reason a test with damaged rows fails, and whether the newest of them was automated."""
    newest = max(damaged, key=lambda row: row.created_at or datetime.max.replace(tzinfo=UTC))
    more = len(damaged) - 1
    reason = f"{newest.describe()}" + (f" (and {more} more damaged row(s))" if more else "")
    return f"{reason}; fix or delete the damaged evidence", bool(newest.automated)


def _limit_s(evidence: Evidence, window: timedelta) -> float:
    limit = window.total_seconds()
    own = evidence.details.get(MAX_AGE_DETAIL)
    if isinstance(own, int | float) and not isinstance(own, bool):
        limit = min(limit, float(own) * 86400)
    return limit


def failure_reason(details: Mapping[str, Any]) -> str:
    """Why a failed record failed, from its details: the first non-empty ``reason``,
    ``error``, ``summary`` or ``note``; ``""`` without any."""
    for key in ("reason", "error", "summary", "note"):
        value = details.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _distinct_runs(items: Iterable[EvidenceItem]) -> int:
    """Runs that executed the check: a run that reused a step's cached result (its inputs
    unchanged) counts as the run it reused, not as another execution."""
    return len(
        {
            item.details.get("reused_from_run") or item.run_id or item.created_at.isoformat()
            for item in items
        }
    )


def score_test(
    test: RubricTest,
    evidence: Sequence[Evidence],
    *,
    now: datetime,
    window: timedelta | None = None,
    repeat_runs: int = 2,
    damaged: Sequence[DamagedEvidence] = (),
) -> TestScore:
    """Score one rubric test from its evidence (any order; other tests' evidence ignored).

    A damaged evidence row of the test (``damaged``: see
    :mod:`readyml.score.evidence_rows`) fails it, whatever the other rows say: its evidence
    can no longer be trusted until the row is fixed or deleted.

    Example:
        >>> from readyml.score.rubric import rubric_test
        >>> now = datetime(2026, 1, 10, tzinfo=UTC)
        >>> runs = [Evidence("infra-1", True, True, "p", run_id=str(d),
        ...                  created_at=datetime(2026, 1, d, tzinfo=UTC)) for d in (8, 9)]
        >>> score_test(rubric_test("infra-1"), runs, now=now).points
        1.0
    """
    window = window if window is not None else test.max_age
    now = as_utc(now)
    items = sorted(
        (_item(e, now, window) for e in evidence if e.test_id == test.id),
        key=lambda item: item.created_at,
        reverse=True,
    )
    own_damaged = [row for row in damaged if row.test_id == test.id]
    shown = sorted(
        [*(_damaged_item(row, now) for row in own_damaged), *items],
        key=lambda item: item.created_at,
        reverse=True,
    )[:EVIDENCE_SHOWN]
    fresh = [item for item in items if item.fresh]
    days = window.total_seconds() / 86400

    def result(points: float, status: TestStatus, reason: str, automated: bool) -> TestScore:
        return TestScore(test, points, status, reason, automated, window, shown)

    if own_damaged:
        reason, automated_row = _damaged_result(own_damaged)
        return result(0.0, "failing", reason, automated_row)
    if not items:
        return result(0.0, "missing", "no evidence recorded", False)
    if not fresh:
        return result(0.0, "stale", f"all evidence is older than {days:g} days", items[0].automated)
    latest = fresh[0]
    if not latest.passed:
        kind = "automated run" if latest.automated else "manual attestation"
        why = failure_reason(latest.details)
        reason = f"the latest {kind} failed" + (f": {why}" if why else "")
        return result(0.0, "failing", reason, latest.automated)
    automated = [item for item in fresh if item.automated] if test.automated else []
    manual = [item for item in fresh if not item.automated] if test.manual else []
    if automated and automated[0].passed:
        runs = _distinct_runs(automated)
        if runs >= repeat_runs:
            return result(
                AUTOMATED_POINTS,
                "automated",
                f"{runs} automated runs in {days:g} days, the latest passed",
                True,
            )
        if not (manual and manual[0].passed):
            return result(
                MANUAL_POINTS,
                "automated-once",
                f"{runs} automated run(s) in {days:g} days; {repeat_runs} make it repeated",
                True,
            )
    if manual and manual[0].passed:
        return result(MANUAL_POINTS, "manual", "documented manual run", False)
    return result(0.0, "failing", "the latest automated run failed", True)


def compute_score(
    evidence: Iterable[Evidence],
    *,
    project: str = "",
    now: datetime | None = None,
    spec: ScoreSpec | None = None,
    damaged: Sequence[DamagedEvidence] = (),
) -> ScoreReport:
    """Score all 28 tests from evidence records (store evidence and attestations alike).

    Each damaged row in ``damaged`` fails the test it names; rows that name no rubric test
    are listed in the report's ``unattributed``.

    Example:
        >>> compute_score([]).final
        0.0
    """
    spec = spec if spec is not None else ScoreSpec()
    now = as_utc(now or datetime.now(UTC))
    by_test: dict[str, list[Evidence]] = {}
    for item in evidence:
        by_test.setdefault(item.test_id, []).append(item)
    tests = [
        score_test(
            test,
            by_test.get(test.id, []),
            now=now,
            window=max_age(test, spec.max_age_days),
            repeat_runs=spec.repeat_runs,
            damaged=damaged,
        )
        for test in RUBRIC
    ]
    sections: dict[Section, float] = {
        section: min(SECTION_MAX, sum(t.points for t in tests if t.test.section == section))
        for section in SECTIONS
    }
    final = min(sections.values())
    unattributed = [row for row in damaged if row.test_id is None]
    return ScoreReport(project, now, final, band(final), sections, tests, unattributed)


def project_evidence(
    project: Project, registry: Registry, *, now: datetime | None = None
) -> tuple[list[Evidence], list[DamagedEvidence]]:
    """Every evidence record of a project: the registry's, plus its fresh-or-not attestations;
    and the registry's rows that are damaged (unreadable, or not what the store writes).

    Each attestation carries ``score.attestation_max_age_days`` as its own limit, so that a
    test window longer than that does not keep it alive.

    Raises:
        ConfigError: The attestations file is invalid.
        RegistryError: The metadata store cannot be read.
    """
    spec = project.spec.score
    now = as_utc(now or datetime.now(UTC))
    records, damaged = read_evidence(registry, project.spec.name, now=now)
    path = project.root / spec.attestations
    for attestation in load_attestations(path, now=now):
        evidence = attestation.to_evidence(project.spec.name, source=spec.attestations)
        evidence.details[MAX_AGE_DETAIL] = spec.attestation_max_age_days
        records.append(evidence)
    return records, damaged


def score_project(
    project: Project, registry: Registry, *, now: datetime | None = None
) -> ScoreReport:
    """The ML Test Score of a project, from its registry's evidence and its attestations,
    each shown evidence item linked to what it found (:mod:`readyml.score.links`).

    Example:
        >>> report = score_project(Project.load("readyml-demo"), registry)  # doctest: +SKIP
        >>> report.final > 5  # doctest: +SKIP
        True
    """
    from readyml.score.links import with_links  # it imports this module

    now = as_utc(now or datetime.now(UTC))
    records, damaged = project_evidence(project, registry, now=now)
    report = compute_score(
        records, project=project.spec.name, now=now, spec=project.spec.score, damaged=damaged
    )
    return with_links(report, project.root, registry)
