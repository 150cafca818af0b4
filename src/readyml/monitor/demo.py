"""The monitoring part of the demo, and an offline replay that writes logs like the server.

:func:`monitor_demo` runs after the server replayed the 2014–2015 "production" rows and the
labels were fed back: it runs every check, prints the alerts (a real drift alert, a quality
drop) and the report's path. :func:`replay_offline` produces the same request log without a
server (the champion predicts each row; each row gets a request id and an arrival time), so
the monitor can be shown and tested on real data anywhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.markup import escape

from readyml import _console as console
from readyml.config import Project
from readyml.monitor.alerts import Sink
from readyml.monitor.feedback import record_feedback
from readyml.monitor.inputs import logs_root
from readyml.monitor.monitor import MonitorReport, report_path, run_monitor
from readyml.monitor.report import write_report
from readyml.predict import Predictor
from readyml.registry import Registry


def write_log(workspace: Path, frame: pd.DataFrame) -> list[Path]:
    """Write log rows (the server's columns) into ``model=/version=/hour=`` partitions."""
    written: list[Path] = []
    stamps = pd.DatetimeIndex(frame["ts"])
    hours = (
        stamps.tz_convert("UTC").strftime("%Y%m%d%H") if stamps.tz else stamps.strftime("%Y%m%d%H")
    )
    keys = pd.DataFrame(
        {"model": frame["model"].astype(str), "version": frame["version"], "hour": hours}
    )
    for (model, version, hour), rows in keys.groupby(["model", "version", "hour"], sort=True):
        folder = logs_root(workspace) / f"model={model}" / f"version={version}" / f"hour={hour}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{uuid.uuid4().hex}.parquet"
        part = frame.loc[rows.index].reset_index(drop=True)
        part.attrs = {}
        table = pa.Table.from_pandas(part, preserve_index=False)
        pq.write_table(table, path)
        written.append(path)
    return written


def replay_offline(
    project: Project,
    registry: Registry,
    rows: pd.DataFrame,
    *,
    ref: str | None = None,
    start: datetime | None = None,
    step: timedelta = timedelta(seconds=1),
    latency_ms: float = 2.0,
) -> pd.DataFrame:
    """Predict ``rows`` with the served version and log them as the server would.

    Returns the log rows written (with ``request_id``; the label column is not logged).
    """
    predictor = Predictor.load(
        registry, ref or f"{project.spec.name}@champion", trusted_types=project.trusted_types()
    )
    model = predictor.model
    X = rows[predictor.names].reset_index(drop=True)
    start = start or datetime.now(UTC) - step * len(rows)
    frame = pd.DataFrame(
        {
            "request_id": [uuid.uuid4().hex for _ in range(len(X))],
            "ts": pd.DatetimeIndex([start + step * i for i in range(len(X))]).as_unit("us"),
            "model": predictor.name,
            "version": np.int64(predictor.version),
        }
    )
    frame = pd.concat([frame, X], axis=1)
    frame["prediction"] = np.asarray(model.predict(X))
    if predictor.has_proba and predictor.classes is not None:
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        for k, cls in enumerate(predictor.classes):
            frame[f"proba_{cls}"] = proba[:, k]
    frame["latency_ms"] = latency_ms
    frame["status"] = np.int32(200)
    write_log(project.workspace, frame)
    return frame


def feed_back(project: Project, log: pd.DataFrame, labels: Sequence[object]) -> None:
    """Record ``labels`` (one per logged row) as feedback for the rows' request ids."""
    record_feedback(
        project.workspace,
        [{"request_id": r, "label": y} for r, y in zip(log["request_id"], labels, strict=True)],
    )


def monitor_demo(
    project: Project,
    registry: Registry,
    *,
    now: datetime | None = None,
    sinks: Sequence[Sink] | None = None,
) -> tuple[MonitorReport, Path]:
    """Run the monitor on the replayed traffic, print its alerts and write the HTML report."""
    report = run_monitor(project, registry, now=now, sinks=sinks)
    path = write_report(report, report_path(project.workspace, report.at))
    console.stdout.print(
        f"\n[bold]monitoring[/] {escape(report.model)}:{report.version} "
        f"over {report.rows:,} logged rows"
    )
    console.table(
        None,
        ["test", "check", "status", "summary"],
        [[c.test_id, c.check, c.status, c.summary] for c in report.checks],
    )
    for alert in report.alerts:
        console.stdout.print(
            f"  [red]ALERT[/] {alert.severity:8} {escape(alert.name)}: "
            f"{escape(alert.annotations.get('summary', ''))}"
        )
    console.stdout.print(f"report: {path}")
    return report, path
