"""One monitoring run: the checks over the inputs, evidence, alerts, and the repeating schedule.

:class:`Monitor` runs a list of checks on :class:`~readyml.monitor.inputs.MonitorInputs`,
records one piece of evidence per check that ran (``monitor-N``, automated, its numbers as
details), turns findings into alerts (:mod:`readyml.monitor.alerts`) and sends what changed to
the sinks. :func:`run_monitor` does all of it for a project; :func:`run_every` repeats it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from readyml.config import Project, duration_seconds
from readyml.errors import ReadymlError, RegistryError
from readyml.monitor.alerts import (
    STATE_FILE,
    Alert,
    AlertBook,
    Sink,
    alert_for,
    deliver_update,
    sinks_from_spec,
)
from readyml.monitor.checks import Check, CheckResult, checks_from_spec
from readyml.monitor.checks._base import clean
from readyml.monitor.inputs import MonitorInputs, load_inputs, logs_root
from readyml.monitor.settings import check_settings
from readyml.registry import Registry
from readyml.registry.reports import key_part, stamp
from readyml.types import JSON, Evidence

REPORTS_DIR = "reports"
_log = logging.getLogger(__name__)


@dataclass
class MonitorReport:
    """The outcome of one monitoring run: ``{"checks": [...], "alerts": [...]}`` as JSON.

    ``alerts`` are firing; ``raised``, the firing ones new this run or due to repeat
    (delivered or not: what on_alert retrains on); ``sent``, the new, repeated and resolved
    ones a sink delivered this run; ``pending``, those it could not deliver (sent again at
    the next run);
    ``no_traffic``, why no logged row was read (empty when some were).
    """

    project: str
    model: str
    version: int
    at: datetime
    checks: list[CheckResult]
    alerts: list[Alert] = field(default_factory=list)
    raised: list[Alert] = field(default_factory=list)
    sent: list[Alert] = field(default_factory=list)
    pending: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    deduplicated: int = 0
    deliveries: list[JSON] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    no_traffic: str = ""
    artifact: str | None = None  # the key of this report's HTML page in the artifact store

    @property
    def ok(self) -> bool:
        """Whether no check failed."""
        return not any(c.status == "failed" for c in self.checks) and not self.errors

    @property
    def verdict(self) -> str:
        """How the checks went: ``all checks passed`` only when none failed or was skipped."""
        counts = {s: sum(c.status == s for c in self.checks) for s in ("failed", "passed")}
        skipped = [c for c in self.checks if c.status == "skipped"]
        if not skipped and self.ok:
            return "all checks passed"
        parts = [f"{n} {status}" for status, n in counts.items() if n]
        if skipped:
            why = self.no_traffic or "; ".join(f"{c.check}: {c.summary}" for c in skipped)
            parts.append(f"{len(skipped)} skipped ({why})")
        return ", ".join(parts)

    @property
    def headline(self) -> str:
        """One line: rows read, open alerts, and the :attr:`verdict`."""
        return f"{self.rows:,} logged rows · {len(self.alerts)} open alert(s) · {self.verdict}"

    def check(self, name: str) -> CheckResult:
        """The result of the check called ``name``."""
        return next(c for c in self.checks if c.check == name)

    def to_dict(self) -> JSON:
        """JSON-ready dict."""
        return {
            "project": self.project,
            "model": self.model,
            "version": self.version,
            "at": self.at.isoformat(),
            "ok": self.ok,
            "headline": self.headline,
            "skipped": sum(c.status == "skipped" for c in self.checks),
            "rows": self.rows,
            "checks": [c.to_dict() for c in self.checks],
            "alerts": [a.to_dict() for a in self.alerts],
            "sent": len(self.sent),
            "pending": len(self.pending),
            "resolved": [a.to_dict() for a in self.resolved],
            "deduplicated": self.deduplicated,
            "deliveries": self.deliveries,
            "errors": dict(self.errors),
            "artifact": self.artifact,
        }


class Monitor:
    """Run checks, record evidence, raise and resolve alerts.

    Args:
        checks: the checks to run (default: all seven, from the inputs' spec).
        sinks: where alert changes go (default: ``monitoring.alerts``).
        book: alert state (default: ``.readyml/monitor/alerts.json``).
        registry: where evidence is recorded (``None``: none recorded).

    Example:
        >>> report = Monitor(registry=registry).run(inputs)  # doctest: +SKIP
        >>> [c.test_id for c in report.checks]  # doctest: +SKIP
        ['monitor-1', 'monitor-2', ...]
    """

    def __init__(
        self,
        *,
        checks: Sequence[Check] | None = None,
        sinks: Sequence[Sink] | None = None,
        book: AlertBook | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.checks = checks
        self.sinks = sinks
        self.book = book
        self.registry = registry

    def run(
        self,
        inputs: MonitorInputs,
        *,
        data_source: str | None = None,
        period_s: float | None = None,
    ) -> MonitorReport:
        """One run over ``inputs``; ``period_s``: how often the monitor runs (default:
        ``monitoring.every``, else ``alerts.repeat_interval``, as from cron)."""
        spec = inputs.spec
        checks = (
            list(self.checks)
            if self.checks is not None
            else checks_from_spec(spec, data_source=data_source)
        )
        book = self.book or AlertBook(
            path=inputs.workspace / STATE_FILE,
            repeat_interval=timedelta(seconds=duration_seconds(spec.alerts.repeat_interval)),
        )
        book.firing()  # a damaged state file stops the run before any evidence is recorded
        ref = inputs.reference
        report = MonitorReport(
            project=inputs.project, model=ref.model, version=ref.version, at=inputs.now, checks=[]
        )
        for check in checks:
            try:
                result = check.run(inputs)
            except ReadymlError as exc:
                report.errors[check.name] = str(exc)
                result = CheckResult(check.name, check.test_id, "skipped", f"error: {exc}")
            report.checks.append(result)
        report.rows = len(inputs.traffic())
        if not report.rows:
            report.no_traffic = (
                f"no logged requests of {ref.model}:{ref.version} in the last "
                f"{spec.lookback} at {logs_root(inputs.workspace)}"
            )
        if self.registry is not None:
            report.artifact = report_key(report)
        self._evidence(inputs, report)
        found = [
            alert_for(
                r, f, project=inputs.project, model=ref.model, version=ref.version, now=inputs.now
            )
            for r in report.checks
            for f in r.findings
        ]
        ran = {r.check for r in report.checks if r.status != "skipped"}
        enabled = {check.name for check in checks}
        update = book.update(found, checks_run=ran, now=inputs.now, enabled=enabled)
        report.alerts = update.firing
        report.raised = update.raised
        report.resolved = update.resolved
        report.deduplicated = update.deduplicated
        sinks = self.sinks if self.sinks is not None else sinks_from_spec(spec.alerts)
        # A firing alert stays valid in Alertmanager for three runs: the schedule's period,
        # or the repeat interval when the monitor runs from cron.
        if period_s is None:
            period_s = duration_seconds(spec.every or spec.alerts.repeat_interval)
        report.deliveries, report.sent = deliver_update(
            sinks, update, now=inputs.now, valid_for=timedelta(seconds=3 * period_s)
        )
        book.mark_sent(report.sent, now=inputs.now)
        report.pending = [a for a in update.notify if a not in report.sent]
        self._keep_page(report)
        return report

    def _keep_page(self, report: MonitorReport) -> None:
        """Store the run's HTML page where its evidence links to; a store that refuses it is
        logged, as the checks, evidence and alerts stand without it."""
        if self.registry is None or report.artifact is None:
            return
        from readyml.monitor.report import render_monitoring_html  # it imports this module

        try:
            page = render_monitoring_html(report).encode("utf-8")
            self.registry.artifacts.put_bytes(report.artifact, page)
        except RegistryError as exc:
            _log.warning("monitoring page %s was not kept (%s)", report.artifact, exc)

    def _evidence(self, inputs: MonitorInputs, report: MonitorReport) -> None:
        if self.registry is None:
            return
        for result in report.checks:
            if result.status == "skipped":
                continue
            details: JSON = {
                "check": result.check,
                "summary": result.summary,
                "findings": [f.to_dict() for f in result.findings],
                "rows": report.rows,
                "lookback": inputs.spec.lookback,
                **_numbers(result.details),
            }
            why = "; ".join(f.message for f in result.findings if f.severity != "info")
            if not result.passed and why:  # the summary alone may read as good news
                details["reason"] = why
            self.registry.store.add_evidence(
                Evidence(
                    test_id=result.test_id,
                    passed=result.passed,
                    automated=True,
                    project=inputs.project,
                    model_name=report.model,
                    version=report.version,
                    details=clean(details),
                    artifact=report.artifact,
                    created_at=inputs.now,
                )
            )


def _numbers(details: JSON) -> JSON:
    """The top-level numbers and small mappings of a check's details (evidence stays small)."""
    out: JSON = {}
    for key, value in details.items():
        if (
            isinstance(value, int | float | str | bool)
            or value is None
            or (isinstance(value, dict) and len(json_text(value)) <= 4000)
        ):
            out[key] = value
    return out


def json_text(value: Any) -> str:
    """Compact JSON text of ``value`` (for size checks)."""
    import json

    return json.dumps(clean(value), default=str)


def run_monitor(
    project: Project,
    registry: Registry,
    *,
    now: datetime | None = None,
    sinks: Sequence[Sink] | None = None,
    ref: str | None = None,
    period_s: float | None = None,
) -> MonitorReport:
    """Run every enabled check on the project's served version; record evidence; alert.

    ``period_s`` is how often this monitor runs (``--every``), which sets how long a firing
    alert stays valid in Alertmanager (default: ``monitoring.every``, else the repeat interval).

    Raises:
        ConfigError: a ``monitoring`` value is invalid (see :func:`check_settings`).
        VersionNotFound: the served version (``monitoring.model`` or the champion) is missing.
    """
    check_settings(project, registry, ref=ref)
    inputs = load_inputs(project, registry, now=now or datetime.now(UTC), ref=ref)
    source = project.spec.data.source
    data_source = None if project.spec.data.is_loader else source
    monitor = Monitor(sinks=sinks, registry=registry)
    return monitor.run(inputs, data_source=data_source, period_s=period_s)


def report_key(report: MonitorReport) -> str:
    """Where the HTML page of a run is kept in the artifact store (its evidence links to it)."""
    where = f"{key_part(report.project)}/{key_part(report.model)}-v{report.version}"
    return f"monitoring/{where}/{stamp(report.at)}.html"


def report_path(workspace: Path, at: datetime) -> Path:
    """Where the HTML report of a run at ``at`` is written."""
    return (
        workspace / REPORTS_DIR / f"monitoring-{at.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}.html"
    )


def run_every(
    period_s: float,
    job: Callable[[], Any],
    *,
    count: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Call ``job`` every ``period_s`` seconds (``count`` times, or until interrupted).

    A run that takes longer than the period starts the next one at once; missed periods are
    not made up. Returns the number of runs.
    """
    runs = 0
    next_at = clock()
    while count is None or runs < count:
        job()
        runs += 1
        if count is not None and runs >= count:
            break
        next_at = max(next_at + period_s, clock())
        sleep(max(0.0, next_at - clock()))
    return runs
