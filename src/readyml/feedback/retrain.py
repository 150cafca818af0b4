"""Retrain on alert: a monitoring alert starts a pipeline run, within guard rails.

With ``monitoring.on_alert`` in the spec, alerts a monitoring run sends (new or re-notified,
of the listed checks and at least the given severity) trigger :func:`retrain_on_alerts`:

1. Guard rails: at most ``max_runs`` retrains per ``period`` and none within ``cooldown`` of
   the last; a trigger they stop is recorded as ``skipped`` with the reason.
2. The pipeline runs as any other (data gate, model gate; production datasets included when
   the spec adds them). A failed run is ``failed``, a vetoed candidate ``vetoed``, a run
   that reproduces the serving model ``unchanged``.
3. A blessed candidate waits for ``readyml approve`` when ``approval`` is set
   (``awaiting_approval``); otherwise, or once approved, it is rolled out by canary to the
   running server (``canary``; the server's controller promotes or rolls it back), or only
   registered (``registered``) with ``deploy: none``.

Every trigger is a JSON record under ``{workspace}/retrain/`` (written atomically, updated on
approval). It is saved ``running`` before the pipeline starts, so a run that never returns
still counts for the guard rails; one stopped by Ctrl-C or SIGTERM ends ``interrupted``, one
that crashes ``failed``, both recorded before the exception goes on. A run is evidence for
the ML Test Score: ``monitor-4`` (models are not too stale: a fresh candidate was produced)
and, where the newest production window was measured, ``monitor-7`` (the candidate's quality
there did not regress from the champion's, by the metric, direction and allowance the
champion gate uses).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from readyml.config import ChampionRule, OnAlertSpec, Project, duration_seconds
from readyml.errors import ConfigError, ReadymlError
from readyml.feedback._records import read_record
from readyml.monitor.alerts import Alert
from readyml.registry import ModelVersion, Registry
from readyml.types import JSON, Evidence

RETRAIN_DIR: Final = "retrain"
SEVERITY_RANK: Final = {"info": 0, "warning": 1, "critical": 2}
# States of a trigger that count as a retrain having run (for the guard rails): a run that
# was started counts, whether it finished, was interrupted or is still running.
RAN_STATES: Final = frozenset(
    {
        "running",
        "interrupted",
        "failed",
        "vetoed",
        "unchanged",
        "awaiting_approval",
        "registered",
        "canary",
        "deploy_failed",
        "promoted",
        "rolled_back",
    }
)
# The rollout controller's decisions in the registry audit (serve.rollout.AUDIT_ALIAS), by
# the prefix of their reason, and the state a canary retrain ends in.
_ROLLOUT_OUTCOMES: Final = {"promote:": "promoted", "rollback:": "rolled_back"}
# States ``readyml approve`` acts on: a candidate waiting for approval, or a deploy to retry.
APPROVABLE: Final = ("awaiting_approval", "deploy_failed")
MAX_BASES: Final = 8  # exports of exports: more is a loop in damaged lineage
_TOLERANCE: Final = 1e-12  # metrics equal up to rounding are not a regression (as the gate)

Runner = Callable[..., Any]


@dataclass
class RetrainRecord:
    """One trigger and what came of it."""

    id: str
    at: str
    alerts: list[JSON]
    state: str
    reason: str
    run_id: str | None = None
    version: int | None = None
    champion: int | None = None
    production_window: JSON | None = None
    metric: str | None = None  # the metric the champion gate compares (monitor-7 too)
    approved_by: str | None = None
    approved_at: str | None = None
    rollout: JSON | None = None
    history: list[JSON] = field(default_factory=list)

    def to_dict(self) -> JSON:
        """A JSON-ready dict."""
        return asdict(self)

    def move(self, state: str, reason: str, at: datetime) -> None:
        """Change state, keeping the old one in ``history``."""
        self.history.append({"at": at.isoformat(), "state": state, "reason": reason})
        self.state, self.reason = state, reason


def retrain_root(workspace: Path) -> Path:
    """Where trigger records are kept."""
    return workspace / RETRAIN_DIR


def list_retrains(workspace: Path) -> list[RetrainRecord]:
    """Every trigger record, oldest first."""
    root = retrain_root(workspace)
    paths = sorted(root.glob("rt-*.json")) if root.exists() else []
    records = []
    for path in paths:
        records.append(
            read_record(
                path,
                lambda data: RetrainRecord(**data),
                what=f"retrain record {path.name}",
                expected="a record as readyml monitor wrote it",
            )
        )
    return records


def settle_rollouts(project: Project, registry: Registry) -> list[RetrainRecord]:
    """Every trigger record, with each ``canary`` one moved to ``promoted`` or
    ``rolled_back`` once the server's rollout controller decided (read from the registry
    audit); a settled record is saved."""
    from readyml.serve.rollout import AUDIT_ALIAS

    records = list_retrains(project.workspace)
    waiting = [r for r in records if r.state == "canary" and r.version is not None]
    if not waiting:
        return records
    try:
        decisions = registry.history(project.spec.name, AUDIT_ALIAS)
    except ReadymlError:  # no rollout decided yet for this model
        return records
    for record in waiting:
        started = datetime.fromisoformat(record.history[-1]["at"]) if record.history else None
        for event in decisions:
            if event.to_version != record.version or (started and event.at < started):
                continue
            outcome = next(
                (s for prefix, s in _ROLLOUT_OUTCOMES.items() if event.reason.startswith(prefix)),
                None,
            )
            if outcome is not None:
                record.move(outcome, f"the server's rollout controller: {event.reason}", event.at)
                _save(project.workspace, record)
                break
    return records


def _save(workspace: Path, record: RetrainRecord) -> None:
    root = retrain_root(workspace)
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{record.id}.partial"
    partial.write_text(json.dumps(record.to_dict(), indent=2) + "\n")
    os.replace(partial, root / f"{record.id}.json")


def triggering(alerts: Sequence[Alert], spec: OnAlertSpec) -> list[Alert]:
    """The alerts that trigger a retrain under ``spec``."""
    least = SEVERITY_RANK[spec.severity]
    return [
        a
        for a in alerts
        if a.status == "firing"
        and SEVERITY_RANK.get(a.severity, 1) >= least
        and (spec.checks is None or a.labels.get("check") in spec.checks)
    ]


def guard_rails(workspace: Path, spec: OnAlertSpec, now: datetime) -> str | None:
    """Why a retrain may not run now (``None``: it may)."""
    ran = [datetime.fromisoformat(r.at) for r in list_retrains(workspace) if r.state in RAN_STATES]
    period = timedelta(seconds=duration_seconds(spec.period))
    cooldown = timedelta(seconds=duration_seconds(spec.cooldown))
    recent = [at for at in ran if at > now - period]
    if len(recent) >= spec.max_runs:
        return (
            f"guard rail: {len(recent)} retrain(s) in the last {spec.period} "
            f"(max_runs {spec.max_runs})"
        )
    if ran and max(ran) > now - cooldown:
        return (
            f"guard rail: cool-down of {spec.cooldown} after the retrain at {max(ran).isoformat()}"
        )
    return None


def retrain_on_alerts(
    project: Project,
    registry: Registry,
    alerts: Sequence[Alert],
    *,
    runner: Runner,
    now: datetime | None = None,
    reporter: Any = None,
) -> RetrainRecord | None:
    """Retrain for ``alerts`` if the spec asks for it and the guard rails allow.

    ``runner`` is :func:`readyml.train.run_project` (passed in: the feedback loop does not
    import the pipeline). Returns the trigger's record, ``None`` when no alert triggers.
    """
    spec = project.spec.monitoring.on_alert
    if spec is None:
        return None
    chosen = triggering(alerts, spec)
    if not chosen:
        return None
    at = now or datetime.now(UTC)
    record = RetrainRecord(
        id=f"rt-{at.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}",
        at=at.isoformat(),
        alerts=[_alert_summary(a) for a in chosen],
        state="triggered",
        reason=f"{len(chosen)} alert(s): " + ", ".join(sorted({a.name for a in chosen})),
    )
    refusal = guard_rails(project.workspace, spec, at)
    if refusal is not None:
        record.move("skipped", refusal, at)
        _save(project.workspace, record)
        return record
    record.move("running", "pipeline run started", at)
    _save(project.workspace, record)  # before the run: one that never returns still counts
    try:
        _run(project, registry, record, runner=runner, reporter=reporter, at=at)
        if record.state == "blessed":
            if spec.approval:
                record.move("awaiting_approval", f"approve with: readyml approve {record.id}", at)
            else:
                _deploy(project, record, spec, at)
    except BaseException as exc:  # Ctrl-C, SIGTERM (SystemExit), a bug: record, re-raise
        record.move(*_ended_early(exc), at)
        raise
    finally:
        _save(project.workspace, record)
    _evidence(project, registry, record)
    return record


def _ended_early(exc: BaseException) -> tuple[str, str]:
    """The state and one-line reason of a retrain that ``exc`` ended."""
    lines = str(exc).strip().splitlines()
    what = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return "interrupted", f"pipeline run interrupted ({what})"
    return "failed", f"pipeline run crashed ({what})"


def approve(
    project: Project, registry: Registry, ident: str, *, who: str, now: datetime | None = None
) -> RetrainRecord:
    """Approve the retrain ``ident`` (its record id or pipeline run id) and deploy it.

    Raises:
        ConfigError: no such retrain, or it is not awaiting approval.
    """
    records = list_retrains(project.workspace)
    record = next((r for r in records if ident in (r.id, r.run_id)), None)
    if record is None:
        known = ", ".join(r.id for r in records[-5:]) or "none"
        raise ConfigError(f"approve: expected a retrain id or run id ({known}), found {ident!r}")
    if record.state not in APPROVABLE:
        raise ConfigError(
            f"approve {record.id}: expected state {' or '.join(APPROVABLE)}, found {record.state}"
        )
    spec = project.spec.monitoring.on_alert or OnAlertSpec()
    at = now or datetime.now(UTC)
    if record.state == "deploy_failed":
        record.move("approved", f"deploy retried by {who}", at)
    else:
        record.approved_by, record.approved_at = who, at.isoformat()
        record.move("approved", f"approved by {who}", at)
    _deploy(project, record, spec, at)
    _save(project.workspace, record)
    return record


def _alert_summary(alert: Alert) -> JSON:
    return {
        "name": alert.name,
        "check": alert.labels.get("check"),
        "severity": alert.severity,
        "fingerprint": alert.fingerprint,
        "summary": alert.annotations.get("summary", ""),
    }


def _made_from(registry: Registry, champion: ModelVersion) -> dict[int, str]:
    """The champion's version and those it was made from (an ONNX export's ``base``, and
    theirs), each with how a run that reproduced it is described."""
    described = {champion.version: f"the champion {champion.ref}"}
    version = champion
    while isinstance(base := version.lineage.get("base"), str) and len(described) < MAX_BASES:
        try:
            version = registry.get(base)
        except ReadymlError:
            break
        if version.version in described:
            break
        described[version.version] = (
            f"{version.ref}, which the champion {champion.ref} was made from"
        )
    return described


def _run(
    project: Project,
    registry: Registry,
    record: RetrainRecord,
    *,
    runner: Runner,
    reporter: Any,
    at: datetime,
) -> None:
    name = project.spec.name
    made_from: dict[int, str] = {}
    try:
        champion = registry.get(f"{name}@champion")
    except ReadymlError:
        record.champion = None
    else:
        record.champion = champion.version
        made_from = _made_from(registry, champion)
    try:
        result = runner(project, registry=registry, reporter=reporter)
    except ReadymlError as exc:
        record.move("failed", f"pipeline: {exc}", at)
        return
    record.run_id = result.run_id
    if result.error is not None:
        record.move("failed", f"pipeline: {result.error}", at)
        return
    registered = result.value("registered")
    gate = result.value("gate")
    record.version = int(registered["version"])
    evaluation = result.value("metrics") or {}
    record.production_window = evaluation.get("production_window")
    rule = project.spec.gates.champion
    record.metric = (rule.metric if rule is not None else None) or evaluation.get("primary")
    if gate["decision"] != "blessed":
        reasons = "; ".join(r["message"] for r in gate.get("reasons", []) if not r.get("passed"))
        record.move("vetoed", f"gate vetoed {name}:{record.version}: {reasons}", at)
    elif record.version in made_from:
        record.move("unchanged", f"the run reproduced {made_from[record.version]}", at)
    else:
        record.move("blessed", f"{name}:{record.version} passed the data and model gates", at)


def _deploy(project: Project, record: RetrainRecord, spec: OnAlertSpec, at: datetime) -> None:
    from readyml.serve.management_client import management_call

    name = project.spec.name
    if spec.deploy == "none":
        record.move("registered", f"{name}:{record.version} registered (deploy: none)", at)
        return
    serving = project.spec.serving
    url = spec.server_url or f"http://{serving.host}:{serving.port}"
    body: JSON = {"model": name, "version": record.version, "mode": "canary"}
    if spec.rollout:
        body["rollout"] = dict(spec.rollout)
    try:
        record.rollout = management_call(
            url, "/v2/management/deploy", body, token_env=serving.token_env
        )
    except ReadymlError as exc:
        record.move("deploy_failed", str(exc), at)
        return
    record.move("canary", f"{name}:{record.version} rolling out by canary on {url}", at)


def _evidence(project: Project, registry: Registry, record: RetrainRecord) -> None:
    if record.state in ("skipped", "triggered"):
        return
    name = project.spec.name
    details: JSON = {"retrain": record.id, "state": record.state, "reason": record.reason}
    fresh = record.state in ("awaiting_approval", "registered", "canary", "unchanged")
    registry.store.add_evidence(
        Evidence(
            test_id="monitor-4",
            passed=fresh,
            automated=True,
            project=name,
            model_name=name,
            version=record.version,
            run_id=record.run_id,
            details={**details, "champion": record.champion},
        )
    )
    window = record.production_window or {}
    candidate, champion = window.get("candidate"), window.get("champion")
    metric = record.metric
    if not (isinstance(candidate, dict) and isinstance(champion, dict) and metric):
        return
    if metric not in candidate or metric not in champion:
        return
    passed, allowed = quality_held(
        metric, candidate[metric], champion[metric], project.spec.gates.champion
    )
    registry.store.add_evidence(
        Evidence(
            test_id="monitor-7",
            passed=passed,
            automated=True,
            project=name,
            model_name=name,
            version=record.version,
            run_id=record.run_id,
            details={**details, "metric": metric, "allowed": allowed, "window": window},
        )
    )


def quality_held(
    metric: str, candidate: float, champion: float, rule: ChampionRule | None
) -> tuple[bool, float]:
    """Whether ``candidate`` is no worse than ``champion`` on ``metric`` (in its direction)
    by more than the champion gate allows, and that allowance (0 without the rule).

    >>> quality_held("rmse", 1.2, 1.0, None)
    (False, 0.0)
    """
    from readyml.evaluate.metrics import better

    allowed = 0.0
    if rule is not None:
        allowed = rule.max_regression * (abs(champion) if rule.relative else 1.0)
    return better(metric, champion, candidate) <= allowed + _TOLERANCE, allowed
