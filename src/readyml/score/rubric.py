"""The ML Test Score rubric: the 28 tests of Breck et al. (IEEE Big Data 2017), titles exact.

Each :class:`RubricTest` declares which evidence counts for it (its test id, whether
readyml can record it automatically, whether a manual attestation is accepted), how fresh
that evidence must be, which readyml component records it, and how to earn the point.
Monitoring tests count evidence for a week by default (a monitor that stopped running
proves nothing about today); the other sections for 90 days. ``score.max_age_days`` in
readyml.yaml overrides either, per section or per test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

Section = Literal["data", "model", "infra", "monitor"]

SECTIONS: tuple[Section, ...] = ("data", "model", "infra", "monitor")
SECTION_TITLES: dict[Section, str] = {
    "data": "Data",
    "model": "Model",
    "infra": "Infrastructure",
    "monitor": "Monitoring",
}
# Default freshness windows, in days.
DEFAULT_MAX_AGE_DAYS = 90.0
MONITOR_MAX_AGE_DAYS = 7.0


@dataclass(frozen=True)
class RubricTest:
    """One rubric test and the evidence that counts for it.

    Attributes:
        id: ``data-1`` … ``monitor-7``.
        title: The paper's wording.
        recorded_by: The readyml component that records automated evidence, or ``None``
            when readyml has nothing that runs the test.
        improve: One line on how to earn the point.
        automated: Whether automated evidence can count (a full point when repeated).
        manual: Whether a manual attestation counts (half a point).
        max_age: How old evidence may be and still count (default window of the section).
    """

    id: str
    title: str
    recorded_by: str | None
    improve: str
    automated: bool = True
    manual: bool = True
    max_age: timedelta = timedelta(days=DEFAULT_MAX_AGE_DAYS)

    @property
    def section(self) -> Section:
        """The section the test belongs to."""
        section = self.id.split("-", 1)[0]
        for known in SECTIONS:
            if known == section:
                return known
        raise ValueError(f"rubric test {self.id!r}: unknown section {section!r}")

    @property
    def number(self) -> int:
        """The test's number within its section, 1 to 7."""
        return int(self.id.split("-", 1)[1])


def _monitor(number: int, title: str, recorded_by: str | None, improve: str) -> RubricTest:
    return RubricTest(
        f"monitor-{number}",
        title,
        recorded_by,
        improve,
        max_age=timedelta(days=MONITOR_MAX_AGE_DAYS),
    )


RUBRIC: tuple[RubricTest, ...] = (
    RubricTest(
        "data-1",
        "Feature expectations are captured in a schema",
        "train: validate step",
        "Check in schema.yaml and run the pipeline (readyml run).",
    ),
    RubricTest(
        "data-2",
        "All features are beneficial",
        "evaluate: feature importance",
        "Run the evaluation's feature-importance check on each training run.",
    ),
    RubricTest(
        "data-3",
        "No feature's cost is too much",
        "evaluate: feature cost",
        "Run the evaluation's feature-cost check (latency and memory per feature).",
    ),
    RubricTest(
        "data-4",
        "Features adhere to meta-level requirements",
        "score: readyml check (schema meta rules)",
        "Give every feature in schema.yaml a meta owner (and source), then readyml check.",
    ),
    RubricTest(
        "data-5",
        "The data pipeline has appropriate privacy controls",
        "train: privacy step",
        "Declare meta.personal_data (drop, hash or allow) for personal columns; readyml run.",
    ),
    RubricTest(
        "data-6",
        "New features can be added quickly",
        "score: readyml check (new-feature probe)",
        "Run readyml check: it adds a derived feature to a copy and trains it end to end.",
    ),
    RubricTest(
        "data-7",
        "All input feature code is tested",
        "score: readyml check (project tests)",
        "Add tests/ for your feature modules and run readyml check.",
    ),
    RubricTest(
        "model-1",
        "Every model specification is reviewed and submitted",
        "evaluate: model spec review",
        "Keep readyml.yaml under review in version control; see the evaluate checks.",
    ),
    RubricTest(
        "model-2",
        "Offline proxy metrics correlate with actual online impact",
        "score: readyml check (offline/online correlation)",
        "Serve several versions with feedback labels, then readyml check.",
    ),
    RubricTest(
        "model-3",
        "All hyperparameters have been tuned",
        "evaluate: tuning",
        "Tune hyperparameters with the tuning step.",
    ),
    RubricTest(
        "model-4",
        "The impact of model staleness is known",
        "evaluate: staleness",
        "Run the staleness evaluation (train on older windows, score on newer).",
    ),
    RubricTest(
        "model-5",
        "A simpler model is not better",
        "evaluate: baseline comparison",
        "Gate against a simpler baseline model.",
    ),
    RubricTest(
        "model-6",
        "Model quality is sufficient on all important data slices",
        "evaluate: slices",
        "Declare slices in readyml.yaml and gate on each.",
    ),
    RubricTest(
        "model-7",
        "The model has been tested for considerations of inclusion",
        "evaluate: fairness",
        "Run the fairness evaluation on sensitive groups.",
    ),
    RubricTest(
        "infra-1",
        "Training is reproducible",
        "train: reproducibility check",
        "Run readyml run --check-reproducible.",
    ),
    RubricTest(
        "infra-2",
        "Model specification code is unit tested",
        "score: readyml check (model spec unit test)",
        "Run readyml check: it unit-tests the model spec and runs your tests/.",
    ),
    RubricTest(
        "infra-3",
        "The full ML pipeline is integration tested",
        "train: pipeline run; score: readyml check (sample run)",
        "Run readyml check: it runs the whole pipeline on a sample.",
    ),
    RubricTest(
        "infra-4",
        "Model quality is validated before attempting to serve it",
        "evaluate: gate",
        "Declare gate rules; the gate blesses or vetoes every candidate.",
    ),
    RubricTest(
        "infra-5",
        "The model allows debugging by observing the step-by-step computation of training or "
        "inference on a single example",
        "score: readyml explain",
        "Run readyml explain NAME --example JSON (readyml check does it for the champion).",
    ),
    RubricTest(
        "infra-6",
        "Models are tested via a canary process before they enter production serving environments",
        "serve: canary rollout",
        "Roll new versions out through a canary (readyml deploy --canary).",
    ),
    RubricTest(
        "infra-7",
        "Models can be quickly and safely rolled back to a previous serving version",
        "serve: rollback drill",
        "Exercise rollback (readyml models rollback) and let serving record it.",
    ),
    _monitor(
        1,
        "Dependency changes result in notification",
        "monitor: dependency check",
        "Schedule the dependency-change monitor with an alert sink.",
    ),
    _monitor(
        2,
        "Data invariants hold in training and serving inputs",
        "monitor: invariants check",
        "Schedule the data-invariants monitor on served traffic.",
    ),
    _monitor(
        3,
        "Training and serving features compute the same values",
        "monitor: skew check",
        "Schedule the training/serving skew monitor.",
    ),
    _monitor(
        4,
        "Models are not too stale",
        "monitor: staleness check",
        "Schedule the model-age monitor.",
    ),
    _monitor(
        5,
        "The model is numerically stable",
        "monitor: NaN/inf check",
        "Schedule the NaN/infinity monitor on predictions.",
    ),
    _monitor(
        6,
        "The model has not experienced regressions in training speed, serving latency, "
        "throughput, or RAM usage",
        "monitor: performance check",
        "Schedule the latency, throughput and memory monitor.",
    ),
    _monitor(
        7,
        "The model has not experienced a regression in prediction quality on served data",
        "monitor: quality check",
        "Log feedback labels and schedule the prediction-quality monitor.",
    ),
)

_BY_ID = {test.id: test for test in RUBRIC}


def rubric_test(test_id: str) -> RubricTest:
    """The rubric test with this id.

    >>> rubric_test("infra-1").title
    'Training is reproducible'

    Raises:
        KeyError: No rubric test has this id.
    """
    try:
        return _BY_ID[test_id]
    except KeyError:
        raise KeyError(
            f"rubric test {test_id!r}: expected one of data-N, model-N, infra-N, monitor-N "
            "with N in 1..7"
        ) from None


def max_age(test: RubricTest, overrides: dict[str, float]) -> timedelta:
    """The freshness window of ``test``: a per-test override, else per-section, else default.

    >>> max_age(rubric_test("monitor-4"), {"monitor": 3}).days
    3
    """
    for key in (test.id, test.section):
        if key in overrides:
            return timedelta(days=overrides[key])
    return test.max_age
