"""The model gate: bless or veto a candidate, with reasons that name metric, threshold and value.

This first version applies the absolute rules declared under ``gates.rules``; rules relative
to the champion and to simpler baselines plug in here as more :class:`Rule` kinds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from readyml.config import GateRule

Decision = Literal["blessed", "vetoed"]


@dataclass(frozen=True)
class Reason:
    """One rule's outcome."""

    rule: str
    metric: str
    value: float | None
    threshold: float
    passed: bool
    message: str


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict and every reason behind it."""

    decision: Decision
    reasons: list[Reason] = field(default_factory=list)

    @property
    def blessed(self) -> bool:
        """Whether the candidate may be promoted."""
        return self.decision == "blessed"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, as stored with the registry version."""
        return {"decision": self.decision, "reasons": [asdict(r) for r in self.reasons]}


def _check(rule: GateRule, metrics: dict[str, float]) -> list[Reason]:
    value = metrics.get(rule.metric)
    reasons = []
    bounds = [("min", rule.min, ">="), ("max", rule.max, "<=")]
    for kind, threshold, op in bounds:
        if threshold is None:
            continue
        name = f"{rule.metric} {op} {threshold:g}"
        if value is None or math.isnan(value):
            reasons.append(
                Reason(
                    name,
                    rule.metric,
                    None,
                    threshold,
                    False,
                    f"{name}: metric '{rule.metric}' was not computed",
                )
            )
            continue
        ok = value >= threshold if kind == "min" else value <= threshold
        verdict = "passed" if ok else "failed"
        reasons.append(
            Reason(
                name,
                rule.metric,
                value,
                threshold,
                ok,
                f"{name} {verdict}: {rule.metric} = {value:.4f}",
            )
        )
    return reasons


def judge(metrics: dict[str, float], rules: list[GateRule]) -> GateDecision:
    """Bless the candidate when every rule passes, else veto it.

    >>> from readyml.config import GateRule
    >>> judge({"accuracy": 0.7}, [GateRule(metric="accuracy", min=0.8)]).decision
    'vetoed'
    """
    reasons = [reason for rule in rules for reason in _check(rule, metrics)]
    decision: Decision = "blessed" if all(r.passed for r in reasons) else "vetoed"
    return GateDecision(decision=decision, reasons=reasons)
