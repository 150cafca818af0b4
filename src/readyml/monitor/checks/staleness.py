"""Monitor 4: the served model is not too stale.

The age of the served version (since it was registered) and of each pipeline stage's last
success are compared with limits: ``max_model_age``, else the retraining period the
evaluation's staleness curve recommends (model-4), else ``default_max_age``; a stage uses its
own ``max_stage_age`` entry or the model's limit.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

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
        stages = {}
        for step, ended in sorted(ref.stage_success.items()):
            text = (self.max_stage_age or {}).get(step)
            stage_limit = duration_seconds(text) / _DAY_S if text else limit_days
            age = _days(inputs.now, ended)
            stages[step] = {
                "age_days": age,
                "limit_days": stage_limit,
                "last_success": ended.isoformat(),
            }
            if age > stage_limit:
                findings.append(
                    Finding(
                        key=f"stage:{step}",
                        message=f"pipeline stage {step} last succeeded {age:.1f} days ago; "
                        f"limit {stage_limit:.1f} days",
                        value=age,
                        threshold=stage_limit,
                        labels={"stage": step},
                    )
                )
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


def _days(now: datetime, then: datetime) -> float:
    return (now - then).total_seconds() / _DAY_S
