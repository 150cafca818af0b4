"""Monitor 2: data invariants hold in served inputs.

The logged inputs of the lookback are validated against the checked-in schema with
:func:`readyml.data.validate_frame` (types, ranges, categories, nulls, NaN/inf); the count of
each anomaly kind is reported, and error anomalies beyond ``max_errors`` fire. The served
profile computed on the way is kept for the drift part of Monitor 3.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from readyml.data import Schema, ValidationOptions, validate_frame
from readyml.monitor.checks._base import CheckResult, Finding, skipped, verdict
from readyml.monitor.inputs import MonitorInputs

SERVED_PROFILE = "served_profile"  # key of the served profile in ``MonitorInputs.cache``


class InvariantCheck:
    """Validate served inputs against the schema; count each anomaly kind.

    Args:
        max_errors: error anomalies allowed before the check fails.
        max_null_share: share of nulls above which a nullable column is flagged.
    """

    name: ClassVar[str] = "invariants"
    test_id: ClassVar[str] = "monitor-2"

    def __init__(self, *, max_errors: int = 0, max_null_share: float = 0.5) -> None:
        self.max_errors = max_errors
        self.max_null_share = max_null_share

    def run(self, inputs: MonitorInputs) -> CheckResult:
        frame = inputs.features()
        if frame.empty:
            return skipped(self.name, self.test_id, "no logged traffic in the lookback")
        schema = inputs.reference.schema
        if schema is not None:
            # The checked-in schema also lists the label and excluded columns: not served.
            wanted = set(inputs.reference.features)
            schema = Schema(features=[f for f in schema.features if f.name in wanted], label=None)
        report = validate_frame(
            frame, schema=schema, options=ValidationOptions(max_null_share=self.max_null_share)
        )
        inputs.cache[SERVED_PROFILE] = report.profile
        counts = Counter(a.kind for a in report.anomalies)
        errors = report.errors
        findings = []
        if len(errors) > self.max_errors:
            findings = [
                Finding(
                    key=f"{a.kind}:{a.column or '*'}",
                    message=f"{a.kind} in {a.column or 'the inputs'}: expected {a.expected}, "
                    f"found {a.found}",
                    severity="critical"
                    if a.kind in ("missing_column", "type_mismatch")
                    else "warning",
                    labels={"feature": a.column or "", "anomaly": a.kind},
                )
                for a in errors
            ]
        summary = (
            f"{len(report.anomalies)} anomalies ({len(errors)} errors) in "
            f"{report.n_rows:,} served rows"
            + ("" if schema is not None else "; no schema.yaml, schema-free checks only")
        )
        return verdict(
            self.name,
            self.test_id,
            findings,
            summary,
            details={
                "rows": report.n_rows,
                "errors": len(errors),
                "max_errors": self.max_errors,
                "counts": dict(sorted(counts.items())),
                "anomalies": [a.to_dict() for a in report.anomalies],
                "schema": schema is not None,
            },
        )
