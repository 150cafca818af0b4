"""On the demo's real data: 2014–2015 traffic shows a drift alert and a quality drop; the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from readyml.cli.monitor import app
from readyml.config import Project
from readyml.demo import create_demo_project, production_frame
from readyml.monitor import LogSink, monitor_demo, replay_offline
from readyml.monitor.demo import feed_back
from readyml.registry import Registry
from readyml.train import SilentReporter, open_project_registry, run_project


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Registry, pd.DataFrame]:
    """The demo project trained, promoted, its 2014–2015 rows replayed and labelled."""
    directory = tmp_path_factory.mktemp("demo")
    create_demo_project(directory)
    spec = directory / "readyml.yaml"
    # Fewer trees: this tests monitoring, not the demo's model (same data, same drift).
    spec.write_text(spec.read_text().replace("n_estimators: 200", "n_estimators: 40"))
    project = Project.load(directory)
    registry = open_project_registry(project)
    result = run_project(project, registry=registry, reporter=SilentReporter())
    assert result.error is None
    registered = result.value("registered")
    registry.promote(f"{registered['name']}:{registered['version']}", who="test", reason="test")
    production = production_frame(project)
    log = replay_offline(project, registry, production)
    feed_back(project, log, production["weather"].tolist())
    return project, registry, log


def test_monitor_demo_shows_a_real_drift_alert_and_a_quality_drop(
    served: tuple[Project, Registry, pd.DataFrame],
) -> None:
    project, registry, _ = served
    report, path = monitor_demo(project, registry, sinks=[LogSink(stream=io.StringIO())])
    keys = {a.labels["key"] for a in report.alerts}
    assert "drift:label" in keys  # fog is recorded far more often from 2014
    assert "quality:accuracy" in keys
    quality = report.check("quality").details
    assert quality["measured"] < quality["reference"] - 0.1
    assert path.exists() and "<svg" in path.read_text()
    evidence = registry.store.list_evidence(project.spec.name, test_id="monitor-7")
    assert evidence and evidence[-1].automated and not evidence[-1].passed
    # Every check's evidence links to the run's page, kept in the artifact store.
    assert report.artifact is not None and report.artifact.startswith("monitoring/")
    assert {
        e.artifact
        for e in registry.store.list_evidence(project.spec.name)
        if e.created_at == evidence[-1].created_at
    } == {report.artifact}
    page = Path(registry.artifacts.url_for(report.artifact)).read_text()
    assert "drift:label" in page and 'id="report-data"' in page
    # The failed evidence says why with the findings, not only the numbers measured.
    reason = evidence[-1].details["reason"]
    quality_drop = next(a for a in report.alerts if a.labels["key"] == "quality:accuracy")
    drop = quality_drop.annotations["summary"]
    assert reason.startswith(drop) or f"; {drop}" in reason
    assert "label distribution drifted from training" in reason


def test_cli_monitor_json_report_and_rules(
    served: tuple[Project, Registry, pd.DataFrame], tmp_path: Path
) -> None:
    project, _, _ = served
    rules = tmp_path / "rules.yml"
    result = CliRunner().invoke(
        app,
        [
            "monitor",
            "-p",
            str(project.root),
            "--format",
            "json",
            "--report",
            "--prometheus-rules",
            str(rules),
        ],
    )
    assert result.exit_code == 1, result.output  # checks failed: exit code 1
    data = json.loads(result.stdout)
    assert set(data) >= {"checks", "alerts"} and len(data["checks"]) == 7
    assert Path(data["report"]).exists() and rules.exists()


def test_cli_feedback_counts_unknown_and_duplicate_ids(
    served: tuple[Project, Registry, pd.DataFrame], tmp_path: Path
) -> None:
    project, _, log = served
    ids = log["request_id"].tolist()
    csv = tmp_path / "labels.csv"
    pd.DataFrame(
        {"request_id": [ids[0], ids[0], "nobody"], "label": ["sun", "rain", "fog"]}
    ).to_csv(csv, index=False)
    result = CliRunner().invoke(
        app, ["feedback", str(csv), "-p", str(project.root), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    counts = [data[k] for k in ("new", "relabelled", "duplicates_ignored", "rejected")]
    assert sum(counts) == data["received"] == 3  # each row counted once
    # ids[0] is labelled before: sun repeats or replaces that label, rain replaces sun.
    assert data["new"] == 1 and data["relabelled"] >= 1
    assert data["unknown"] == 1 and data["unknown_ids"] == ["nobody"]
