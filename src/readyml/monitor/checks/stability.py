"""Monitor 5: numerical stability — no NaN or infinity in served inputs and outputs.

Served traffic: every numeric input column, the numeric prediction and each ``proba_<class>``
column is scanned for NaN and ±inf; a share above ``max_nonfinite_share`` fires. Training:
:class:`TrainingGuard` is the PyTorch hook — called after each optimisation step, it stops at
the first NaN/inf loss, and at each epoch end checks weight bounds and the share of dead ReLU
units per layer (units that output zero for every row of a probe batch).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from readyml.errors import ReadymlError
from readyml.monitor.checks._base import CheckResult, Finding, skipped, verdict
from readyml.monitor.inputs import MonitorInputs, proba_columns


class NumericalInstability(ReadymlError):
    """Training produced a NaN/inf loss, weights out of bounds or too many dead units."""

    status_code = 422


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


class TrainingGuard:
    """PyTorch training hook: stop at the first NaN/inf loss; check weights and dead ReLUs.

    Call :meth:`after_step` with each batch's loss and :meth:`after_epoch` with the module
    and a probe batch. Either raises :class:`NumericalInstability` naming the problem.

    Args:
        max_abs_weight: largest absolute weight allowed.
        max_dead_share: largest share of ReLU units that are zero for the whole probe batch.

    Example:
        >>> guard = TrainingGuard()
        >>> guard.after_step(0.5)
        >>> guard.after_step(float("nan"))
        Traceback (most recent call last):
        ...
        readyml.monitor.checks.stability.NumericalInstability: training loss is nan at step 2; ...
    """

    def __init__(self, *, max_abs_weight: float = 1e4, max_dead_share: float = 0.9) -> None:
        self.max_abs_weight = max_abs_weight
        self.max_dead_share = max_dead_share
        self.steps_ = 0
        self.report_: dict[str, Any] = {}

    def after_step(self, loss: float) -> None:
        """Record one step's loss; raise on NaN or infinity."""
        self.steps_ += 1
        value = float(loss)
        if not math.isfinite(value):
            raise NumericalInstability(f"training loss is {value} at step {self.steps_}; stopped")

    def after_epoch(self, module: Any, probe: Any) -> dict[str, Any]:
        """Check weight bounds and dead ReLU units on ``probe`` (a tensor batch)."""
        import torch

        largest = 0.0
        for name, parameter in module.named_parameters():
            data = parameter.detach()
            if not bool(torch.isfinite(data).all()):
                raise NumericalInstability(f"weights of {name} hold NaN or infinity")
            largest = max(largest, float(data.abs().max()))
        dead: dict[str, float] = {}
        hooks = []

        def watch(layer_name: str) -> Any:
            def hook(_module: Any, _inputs: Any, output: Any) -> None:
                flat = output.detach().reshape(output.shape[0], -1)
                dead[layer_name] = float((flat <= 0).all(dim=0).float().mean())

            return hook

        for layer_name, layer in module.named_modules():
            if isinstance(layer, torch.nn.ReLU):
                hooks.append(layer.register_forward_hook(watch(layer_name)))
        try:
            with torch.no_grad():
                module(probe)
        finally:
            for handle in hooks:
                handle.remove()
        self.report_ = {"max_abs_weight": largest, "dead_relu_share": dead}
        if largest > self.max_abs_weight:
            raise NumericalInstability(
                f"largest weight {largest:.3g} exceeds the bound {self.max_abs_weight:g}"
            )
        for layer_name, share in dead.items():
            if share > self.max_dead_share:
                raise NumericalInstability(
                    f"ReLU {layer_name}: {share:.0%} of units dead on the probe batch; "
                    f"at most {self.max_dead_share:.0%} allowed"
                )
        return self.report_
