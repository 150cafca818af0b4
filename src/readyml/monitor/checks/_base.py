"""What every check returns: a verdict, numbers, findings that become alerts, chart series."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from readyml._json import clean as clean  # checks import it from here
from readyml.monitor.inputs import MonitorInputs
from readyml.types import JSON

Severity = Literal["critical", "warning", "info"]
Status = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class Finding:
    """One condition a check found; each becomes an alert (deduplicated by its labels).

    ``key`` tells findings of one check apart (a feature, a package, a slice); ``value`` and
    ``threshold`` are the numbers behind it.
    """

    key: str
    message: str
    severity: Severity = "warning"
    value: float | None = None
    threshold: float | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> JSON:
        """JSON-ready dict."""
        return {
            "key": self.key,
            "message": self.message,
            "severity": self.severity,
            "value": clean(self.value),
            "threshold": clean(self.threshold),
            "labels": dict(self.labels),
        }


@dataclass
class CheckResult:
    """The outcome of one check on one monitoring run.

    ``status`` is ``skipped`` when the check lacked what it needs (the reason is the
    summary); ``series`` holds per-window numbers for the report's charts.
    """

    check: str
    test_id: str
    status: Status
    summary: str
    details: JSON = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    series: JSON = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether the check ran and found nothing wrong."""
        return self.status == "passed"

    def to_dict(self) -> JSON:
        """JSON-ready dict (NaN and infinities as null)."""
        return {
            "check": self.check,
            "test_id": self.test_id,
            "status": self.status,
            "passed": self.passed,
            "summary": self.summary,
            "details": clean(self.details),
            "findings": [f.to_dict() for f in self.findings],
            "series": clean(self.series),
        }


class Check(Protocol):
    """A monitoring check: ``run(inputs)`` gives a :class:`CheckResult`."""

    name: ClassVar[str]
    test_id: ClassVar[str]

    def run(self, inputs: MonitorInputs) -> CheckResult: ...


def verdict(
    check: str, test_id: str, findings: list[Finding], summary: str, **extra: Any
) -> CheckResult:
    """A ran check's result: failed when it has findings other than ``info`` ones."""
    return CheckResult(
        check=check,
        test_id=test_id,
        status="failed" if any(f.severity != "info" for f in findings) else "passed",
        summary=summary,
        findings=findings,
        **extra,
    )


def skipped(check: str, test_id: str, reason: str, **details: Any) -> CheckResult:
    """A result for a check that could not run."""
    return CheckResult(
        check=check, test_id=test_id, status="skipped", summary=reason, details=details
    )
