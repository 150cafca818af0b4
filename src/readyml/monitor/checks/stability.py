"""Monitor 5: numerical stability — no NaN or infinity in served inputs and outputs.

Served traffic: every numeric input column, the numeric prediction and each ``proba_<class>``
column is scanned for NaN and ±inf; a share above ``max_nonfinite_share`` fires. Training:
:class:`TrainingGuard` is the PyTorch hook — called after each optimisation step, it stops at
the first NaN/inf loss, and at each epoch end checks weight bounds and the share of dead ReLU
units per layer (units that output zero for every row of a probe batch).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from readyml.errors import NumericalInstability
from readyml.flavors.guard import TrainingGuard
from readyml.monitor.checks._base import CheckResult, Finding, skipped, verdict
from readyml.monitor.inputs import MonitorInputs, proba_columns


class StabilityCheck:
    """NaN/inf shares in served inputs and outputs.

    Args:
        max_nonfinite_share: share of non-finite values a column may have.
    """

    name: ClassVar[str] = "stability"
    test_id: ClassVar[str] = "monitor-5"

    def __init__(self, *, max_nonfinite_share: float = 0.0) -> None:
        self.max_nonfinite_share = max_nonfinite_share

    def run(self, inputs: MonitorInputs) -> CheckResult:
        frame = inputs.traffic()
        if frame.empty:
            return skipped(self.name, self.test_id, "no logged traffic in the lookback")
        columns = [*inputs.features().columns, "prediction", *proba_columns(frame)]
        counts: dict[str, dict[str, int]] = {}
        findings: list[Finding] = []
        for name in columns:
            if name not in frame.columns or not pd.api.types.is_numeric_dtype(frame[name]):
                continue
            values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            nan = int(np.isnan(values).sum())
            inf = int(np.isinf(values).sum())
            counts[name] = {"nan": nan, "inf": inf}
            share = (nan + inf) / len(values)
            if nan + inf and share > self.max_nonfinite_share:
                side = "output" if name == "prediction" or name.startswith("proba_") else "input"
                findings.append(
                    Finding(
                        key=f"nonfinite:{name}",
                        message=f"{side} {name}: {nan} NaN and {inf} infinite of "
                        f"{len(values):,} values",
                        severity="critical" if side == "output" else "warning",
                        value=share,
                        threshold=self.max_nonfinite_share,
                        labels={"feature": name},
                    )
                )
        total = sum(c["nan"] + c["inf"] for c in counts.values())
        return verdict(
            self.name,
            self.test_id,
            findings,
            f"{total} non-finite values in {len(counts)} numeric columns of {len(frame):,} rows",
            details={"rows": len(frame), "columns": counts},
        )


__all__ = ["NumericalInstability", "StabilityCheck", "TrainingGuard"]
