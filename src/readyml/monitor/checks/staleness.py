"""Monitor 4: the served model is not too stale.

The age of the served version (since it was registered) and of each pipeline stage's last
success are compared with limits: ``max_model_age``, else the retraining period the
evaluation's staleness curve recommends (model-4), else ``default_max_age``; a stage uses its
own ``max_stage_age`` entry or the model's limit. A stage named in ``max_stage_age`` that
never succeeded fires too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from readyml.config import duration_seconds
from readyml.monitor.checks._base import CheckResult, Finding, verdict
from readyml.monitor.inputs import MonitorInputs

_DAY_S = 86400.0


class StalenessCheck:
    """Age of the served model and of pipeline stages against limits.

    Args:
        max_model_age: a duration (``30d``); ``None``: from the staleness curve.
        default_max_age: the limit when neither is known.
        max_stage_age: duration per pipeline step name.
    """

    name: ClassVar[str] = "staleness"
    test_id: ClassVar[str] = "monitor-4"

    def __init__(
        self,
        *,
        max_model_age: str | None = None,
        default_max_age: str = "90d",
        max_stage_age: dict[str, str] | None = None,
    ) -> None:
        self.max_model_age = max_model_age
        self.default_max_age = default_max_age
        self.max_stage_age = max_stage_age

    def run(self, inputs: MonitorInputs) -> CheckResult:
        ref = inputs.reference
        if self.max_model_age is not None:
            limit_days, origin = duration_seconds(self.max_model_age) / _DAY_S, "max_model_age"
        elif ref.retrain_every_days is not None and ref.retrain_every_days > 0:
            limit_days, origin = ref.retrain_every_days, "staleness curve (model-4)"
        else:
            limit_days, origin = duration_seconds(self.default_max_age) / _DAY_S, "default_max_age"
        findings: list[Finding] = []
        model_age = _days(inputs.now, ref.created_at)
        if model_age > limit_days:
            findings.append(
                Finding(
                    key="model_age",
                    message=f"{ref.model}:{ref.version} is {model_age:.1f} days old; limit "
                    f"{limit_days:.1f} days ({origin})",
                    value=model_age,
                    threshold=limit_days,
                )
            )
        stages = self._stages(inputs, limit_days, findings)
        return verdict(
            self.name,
            self.test_id,
            findings,
            f"model {model_age:.1f} days old (limit {limit_days:.1f}, {origin}); "
            f"{len(stages)} stage(s) checked",
            details={
                "model_age_days": model_age,
                "limit_days": limit_days,
                "limit_from": origin,
                "stages": stages,
            },
        )

    def _stages(
        self, inputs: MonitorInputs, limit_days: float, findings: list[Finding]
    ) -> dict[str, Any]:
        """Each stage's age against its limit; a configured stage that never succeeded fires."""
        success = inputs.reference.stage_success
        limits = self.max_stage_age or {}
        stages: dict[str, Any] = {}
        for step in sorted({*success, *limits}):
            stage_limit = duration_seconds(limits[step]) / _DAY_S if step in limits else limit_days
            ended = success.get(step)
            age = None if ended is None else _days(inputs.now, ended)
            stages[step] = {
                "age_days": age,
                "limit_days": stage_limit,
                "last_success": None if ended is None else ended.isoformat(),
            }
            if age is None:
                findings.append(_stage_finding(step, "has never succeeded", None, stage_limit))
            elif age > stage_limit:
                said = f"last succeeded {age:.1f} days ago"
                findings.append(_stage_finding(step, said, age, stage_limit))
        return stages


def _stage_finding(step: str, what: str, age: float | None, limit: float) -> Finding:
    return Finding(
        key=f"stage:{step}",
        message=f"pipeline stage {step} {what}; limit {limit:.1f} days",
        value=age,
        threshold=limit,
        labels={"stage": step},
    )


def _days(now: datetime, then: datetime) -> float:
    return (now - then).total_seconds() / _DAY_S
