"""Model validation: metrics, slices, baselines, importance, fairness, staleness, the gate,
tuning and reports. The entry points are :func:`evaluate_model` and :func:`gate`."""

from readyml.evaluate.evaluator import evaluate_model, evaluate_on_rows, model_inputs, predict
from readyml.evaluate.gate import GateDecision, Reason, gate, judge
from readyml.evaluate.metrics import (
    HIGHER_IS_BETTER,
    ConfidenceInterval,
    bootstrap_ci,
    compute_metrics,
    primary_metric,
)
from readyml.evaluate.report import curves, write_report
from readyml.evaluate.review import review_state
from readyml.evaluate.staleness import staleness_curve
from readyml.evaluate.tuning import StudyResult, run_study, write_back_params

__all__ = [
    "HIGHER_IS_BETTER",
    "ConfidenceInterval",
    "GateDecision",
    "Reason",
    "StudyResult",
    "bootstrap_ci",
    "compute_metrics",
    "curves",
    "evaluate_model",
    "evaluate_on_rows",
    "gate",
    "judge",
    "model_inputs",
    "predict",
    "primary_metric",
    "review_state",
    "run_study",
    "staleness_curve",
    "write_back_params",
    "write_report",
]
