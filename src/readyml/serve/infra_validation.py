"""Infra validation: a candidate loads in the serving runtime and answers recorded requests.

ML Test Score, Infra 6 ("models are tested via a canary process before they enter
production serving"): before any traffic reaches a version, the server loads it, warms it
up, then replays the version's recorded ``input_example`` rows and a few rows from the
request log (a tensor model, which logs no inputs, replays a few inputs of its signature's
shape). Every answer must have one output per input row, no NaN or infinity, and each
replay call must finish within the latency budget. A version that fails never serves; the
reason is recorded as evidence ``infra-6`` with ``passed=False``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from readyml.errors import ReadymlError, ServeError
from readyml.predict import Part, Prediction, Predictor, nonfinite_rows
from readyml.registry import ModelVersion, Registry
from readyml.registry.reports import keep_json_report, key_part, stamp
from readyml.types import JSON, Evidence

INFRA_TEST_ID = "infra-6"
PROBE_TENSORS = 4  # inputs made for a tensor model's replay


class InfraValidationFailed(ServeError):
    """A candidate failed infra validation (load, warm-up or replay); it never serves."""

    status_code = 422


@dataclass
class InfraReport:
    """The outcome of one infra validation: passed, the reason when not, and the numbers."""

    ref: str
    passed: bool
    reason: str = ""
    details: JSON = field(default_factory=dict)

    def to_dict(self) -> JSON:
        """A JSON-ready dict."""
        return {"ref": self.ref, "passed": self.passed, "reason": self.reason, **self.details}


class InfraValidator:
    """Load, warm up and replay recorded rows through a candidate version.

    A tensor model's replay is :data:`PROBE_TENSORS` inputs of its signature's shape.

    Args:
        latency_budget_ms: Longest accepted replay call (one row, or all rows at once).
        log_rows: Rows taken from the request log of the model, when there is one.

    Example:
        >>> InfraValidator(latency_budget_ms=250.0).latency_budget_ms
        250.0
    """

    def __init__(self, *, latency_budget_ms: float = 1000.0, log_rows: int = 20) -> None:
        self.latency_budget_ms = latency_budget_ms
        self.log_rows = log_rows

    def run(
        self,
        ref: str,
        *,
        load: Callable[[str], Predictor],
        version: ModelVersion,
        logs: Path | None = None,
    ) -> tuple[InfraReport, Predictor | None]:
        """Validate ``ref``; return the report and, when it passed, the loaded predictor."""
        started_s = time.monotonic()
        try:
            predictor = load(ref)
        except ReadymlError as exc:
            return InfraReport(ref, False, f"load failed: {exc}"), None
        load_s = time.monotonic() - started_s
        rows = [dict(row) for row in version.input_example]
        if logs is not None and self.log_rows:
            rows.extend(logged_rows(logs, predictor, self.log_rows))
        details: JSON = {"load_s": round(load_s, 4)}
        try:
            parts = replay_parts(predictor, rows)
        except ReadymlError as exc:
            details["replayed_rows"] = len(rows)
            return InfraReport(ref, False, f"replay failed: {exc}", details), None
        details["replayed_rows"] = len(parts)
        if not parts:
            reason = "no rows to replay: the version has no input_example and no logged requests"
            return InfraReport(ref, False, reason, details), None
        try:
            predictor.predict_parts(parts[:1])  # warm-up, not timed against the budget
            slowest_ms = 0.0
            for batch in [parts, *[[part] for part in parts]]:
                call_s = time.monotonic()
                prediction = predictor.predict_parts(batch)
                elapsed_ms = (time.monotonic() - call_s) * 1000
                slowest_ms = max(slowest_ms, elapsed_ms)
                problem = output_problem(prediction, len(batch))
                if problem is not None:
                    details["slowest_call_ms"] = round(slowest_ms, 3)
                    return InfraReport(ref, False, problem, details), None
                if elapsed_ms > self.latency_budget_ms:
                    details["slowest_call_ms"] = round(slowest_ms, 3)
                    reason = (
                        f"replay of {len(batch)} row(s) took {elapsed_ms:.1f} ms, expected at "
                        f"most {self.latency_budget_ms:.1f} ms"
                    )
                    return InfraReport(ref, False, reason, details), None
        except Exception as exc:  # any failure of the candidate is a verdict, not a crash
            reason = f"replay failed: {type(exc).__name__}: {exc}"
            return InfraReport(ref, False, reason, details), None
        details["slowest_call_ms"] = round(slowest_ms, 3)
        return InfraReport(ref, True, "", details), predictor


def replay_parts(predictor: Predictor, rows: Sequence[JSON]) -> list[Part]:
    """One request part per row to replay; for a tensor model without recorded rows, a few
    made from its signature (tensor models log no inputs, and their examples are arrays).

    Raises:
        InvalidInput: A recorded row does not fit the version's signature.
    """
    if predictor.layout != "tensor":
        return [predictor.from_records([row])[0] for row in rows]
    shape = predictor.tensor_shape[1:]
    if any(size is None for size in shape):
        return []  # no size to make an input of: "no rows to replay"
    dtype = np.dtype(predictor.signature["inputs"][0].get("dtype", "float32"))
    random = np.random.default_rng(0)
    sizes = [int(size) for size in shape if size is not None]
    size = (PROBE_TENSORS, *sizes)
    if dtype.kind in "iub":
        array = random.integers(0, 2, size=size).astype(dtype)
    else:
        array = random.standard_normal(size).astype(dtype)
    return [predictor.from_tensor(array[index : index + 1])[0] for index in range(len(array))]


def output_problem(prediction: Prediction, rows: int) -> str | None:
    """What is wrong with a prediction of ``rows`` rows (shape, NaN, inf), or ``None``."""
    if prediction.rows != rows or len(prediction.labels) != rows:
        return f"output has {len(prediction.labels)} row(s), expected {rows}"
    bad = nonfinite_rows(prediction)
    if bad:
        return f"output has NaN or infinite values in {bad} of {rows} row(s)"
    return None


def logged_rows(folder: Path, predictor: Predictor, limit: int) -> list[JSON]:
    """Up to ``limit`` feature rows from the newest request-log files of the model."""
    files = sorted(
        (folder / f"model={predictor.name}").glob("version=*/hour=*/part-*.parquet"),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    rows: list[JSON] = []
    for path in files:
        try:
            table = pq.read_table(path, columns=predictor.names)
        except (OSError, KeyError, ValueError):
            continue  # an older file of another signature: skip it
        records: list[dict[str, Any]] = table.slice(0, limit - len(rows)).to_pylist()
        rows.extend(records)
        if len(rows) >= limit:
            break
    return rows


def record_failure(
    registry: Registry, project: str, version: ModelVersion, report: InfraReport
) -> None:
    """Record a failed validation as evidence ``infra-6`` (passed=False) for the version,
    linked to the validation's report in the artifact store."""
    details = {"check": "infra_validation", **report.to_dict()}
    key = f"infra-validation/{key_part(version.name)}-v{version.version}/{stamp(datetime.now(UTC))}"
    # The validation's failure is what the caller reports, not the store's.
    what = f"infra validation of {version.name}:{version.version}"
    artifact = keep_json_report(registry, f"{key}.json", details, what=what)
    registry.add_evidence(
        Evidence(
            test_id=INFRA_TEST_ID,
            passed=False,
            automated=True,
            project=project,
            details=details,
            model_name=version.name,
            version=version.version,
            artifact=artifact,
        )
    )
