"""Retrain on alert: a real monitor alert retrains, gates and canaries; guard rails; approval."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from readyml.cli import app
from readyml.cli._common import Terminated
from readyml.config import Project
from readyml.feedback.retrain import Runner, list_retrains, retrain_on_alerts, triggering
from readyml.monitor.alerts import Alert
from readyml.train import open_project_registry, run_project
from readyml.train.progress import SilentReporter
from serve.conftest import ROW, TOKEN, serve_process
from support import IRIS_SPEC, write_project

from .test_production_training import ROWS, label_set

FAST_ROLLOUT = {"steps": [50, 100], "step_duration_s": 0.2, "min_requests": 5, "tick_s": 0.05}
FAST_ROLLOUT |= {"latency_slack_ms": 200.0, "max_latency_ratio": 10.0, "max_divergence": 0.5}


def write_spec(root: Path, on_alert: dict[str, Any], **extra: Any) -> Project:
    spec = {
        **IRIS_SPEC,
        "data": {**IRIS_SPEC["data"], "production": {"weight": 2.0}},
        "serving": {
            "request_log": {"enabled": False},
            "access_log": False,
            "rollout": FAST_ROLLOUT,
        },
        "monitoring": {"on_alert": on_alert, **extra.pop("monitoring", {})},
        **extra,
    }
    (root / "readyml.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return Project.load(root)


def trained(root: Path, on_alert: dict[str, Any], **extra: Any) -> Project:
    """Champion v1 trained on the source data; one labelled production dataset waiting."""
    write_project(root)
    project = write_spec(root, on_alert, **extra)
    registry = open_project_registry(project)
    assert run_project(project, registry=registry).error is None
    registry.promote("iris:1", who="tests", reason="before the alert")
    label_set(project, ROWS)
    return project


def alert(check: str = "skew", severity: str = "warning") -> Alert:
    labels = {"alertname": f"readyml_{check}", "check": check, "severity": severity}
    return Alert(
        labels=labels, annotations={"summary": "test"}, status="firing", starts_at=datetime.now(UTC)
    )


def retrain(project: Project, *, now: datetime | None = None) -> Any:
    registry = open_project_registry(project)
    return retrain_on_alerts(
        project, registry, [alert()], runner=run_project, reporter=SilentReporter(), now=now
    )


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    yield CliRunner()


def test_alert_from_a_monitor_run_retrains_gates_and_canaries(tmp_path: Path) -> None:
    on_alert = {"checks": ["staleness"], "server_url": "http://127.0.0.1:1"}
    project = trained(tmp_path, on_alert)
    with serve_process(project.root) as server:
        monitoring = {"staleness": {"max_model_age": "1s"}}
        write_spec(tmp_path, {**on_alert, "server_url": server.url}, monitoring=monitoring)
        time.sleep(1.1)
        result = CliRunner().invoke(
            app,
            ["monitor", "-p", str(tmp_path), "--format", "json"],
            env={"READYML_SERVE_TOKEN": TOKEN},
        )
        report = json.loads(result.stdout)
        record = report["retrain"]
        assert record["state"] == "canary", record
        assert record["version"] == 2 and record["champion"] == 1
        assert {a["check"] for a in record["alerts"]} == {"staleness"}
        states = [step["state"] for step in record["history"]]
        assert states == ["running", "blessed", "canary"]

        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                while not stop.is_set():
                    client.post("/predict", json=[ROW])

        sender = threading.Thread(target=traffic, daemon=True)
        sender.start()
        try:
            state = _wait_promoted(server.url, version=2)
        finally:
            stop.set()
            sender.join(timeout=30)
    assert [d["action"] for d in state["decisions"]][-1] == "promote"
    listed = CliRunner().invoke(app, ["retrains", "-p", str(tmp_path), "--format", "json"])
    settled = json.loads(listed.stdout)[-1]
    assert settled["state"] == "promoted" and settled["reason"].startswith(
        "the server's rollout controller: promote: "
    )
    assert [r.state for r in list_retrains(project.workspace)] == ["promoted"]  # saved
    registry = open_project_registry(project)
    assert registry.get("iris@champion").version == 2
    lineage = registry.get("iris:2").lineage["production"]
    assert lineage["review_sets"] and lineage["rows"] == len(ROWS)
    evidence = [
        e
        for e in registry.list_evidence("iris", test_id="monitor-4")
        if e.details.get("retrain") == record["id"]
    ]
    assert evidence and evidence[0].passed


def _wait_promoted(url: str, *, version: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    deadline = time.monotonic() + 60
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        rollouts = httpx.get(f"{url}/v2/management/rollout", headers=headers).json()["rollouts"]
        state = rollouts[0] if rollouts else {}
        if state.get("candidate_version") == version and state.get("state") == "promoted":
            return state
        time.sleep(0.1)
    pytest.fail(f"version {version} was not promoted: {state}")


def test_a_second_trigger_inside_the_cooldown_does_not_run(tmp_path: Path) -> None:
    project = trained(tmp_path, {"deploy": "none", "cooldown": "1h"})
    first = retrain(project)
    assert first.state == "registered" and first.version == 2
    second = retrain(project, now=datetime.now(UTC) + timedelta(minutes=5))
    assert second.state == "skipped" and "cool-down of 1h" in second.reason
    assert second.run_id is None
    assert [r.state for r in list_retrains(project.workspace)] == ["registered", "skipped"]


def test_at_most_max_runs_per_period(tmp_path: Path) -> None:
    project = trained(tmp_path, {"deploy": "none", "cooldown": "1s", "max_runs": 1})
    assert retrain(project).state == "registered"
    later = retrain(project, now=datetime.now(UTC) + timedelta(hours=1))
    assert later.state == "skipped" and "max_runs 1" in later.reason


def test_approval_step_holds_the_candidate_until_approved(
    tmp_path: Path, runner: CliRunner
) -> None:
    project = trained(tmp_path, {"deploy": "none", "approval": True})
    record = retrain(project)
    assert record.state == "awaiting_approval"
    approved = runner.invoke(
        app, ["approve", record.run_id, "-p", str(tmp_path), "--format", "json"]
    )
    assert approved.exit_code == 0, approved.output
    document = json.loads(approved.stdout)
    assert document["state"] == "registered" and document["approved_by"]
    again = runner.invoke(app, ["approve", record.id, "-p", str(tmp_path)])
    assert again.exit_code == 2
    assert "expected state awaiting_approval or deploy_failed, found registered" in again.output
    listed = runner.invoke(app, ["retrains", "-p", str(tmp_path), "--format", "json"])
    assert [r["state"] for r in json.loads(listed.stdout)] == ["registered"]


def test_a_failed_deploy_is_retried_by_approve(tmp_path: Path, runner: CliRunner) -> None:
    on_alert = {"server_url": "http://127.0.0.1:1"}  # nothing listens there
    project = trained(tmp_path, on_alert)
    record = retrain(project)
    assert record.state == "deploy_failed"
    with serve_process(project.root) as server:
        write_spec(tmp_path, {**on_alert, "server_url": server.url})
        retried = runner.invoke(
            app,
            ["approve", record.id, "-p", str(tmp_path), "--format", "json"],
            env={"READYML_SERVE_TOKEN": TOKEN},
        )
    assert retried.exit_code == 0, retried.output
    document = json.loads(retried.stdout)
    assert document["state"] == "canary" and document["approved_by"] is None
    assert [h["state"] for h in document["history"]][-3:] == ["deploy_failed", "approved", "canary"]


def test_a_vetoed_candidate_is_not_deployed(tmp_path: Path) -> None:
    gates = {"rules": [{"metric": "accuracy", "min": 0.9999}]}
    project = trained(tmp_path, {"server_url": "http://127.0.0.1:1"})
    project = write_spec(tmp_path, {"server_url": "http://127.0.0.1:1"}, gates=gates)
    record = retrain(project)
    assert record.state == "vetoed" and "accuracy" in record.reason
    assert record.rollout is None
    registry = open_project_registry(project)
    evidence = registry.list_evidence("iris", test_id="monitor-4")
    assert any(not e.passed and e.details.get("retrain") == record.id for e in evidence)


def test_only_listed_checks_and_severities_trigger() -> None:
    from readyml.config import OnAlertSpec

    spec = OnAlertSpec(checks=["skew", "quality"], severity="critical")
    alerts = [
        alert("skew", "warning"),
        alert("quality", "critical"),
        alert("staleness", "critical"),
    ]
    assert [a.labels["check"] for a in triggering(alerts, spec)] == ["quality"]


def test_a_damaged_retrain_record_is_one_line_not_a_traceback(
    tmp_path: Path, runner: CliRunner
) -> None:
    write_project(tmp_path)
    write_spec(tmp_path, {"deploy": "none"})
    records = tmp_path / ".readyml" / "retrain"
    records.mkdir(parents=True)
    (records / "rt-broken.json").write_text('{"id": "rt-broken"}')
    for command in (["retrains"], ["approve", "rt-broken"]):
        result = runner.invoke(app, [*command, "-p", str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert "retrain record rt-broken.json: expected a record" in result.output


def test_a_run_that_reproduces_what_the_champion_was_exported_from_is_unchanged(
    tmp_path: Path, runner: CliRunner
) -> None:
    # The champion is an ONNX export of version 1; with no new data the run reproduces 1.
    write_project(tmp_path)
    project = write_spec(tmp_path, {"deploy": "none"})
    registry = open_project_registry(project)
    assert run_project(project, registry=registry).error is None
    compressed = runner.invoke(app, ["compress", "iris:1", "--format", "onnx", "-p", str(tmp_path)])
    assert compressed.exit_code == 0, compressed.output
    registry.promote("iris:2", who="tests", reason="serve the export")
    record = retrain(project)
    assert record.state == "unchanged" and record.version == 1, record.reason
    assert record.reason == "the run reproduced iris:1, which the champion iris:2 was made from"
    assert open_project_registry(project).get("iris@champion").version == 2


# -- with a stand-in pipeline: the record and the evidence ----------------------------------------


@dataclass
class Finished:
    """What :func:`run_project` returns, as far as the retrain reads it."""

    values: dict[str, Any]
    run_id: str = "run-stand-in"
    error: str | None = None

    def value(self, name: str) -> Any:
        return self.values[name]


def blessed_run(primary: str, candidate: float, champion: float) -> Runner:
    window = {"rows": 20, "candidate": {primary: candidate}, "champion": {primary: champion}}
    result = Finished(
        {
            "registered": {"version": 2},
            "gate": {"decision": "blessed", "reasons": []},
            "metrics": {"primary": primary, "production_window": window},
        }
    )
    return lambda *_, **__: result


def untrained(root: Path, on_alert: dict[str, Any], **extra: Any) -> tuple[Project, Any]:
    write_project(root)
    project = write_spec(root, on_alert, **extra)
    return project, open_project_registry(project)


@pytest.mark.parametrize(
    ("primary", "candidate", "champion", "champion_rule", "passed"),
    [
        ("rmse", 1.2, 1.0, None, False),  # lower is better: a larger error regressed
        ("rmse", 0.9, 1.0, None, True),
        ("accuracy", 0.42, 0.5, {"max_regression": 0.1, "relative": True}, False),
        ("accuracy", 0.46, 0.5, {"max_regression": 0.1, "relative": True}, True),
        ("accuracy", 0.42, 0.5, {"max_regression": 0.1, "relative": False}, True),
    ],
)
def test_quality_evidence_judges_the_gates_metric_in_its_direction(
    tmp_path: Path,
    primary: str,
    candidate: float,
    champion: float,
    champion_rule: dict[str, Any] | None,
    passed: bool,
) -> None:
    gates: dict[str, Any] = {"rules": []}
    if champion_rule is not None:
        gates["champion"] = champion_rule
    project, registry = untrained(tmp_path, {"deploy": "none"}, gates=gates)
    runner = blessed_run(primary, candidate, champion)
    record = retrain_on_alerts(project, registry, [alert()], runner=runner)
    assert record is not None and record.state == "registered"
    [evidence] = registry.list_evidence("iris", test_id="monitor-7")
    assert evidence.passed is passed and evidence.details["metric"] == primary
    assert record.metric == primary


@pytest.mark.parametrize(
    ("error", "state", "reason"),
    [
        (KeyboardInterrupt(), "interrupted", "pipeline run interrupted (KeyboardInterrupt)"),
        (
            Terminated(signal.SIGTERM),
            "interrupted",
            "pipeline run interrupted (Terminated: SIGTERM)",
        ),
        (RuntimeError("boom\nat line 2"), "failed", "pipeline run crashed (RuntimeError: boom)"),
    ],
)
def test_a_retrain_that_never_returns_is_recorded_and_counts_for_the_cooldown(
    tmp_path: Path, error: BaseException, state: str, reason: str
) -> None:
    project, registry = untrained(tmp_path, {"deploy": "none", "cooldown": "1h"})
    seen: list[str] = []

    def ends_early(*_: Any, **__: Any) -> None:
        seen.extend(r.state for r in list_retrains(project.workspace))
        raise error

    with pytest.raises(type(error)):
        retrain_on_alerts(project, registry, [alert()], runner=ends_early)
    assert seen == ["running"]  # recorded before the run started
    [record] = list_retrains(project.workspace)
    assert (record.state, record.reason) == (state, reason)
    assert [h["state"] for h in record.history] == ["running", state]
    later = datetime.now(UTC) + timedelta(minutes=5)
    second = retrain_on_alerts(project, registry, [alert()], runner=ends_early, now=later)
    assert second is not None and second.state == "skipped"
    assert "cool-down of 1h" in second.reason and seen == ["running"]
