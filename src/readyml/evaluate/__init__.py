"""Model validation: metrics and the bless-or-veto gate."""

from readyml.evaluate.gate import GateDecision, Reason, judge
from readyml.evaluate.metrics import HIGHER_IS_BETTER, compute_metrics, primary_metric

__all__ = [
    "HIGHER_IS_BETTER",
    "GateDecision",
    "Reason",
    "compute_metrics",
    "judge",
    "primary_metric",
]
