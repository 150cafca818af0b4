from __future__ import annotations

import numpy as np
import pytest

from readyml.config import GateRule
from readyml.errors import ConfigError
from readyml.evaluate import compute_metrics, judge, primary_metric


def test_gate_blesses_when_every_rule_passes() -> None:
    decision = judge(
        {"accuracy": 0.9, "log_loss": 0.3},
        [GateRule(metric="accuracy", min=0.8), GateRule(metric="log_loss", max=0.5)],
    )
    assert decision.blessed
    assert [r.passed for r in decision.reasons] == [True, True]


def test_gate_veto_names_metric_threshold_and_value() -> None:
    decision = judge({"accuracy": 0.61}, [GateRule(metric="accuracy", min=0.8)])
    assert decision.decision == "vetoed"
    assert decision.reasons[0].message == "accuracy >= 0.8 failed: accuracy = 0.6100"


def test_gate_vetoes_a_metric_that_was_not_computed() -> None:
    decision = judge({"accuracy": 0.9}, [GateRule(metric="roc_auc", min=0.7)])
    assert not decision.blessed
    assert "was not computed" in decision.reasons[0].message


def test_metrics_match_hand_computed_values() -> None:
    y = np.array(["a", "a", "b", "b"])
    pred = np.array(["a", "b", "b", "b"])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    metrics = compute_metrics("classification", y, pred, proba, np.array(["a", "b"]))
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["roc_auc"] == pytest.approx(1.0)
    reg = compute_metrics("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert reg["mae"] == pytest.approx(2 / 3)
    assert reg["rmse"] == pytest.approx(np.sqrt(4 / 3))


def test_primary_metric_must_fit_the_task() -> None:
    assert primary_metric("regression", None) == "rmse"
    with pytest.raises(ConfigError, match="expected a regression metric"):
        primary_metric("regression", "accuracy")
