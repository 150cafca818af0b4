"""What the checks read: logged traffic (DuckDB over Parquet), feedback labels, the reference.

Traffic is the server's request log (``{workspace}/logs/model=NAME/version=V/hour=H/*.parquet``,
one row per predicted row: ``request_id``, ``ts``, ``model``, ``version``, the features,
``prediction``, ``proba_<class>``, ``latency_ms``, ``status``; an optional ``rss_mb`` column
holds the serving process's memory). Partitions older than the lookback are pruned by their
``hour=`` name before DuckDB opens a file, and every query opens its own connection (an
unfinished result on a shared DuckDB connection blocks the next query).

Labels arriving later (:mod:`readyml.monitor.feedback`) are joined by ``request_id``, the last
written label winning. The reference is what the served version was trained on: its training
profile (a pipeline step output), the checked-in schema, the validation split and metrics,
and the packages recorded in its lineage.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pandas as pd

from readyml.config import SPEC_FILE, MonitoringSpec, Project
from readyml.data import Profile, Schema, load_schema
from readyml.errors import DataError, ReadymlError
from readyml.registry import ModelVersion, Registry, StepRecord
from readyml.score.evidence_rows import read_evidence

LOGS_DIR: Final = "logs"
FEEDBACK_DIR: Final = "feedback"
SCHEMA_FILE: Final = "schema.yaml"
# Columns every log row has; the rest are features, proba_<class> and optional extras.
LOG_COLUMNS: Final = ("request_id", "ts", "model", "version", "prediction", "latency_ms", "status")
EXTRA_COLUMNS: Final = ("rss_mb",)
PROBA_PREFIX: Final = "proba_"
ROW_COLUMN: Final = "row"  # a row's position in its request (read_traffic's with_row)
_ROWS: Final = "request_rows"  # key of MonitorInputs.request_rows() in its cache
_HOUR = re.compile(r"^hour=(\d{10})$")


def logs_root(workspace: Path) -> Path:
    """The folder the server writes request logs under."""
    return workspace / LOGS_DIR


def log_files(
    workspace: Path, model: str, version: int | None = None, since: datetime | None = None
) -> list[str]:
    """Parquet files of ``model`` (one version or all), pruning hours before ``since``."""
    root = logs_root(workspace) / f"model={model}"
    pattern = f"version={version}" if version is not None else "version=*"
    floor = since.astimezone(UTC).strftime("%Y%m%d%H") if since is not None else None
    files: list[str] = []
    for hour_dir in sorted(root.glob(f"{pattern}/hour=*")):
        match = _HOUR.match(hour_dir.name)
        if match is None or (floor is not None and match.group(1) < floor):
            continue
        files += [str(p) for p in sorted(hour_dir.glob("part-*.parquet"))]
    return files


def feedback_files(workspace: Path) -> list[str]:
    """Parquet files of recorded feedback labels."""
    return [str(p) for p in sorted((workspace / FEEDBACK_DIR).glob("*.parquet"))]


def query(sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    """Run one query on a fresh in-memory DuckDB connection and return a frame."""
    with duckdb.connect() as con:
        try:
            return con.execute(sql, list(params)).df()
        except duckdb.Error as exc:
            # DuckDB's first line is the reason; the rest quotes the SQL with a caret.
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"request log query failed: {reason}") from exc


def latest_labels_sql(files: list[str]) -> str:
    """SQL for one label per request id: the last one written (``received``, then ``seq``)."""
    listing = _file_list(files)
    return (
        "SELECT request_id, label FROM ("
        "SELECT request_id, label, row_number() OVER (PARTITION BY request_id "
        "ORDER BY received DESC, seq DESC) AS rank "
        f"FROM read_parquet({listing}, union_by_name=true)) WHERE rank = 1"
    )


def _file_list(files: list[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def read_traffic(
    workspace: Path,
    model: str,
    *,
    version: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    with_labels: bool = True,
    with_row: bool = False,
) -> pd.DataFrame:
    """Logged rows of ``model`` (one version or all) in ``[since, until)``, labels joined.

    The ``label`` column holds the feedback label (text) or null; it is absent when no
    feedback exists and ``with_labels`` is false. With ``with_row``, a ``row`` column holds
    each row's position in its request (0 … N-1, in the order the server wrote them).
    """
    files = log_files(workspace, model, version, since)
    if not files:
        return pd.DataFrame()
    where, params = [], []
    if since is not None:
        where.append("l.ts >= ?")
        params.append(since)
    if until is not None:
        where.append("l.ts < ?")
        params.append(until)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    source = f"read_parquet({_file_list(files)}, union_by_name=true, hive_partitioning=false)"
    if with_row:
        # Numbered before the time filter; a request's rows lie in one file, in order.
        source = (
            "(SELECT * EXCLUDE (filename, file_row_number), row_number() OVER "
            '(PARTITION BY request_id ORDER BY filename, file_row_number) - 1 AS "row" '
            f"FROM read_parquet({_file_list(files)}, union_by_name=true, "
            "hive_partitioning=false, filename=true, file_row_number=true))"
        )
    labels = feedback_files(workspace) if with_labels else []
    if labels:
        sql = (
            f"SELECT l.*, f.label AS label FROM {source} l "
            f"LEFT JOIN ({latest_labels_sql(labels)}) f USING (request_id) {clause}"
        )
    else:
        sql = f"SELECT l.* FROM {source} l {clause}"
    frame = query(sql, params)
    if with_labels and "label" not in frame.columns:
        frame["label"] = pd.Series([None] * len(frame), dtype=object)
    return frame


def proba_columns(frame: pd.DataFrame) -> list[str]:
    """The ``proba_<class>`` columns, in frame order."""
    return [c for c in frame.columns if str(c).startswith(PROBA_PREFIX)]


@dataclass
class Reference:
    """What the served version was trained and validated on.

    ``profile`` covers the training data (features and label); ``valid`` is the validation
    split with the label, and ``valid_pred``/``valid_proba`` the version's predictions on it
    (each ``None`` when unavailable). ``stage_success`` maps a pipeline step name to the end
    of its last successful run for this project.
    """

    model: str
    version: int
    created_at: datetime
    task: str
    features: list[str]
    dtypes: dict[str, str]
    label: str
    classes: list[str] | None = None
    profile: Profile | None = None
    schema: Schema | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    primary: str | None = None
    packages: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    stage_success: dict[str, datetime] = field(default_factory=dict)
    retrain_every_days: float | None = None
    valid: pd.DataFrame | None = None
    valid_pred: np.ndarray | None = None
    valid_proba: np.ndarray | None = None
    previous_version: int | None = None


@dataclass
class MonitorInputs:
    """Everything one monitoring run reads, with the traffic loaded once and shared.

    Build it with :func:`load_inputs` from a project, or directly (tests, benchmarks).
    """

    workspace: Path
    project: str
    spec: MonitoringSpec
    reference: Reference
    now: datetime
    root: Path | None = None
    offline: pd.DataFrame | None = None
    _traffic: pd.DataFrame | None = field(default=None, repr=False)
    _all_versions: pd.DataFrame | None = field(default=None, repr=False)
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def since(self) -> datetime:
        """Start of the lookback."""
        from readyml.config import duration_seconds

        return self.now - timedelta(seconds=duration_seconds(self.spec.lookback, key="lookback"))

    def traffic(self) -> pd.DataFrame:
        """Served version's logged rows in the lookback, labels joined (loaded once)."""
        if self._traffic is None:
            self._traffic = read_traffic(
                self.workspace,
                self.reference.model,
                version=self.reference.version,
                since=self.since,
                until=self.now + timedelta(microseconds=1),
            )
        return self._traffic

    def all_versions(self) -> pd.DataFrame:
        """Per-row performance columns of every version of the model (for comparisons)."""
        if self._all_versions is None:
            files = log_files(self.workspace, self.reference.model, None, self.since)
            if not files:
                self._all_versions = pd.DataFrame()
            else:
                cols = "ts, version, latency_ms, status"
                # Any file may hold rss_mb: one written before the server recorded it may not.
                names = query(f"SELECT DISTINCT name FROM parquet_schema({_file_list(files)})")
                extra = ", rss_mb" if "rss_mb" in set(names["name"]) else ""
                self._all_versions = query(
                    f"SELECT {cols}{extra} FROM read_parquet({_file_list(files)}, "
                    "union_by_name=true, hive_partitioning=false) WHERE ts >= ? AND ts <= ?",
                    [self.since, self.now],
                )
        return self._all_versions

    def request_rows(self) -> pd.DataFrame:
        """:meth:`traffic` with a ``row`` column (each row's position in its request), sorted
        by request id, then row (loaded once; for per-row comparisons)."""
        frame = self.cache.get(_ROWS)
        if not isinstance(frame, pd.DataFrame):
            frame = read_traffic(
                self.workspace,
                self.reference.model,
                version=self.reference.version,
                since=self.since,
                until=self.now + timedelta(microseconds=1),
                with_row=True,
            )
            if not frame.empty:
                frame = frame.sort_values(["request_id", ROW_COLUMN], kind="stable")
                frame = frame.reset_index(drop=True)
            self.cache[_ROWS] = frame
        return frame

    def window_edges(self) -> list[datetime]:
        """``windows + 1`` edges cutting the traffic's time span into equal windows."""
        frame = self.traffic()
        if frame.empty:
            return [self.since, self.now]
        start = pd.Timestamp(frame["ts"].min()).to_pydatetime()
        end = pd.Timestamp(frame["ts"].max()).to_pydatetime() + timedelta(microseconds=1)
        n = self.spec.windows
        step = (end - start) / n
        return [start + step * i for i in range(n)] + [end]

    def window_index(self) -> np.ndarray:
        """Window number (0 … windows-1) of each traffic row."""
        frame = self.traffic()
        edges = _naive_us(pd.DatetimeIndex(self.window_edges()))
        stamps = _naive_us(pd.DatetimeIndex(frame["ts"]))
        cuts = edges[1:-1]
        return np.searchsorted(cuts, stamps, side="right")

    def features(self) -> pd.DataFrame:
        """The served feature columns of the traffic (those the reference knows)."""
        frame = self.traffic()
        return frame[[c for c in self.reference.features if c in frame.columns]]


def _naive_us(index: pd.DatetimeIndex) -> np.ndarray:
    """Microseconds since the epoch (UTC) of each stamp."""
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.to_numpy(dtype="datetime64[us]").astype(np.int64)


def load_inputs(
    project: Project,
    registry: Registry,
    *,
    now: datetime | None = None,
    ref: str | None = None,
) -> MonitorInputs:
    """Inputs of a monitoring run of ``project`` (the served version: ``monitoring.model``,
    else the champion)."""
    version = registry.get(served_target(project, ref))
    reference = load_reference(project, registry, version)
    return MonitorInputs(
        workspace=project.workspace,
        project=project.spec.name,
        spec=project.spec.monitoring,
        reference=reference,
        now=now or datetime.now(UTC),
        root=project.root,
    )


def served_target(project: Project, ref: str | None = None) -> str:
    """The version monitored: ``ref``, else ``monitoring.model``, else the champion."""
    spec = project.spec
    return ref or spec.monitoring.model or f"{spec.name}@champion"


def served_task(version: ModelVersion) -> str:
    """``classification`` or ``regression``, from the version's signature or metrics."""
    output = version.signature.get("output", {})
    return str(output.get("task") or (version.metrics or {}).get("task") or "classification")


def load_reference(project: Project, registry: Registry, version: ModelVersion) -> Reference:
    """The served version's training reference (see :class:`Reference`)."""
    signature = version.signature
    inputs = signature.get("inputs", [])
    output = signature.get("output", {})
    metrics = version.metrics or {}
    env = version.lineage.get("fingerprints", {}).get("environment", {})
    run_id = version.run_id or version.lineage.get("run_id")
    steps = registry.store.steps_for_run(run_id) if run_id else []
    classes = output.get("classes")
    reference = Reference(
        model=version.name,
        version=version.version,
        created_at=_aware(version.created_at),
        task=served_task(version),
        features=[str(c["name"]) for c in inputs],
        dtypes={str(c["name"]): str(c.get("dtype", "")) for c in inputs},
        label=project.spec.label,
        classes=[str(c) for c in classes] if classes is not None else None,
        schema=_schema(project.root),
        metrics=dict(metrics.get("valid", {})),
        primary=metrics.get("primary"),
        packages=dict(env.get("packages", {})),
        run_id=run_id,
        stage_success=registry.store.last_step_successes(project.spec.name),
        retrain_every_days=_retrain_every(registry, project.spec.name, version),
        previous_version=version.parent_version,
    )
    profile = step_output(registry, project.spec.name, steps, "profile", "profile")
    if isinstance(profile, dict):
        reference.profile = Profile.from_dict(profile)
    valid = step_output(registry, project.spec.name, steps, "split", "valid")
    if isinstance(valid, pd.DataFrame):
        reference.valid = valid
        _predict_valid(registry, version, reference, project.trusted_types())
    return reference


def _aware(stamp: datetime) -> datetime:
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _schema(root: Path) -> Schema | None:
    path = root / SCHEMA_FILE
    return load_schema(path) if path.exists() else None


def _retrain_every(registry: Registry, project: str, version: ModelVersion) -> float | None:
    staleness = (version.metrics or {}).get("staleness") or {}
    value = staleness.get("retrain_every_days") if isinstance(staleness, dict) else None
    if value is None:
        # Row by row, as the score reads them: a damaged evidence row is skipped, not raised.
        evidence_rows, _ = read_evidence(registry, project, test_id="model-4")
        for evidence in reversed(evidence_rows):
            if evidence.model_name in (None, version.name):
                value = evidence.details.get("retrain_every_days")
                if value is not None:
                    break
    return float(value) if isinstance(value, int | float) else None


def step_output(
    registry: Registry, project: str, steps: list[StepRecord], step: str, name: str
) -> Any:
    """A step's stored output for a run (following a cached step to the run that computed it).

    ``None`` when the run has no such step or output.
    """
    record = next((s for s in steps if s.name == step), None)
    if record is None:
        return None
    if name not in record.outputs and record.input_fingerprint:
        record = registry.store.find_cached_step(project, step, record.input_fingerprint)
    if record is None or name not in record.outputs:
        return None
    meta = record.outputs[name]
    files = {
        f["name"]: registry.artifacts.get_bytes(
            f["key"], sha256=f["sha256"], label=f"output '{name}' of step '{step}'"
        )
        for f in meta["files"]
    }
    if meta["kind"] == "json":
        import json

        return json.loads(files["value.json"])
    if meta["kind"] == "frame":
        from io import BytesIO

        return pd.read_parquet(BytesIO(files["data.parquet"]))
    return None


def _predict_valid(
    registry: Registry, version: ModelVersion, reference: Reference, trusted_types: Sequence[str]
) -> None:
    """The version's predictions on the validation split (prediction bias, CBPE calibration)."""
    from readyml.predict import Predictor

    valid = reference.valid
    if valid is None or not all(f in valid.columns for f in reference.features):
        return
    try:
        predictor = Predictor.load(registry, version.ref, trusted_types=trusted_types)
        model = predictor.model
        X = valid[reference.features]
        reference.valid_pred = np.asarray(model.predict(X))
        if reference.task == "classification" and getattr(model, "has_proba", False):
            reference.valid_proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    except ReadymlError:
        reference.valid_pred = None


def project_root_of(workspace: Path) -> Path | None:
    """The project folder holding ``workspace`` (``None`` when it has no ``readyml.yaml``)."""
    root = workspace.parent
    return root if (root / SPEC_FILE).exists() else None
