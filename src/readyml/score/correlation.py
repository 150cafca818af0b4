"""Model 2: do offline proxy metrics correlate with actual online impact?

For each registered version of a model, the *offline* number is the primary metric the
pipeline measured on the validation split (stored with the version); the *online* number is
the same metric measured on served traffic against feedback labels, which the monitoring
quality check records as ``monitor-7`` evidence for that version. Its ``details`` carry
``{"metric": NAME, "measured": X}`` (what the monitor's quality check writes), or
``{"metric": NAME, "value": X}``, or ``{"metrics": {NAME: X, ...}}``; the newest record per
version counts.

With at least ``min_versions`` versions having both numbers, the Spearman rank correlation
says whether picking the better version offline picks the better version online; it passes
at ``min_correlation`` or above. With fewer versions the check says so and does not pass:
two points always correlate perfectly, which proves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from readyml.errors import RegistryError
from readyml.registry import Registry
from readyml.score.evidence_rows import read_evidence
from readyml.types import JSON, Evidence

ONLINE_TEST = "monitor-7"


@dataclass(frozen=True)
class VersionPoint:
    """One version's offline and online value of the primary metric."""

    version: int
    offline: float
    online: float


@dataclass
class CorrelationReport:
    """Offline versus online quality over versions."""

    model: str
    metric: str | None
    points: list[VersionPoint] = field(default_factory=list)
    spearman: float | None = None
    pearson: float | None = None
    passed: bool = False
    reason: str = ""

    def to_dict(self) -> JSON:
        """JSON form."""
        return {
            "model": self.model,
            "metric": self.metric,
            "points": [vars(p) for p in self.points],
            "spearman": self.spearman,
            "pearson": self.pearson,
            "passed": self.passed,
            "reason": self.reason,
        }


def _online_value(details: JSON, metric: str) -> float | None:
    if details.get("metric") == metric:
        for key in ("measured", "value"):
            if isinstance(details.get(key), int | float):
                return float(details[key])
    metrics = details.get("metrics")
    if isinstance(metrics, dict) and isinstance(metrics.get(metric), int | float):
        return float(metrics[metric])
    return None


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def version_points(
    registry: Registry, project: str, model: str
) -> tuple[str | None, list[VersionPoint]]:
    """The primary metric's name and each version's offline and online values."""
    try:
        versions = registry.list_versions(model)
    except RegistryError:
        return None, []
    if not versions:
        return None, []
    metric = versions[-1].metrics.get("primary")
    if not isinstance(metric, str):
        return None, []
    online: dict[int, float] = {}
    # Damaged rows are left out here: they fail monitor-7 itself in the score.
    records, _ = read_evidence(registry, project)
    for evidence in records:
        if evidence.test_id != ONLINE_TEST:
            continue
        if evidence.model_name != model or evidence.version is None:
            continue
        value = _online_value(evidence.details, metric)
        if value is not None:
            online[evidence.version] = value  # oldest first, so the newest wins
    points = []
    for version in versions:
        offline = version.metrics.get("valid", {}).get(metric)
        if isinstance(offline, int | float) and version.version in online:
            points.append(VersionPoint(version.version, float(offline), online[version.version]))
    return metric, points


def offline_online_correlation(
    registry: Registry,
    project: str,
    model: str,
    *,
    min_versions: int = 3,
    min_correlation: float = 0.5,
) -> CorrelationReport:
    """Correlate each version's offline metric with its online quality (ML Test Score model-2).

    Example:
        >>> report = offline_online_correlation(registry, "weather", "weather")  # doctest: +SKIP
        >>> report.reason  # doctest: +SKIP
        'not enough versions: 1 of 3 have both an offline metric and online quality evidence'
    """
    metric, points = version_points(registry, project, model)
    report = CorrelationReport(model=model, metric=metric, points=points)
    if len(points) < min_versions:
        report.reason = (
            f"not enough versions: {len(points)} of {min_versions} have both an offline metric "
            f"and online quality evidence ({ONLINE_TEST})"
        )
        return report
    offline = np.array([p.offline for p in points])
    online = np.array([p.online for p in points])
    report.pearson = _correlation(offline, online)
    ranks_a = pd.Series(offline).rank().to_numpy()
    ranks_b = pd.Series(online).rank().to_numpy()
    report.spearman = _correlation(ranks_a, ranks_b)
    if report.spearman is None:
        report.reason = "no variation: offline or online values are all equal"
        return report
    report.passed = report.spearman >= min_correlation
    report.reason = (
        f"Spearman {report.spearman:.2f} over {len(points)} versions "
        f"({'at least' if report.passed else 'below'} {min_correlation:g})"
    )
    return report


def correlation_evidence(project: str, report: CorrelationReport) -> Evidence:
    """The report as automated ``model-2`` evidence."""
    return Evidence(
        test_id="model-2",
        passed=report.passed,
        automated=True,
        project=project,
        model_name=report.model,
        details=report.to_dict(),
    )
