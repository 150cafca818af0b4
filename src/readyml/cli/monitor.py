"""``readyml monitor`` and ``readyml feedback``: check served traffic, record late labels."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from readyml import _console as console
from readyml._project_imports import describe_error
from readyml.cli._common import (
    FormatOpt,
    ProjectOpt,
    cli_errors,
    output_format,
    sigterm_exits,
    write_output,
)
from readyml.errors import ConfigError, DataError, ReadymlError

if TYPE_CHECKING:
    from readyml.config import Project
    from readyml.monitor import FeedbackResult, MonitorReport

app = typer.Typer(help="Monitor served traffic and record feedback labels.")
_log = logging.getLogger(__name__)


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

    Exit code 1 when a check failed, 2 when a check or the run hit a user error (one line on
    stderr each). With --every, a failed run is reported and the next one still runs; the
    exit code is the last run's.
    """
    from readyml.config import Project, duration_seconds
    from readyml.monitor import (
        check_settings,
        report_path,
        run_every,
        run_monitor,
        write_report,
    )
    from readyml.monitor.prometheus import alert_rules_text
    from readyml.train import open_project_registry

    form = output_format(fmt)
    if count is not None and count < 1:
        raise ConfigError(f"--count: expected a number of runs of at least 1, found {count}")
    loaded = Project.load(project)
    period = every or (None if count is None else loaded.spec.monitoring.every)
    if period is None and count is not None:
        raise ConfigError("--count: needs --every (or monitoring.every)")
    period_s = None if period is None else duration_seconds(period, key="--every")
    registry = open_project_registry(loaded)
    check_settings(loaded, registry)
    if prometheus_rules is not None:
        rules = alert_rules_text(loaded.spec.monitoring.performance, project=loaded.spec.name)
        write_output(prometheus_rules, rules, "--prometheus-rules")
        console.stderr.print(f"wrote Prometheus rules to {prometheus_rules}")

    def once() -> int:
        result = run_monitor(loaded, registry, period_s=period_s)
        data: dict[str, Any] = result.to_dict()
        if report:
            data["report"] = str(write_report(result, report_path(loaded.workspace, result.at)))
        retrain = _retrain(loaded, registry, result.raised)
        if retrain is not None:
            data["retrain"] = retrain.to_dict()
        if form == "json":  # repeated runs: one JSON document a line (JSON Lines)
            console.print_json(data, one_line=period_s is not None)
        else:
            _show(result, data.get("report"), retrain)
        for check, error in result.errors.items():
            console.error_line(f"check {check}: {error}")
        return 2 if result.errors else 0 if result.ok else 1

    if period_s is None:
        code = once()
    else:
        code = 0

        def every_once() -> None:
            nonlocal code
            code = _survive(once)

        with contextlib.suppress(KeyboardInterrupt):
            run_every(period_s, every_once, count=count)
    if code:
        raise typer.Exit(code=code)


def _survive(run: Callable[[], int]) -> int:
    """One run of a repeating monitor: a run that fails is one line on stderr, not the end
    of the loop. Returns its exit code (2 for a user error, 1 for any other)."""
    try:
        return run()
    except ReadymlError as exc:
        console.error_line(f"monitoring run failed: {exc}")
        return 2
    except Exception as exc:  # a long-running loop outlives a bad run (a locked store, a disk)
        _log.debug("monitoring run failed", exc_info=True)
        console.error_line(f"monitoring run failed: {describe_error(exc)}")
        return 1


def _show(result: MonitorReport, report: str | None, retrain: Any) -> None:
    console.table(
        f"{result.model}:{result.version} — {result.headline}",
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
        console.stdout.print(f"report: {report}")
    if retrain is not None:
        console.stdout.print(f"retrain {retrain.id}: {retrain.state}: {retrain.reason}")


def _retrain(project: Any, registry: Any, alerts: Any) -> Any:
    """Retrain on the alerts just sent when ``monitoring.on_alert`` asks for it."""
    if project.spec.monitoring.on_alert is None:
        return None
    from readyml.feedback.retrain import retrain_on_alerts
    from readyml.train import run_project
    from readyml.train.progress import SilentReporter

    with sigterm_exits():  # a terminated retrain run is recorded failed, not left running
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
    """Record labels that arrived after the predictions, joined to the log by request id.

    Each record is counted once: a new label, a relabel (replacing an earlier label of its
    id), a duplicate of the label in effect (ignored), or rejected — without an id, or with a
    label that is not one of the served model's classes (a number, for a regressor) — and
    reported by its row number. Exit code 1 when a record was rejected.
    """
    from readyml.config import Project
    from readyml.monitor import record_feedback

    form = output_format(fmt)
    loaded = Project.load(project)
    records = _records(file)
    classes, numeric = _served_labels(loaded)
    result = record_feedback(
        loaded.workspace, records, now=datetime.now(UTC), classes=classes, numeric=numeric
    )
    if form == "json":
        console.print_json(result.to_dict())
    else:
        _show_feedback(file, result)
    if result.rejected:
        raise typer.Exit(code=1)


def _show_feedback(file: Path, result: FeedbackResult) -> None:
    console.key_values(
        f"feedback from {file.name}",
        [
            ("received", f"{result.received} (= new + relabelled + duplicates + rejected)"),
            ("new", f"{result.new} (the first label of their id)"),
            ("relabelled", f"{result.relabelled} (replaced an earlier label; the later one wins)"),
            ("duplicates", f"{result.duplicates_ignored} (the label already in effect; ignored)"),
            ("rejected", result.rejected),
        ],
    )
    if result.unknown:
        console.stdout.print(
            f"  {result.unknown} of the ids labelled are not in the request log yet "
            "(kept: a label can arrive before its request is logged)"
        )
    for error in result.errors:
        console.stderr.print(f"  rejected {error}")
    if result.rejected > len(result.errors):
        console.stderr.print(f"  … and {result.rejected - len(result.errors)} more rejected")


def _served_labels(project: Project) -> tuple[list[str] | None, bool]:
    """The served version's classes, and whether its labels are numbers (no version: any)."""
    from readyml.errors import VersionNotFound
    from readyml.monitor.inputs import served_target, served_task
    from readyml.train import open_project_registry

    try:
        version = open_project_registry(project).get(served_target(project))
    except VersionNotFound:
        return None, False
    if served_task(version) == "regression":
        return None, True
    classes = version.signature.get("output", {}).get("classes")
    return ([str(c) for c in classes] if classes else None), False


def _records(path: Path) -> list[dict[str, Any]]:
    """Feedback records from a file, by its suffix."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"feedback file: expected a file, found nothing at {path}")
    if path.stat().st_size == 0:
        raise DataError(
            f"feedback file {path.name}: expected records with request_id and label, "
            "found an empty file"
        )
    suffix = path.suffix.lower()
    if suffix == ".json":
        from readyml.monitor.feedback import parse_feedback_body

        return parse_feedback_body(path.read_bytes())
    if suffix in (".jsonl", ".ndjson"):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path.name}: expected UTF-8 JSON lines ({exc.reason})") from exc
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path.name}: line {number}: not JSON ({exc.msg})") from exc
        return records
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataError(
            f"feedback file '{path.name}': expected .csv, .parquet, .json or .jsonl, "
            f"found {suffix or 'no suffix'}"
        )
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype={"request_id": str})
        else:
            frame = pd.read_parquet(path)
    except (ValueError, OSError) as exc:  # pandas' and pyarrow's parse errors are ValueErrors
        kind = "CSV" if suffix == ".csv" else "Parquet"
        reason = " ".join(str(exc).split())
        raise DataError(f"feedback file {path.name}: expected {kind} ({reason})") from exc
    if "request_id" not in frame.columns or "label" not in frame.columns:
        raise DataError(
            f"{path.name}: expected columns request_id and label, found {list(frame.columns)}"
        )
    frame = frame.astype(object).where(frame.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]
