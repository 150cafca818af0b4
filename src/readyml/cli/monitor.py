"""``readyml monitor`` and ``readyml feedback``: check served traffic, record late labels."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from readyml import _console as console
from readyml.cli._common import FormatOpt, ProjectOpt, cli_errors, output_format
from readyml.errors import ConfigError, DataError

app = typer.Typer(help="Monitor served traffic and record feedback labels.")


@app.command("monitor")
@cli_errors
def monitor(
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
    report: Annotated[
        bool, typer.Option("--report", help="Write the HTML report and print its path.")
    ] = False,
    every: Annotated[
        str | None,
        typer.Option("--every", help="Run again every DURATION (e.g. 5m) until stopped."),
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", help="With --every: stop after this many runs.")
    ] = None,
    prometheus_rules: Annotated[
        Path | None,
        typer.Option("--prometheus-rules", help="Write Prometheus alerting rules to FILE."),
    ] = None,
) -> None:
    """Run the seven monitoring checks on logged traffic; raise and resolve alerts.

    Exit code 1 when a check failed.
    """
    from readyml.config import Project, duration_seconds
    from readyml.monitor import report_path, run_every, run_monitor, write_alert_rules, write_report
    from readyml.train import open_project_registry

    form = output_format(fmt)
    loaded = Project.load(project)
    registry = open_project_registry(loaded)
    if prometheus_rules is not None:
        path = write_alert_rules(
            loaded.spec.monitoring.performance, prometheus_rules, project=loaded.spec.name
        )
        console.stderr.print(f"wrote Prometheus rules to {path}")
    failed = False

    def once() -> None:
        nonlocal failed
        result = run_monitor(loaded, registry)
        failed = not result.ok
        data: dict[str, Any] = result.to_dict()
        if report:
            data["report"] = str(write_report(result, report_path(loaded.workspace, result.at)))
        retrain = _retrain(loaded, registry, result.sent)
        if retrain is not None:
            data["retrain"] = retrain.to_dict()
        if form == "json":
            console.print_json(data)
            return
        console.table(
            f"{result.model}:{result.version} — {result.rows:,} logged rows",
            ["test", "check", "status", "summary"],
            [[c.test_id, c.check, c.status, c.summary] for c in result.checks],
        )
        for alert in result.alerts:
            console.stdout.print(
                f"ALERT {alert.severity} {alert.name}: {alert.annotations.get('summary', '')}"
            )
        for alert in result.resolved:
            console.stdout.print(f"resolved {alert.name}: {alert.labels.get('key', '')}")
        if report:
            console.stdout.print(f"report: {data['report']}")
        if retrain is not None:
            console.stdout.print(f"retrain {retrain.id}: {retrain.state}: {retrain.reason}")

    period = every or (None if count is None else loaded.spec.monitoring.every)
    if period is None:
        if count is not None:
            raise ConfigError("--count: needs --every (or monitoring.every)")
        once()
    else:
        with contextlib.suppress(KeyboardInterrupt):
            run_every(duration_seconds(period, key="--every"), once, count=count)
    if failed:
        raise typer.Exit(code=1)


def _retrain(project: Any, registry: Any, alerts: Any) -> Any:
    """Retrain on the alerts just sent when ``monitoring.on_alert`` asks for it."""
    if project.spec.monitoring.on_alert is None:
        return None
    from readyml.feedback.retrain import retrain_on_alerts
    from readyml.train import run_project
    from readyml.train.progress import SilentReporter

    return retrain_on_alerts(
        project, registry, alerts, runner=run_project, reporter=SilentReporter()
    )


@app.command("feedback")
@cli_errors
def feedback(
    file: Annotated[
        Path, typer.Argument(help="CSV, Parquet, JSON or JSON-lines with request_id, label [, ts].")
    ],
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Record labels that arrived after the predictions, joined to the log by request id."""
    from readyml.config import Project
    from readyml.monitor import record_feedback

    form = output_format(fmt)
    loaded = Project.load(project)
    result = record_feedback(loaded.workspace, _records(file), now=datetime.now(UTC))
    if form == "json":
        console.print_json(result.to_dict())
        return
    console.key_values(
        f"feedback from {file.name}",
        [
            ("received", result.received),
            ("recorded", result.recorded),
            ("unknown ids", result.unknown),
            ("duplicates", f"{result.duplicates} (last one wins)"),
            ("rejected", result.rejected),
        ],
    )
    for error in result.errors:
        console.stderr.print(f"  rejected {error}")


def _records(path: Path) -> list[dict[str, Any]]:
    """Feedback records from a file, by its suffix."""
    import pandas as pd

    if not path.exists():
        raise DataError(f"feedback file '{path}' not found")
    suffix = path.suffix.lower()
    if suffix == ".json":
        from readyml.monitor.feedback import parse_feedback_body

        return parse_feedback_body(path.read_bytes())
    if suffix in (".jsonl", ".ndjson"):
        records = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path.name}: line {number}: not JSON ({exc.msg})") from exc
        return records
    if suffix == ".csv":
        frame = pd.read_csv(path, dtype={"request_id": str})
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        raise DataError(
            f"feedback file '{path.name}': expected .csv, .parquet, .json or .jsonl, "
            f"found {suffix or 'no suffix'}"
        )
    if "request_id" not in frame.columns or "label" not in frame.columns:
        raise DataError(
            f"{path.name}: expected columns request_id and label, found {list(frame.columns)}"
        )
    frame = frame.astype(object).where(frame.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]
