from __future__ import annotations

import numpy as np
import pytest

from readyml.evaluate import bootstrap_ci, compute_metrics
from readyml.evaluate.metrics import bootstrap_margin, calibration_error


def _binary(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=rows)
    p1 = np.clip(0.7 * y + 0.15 + rng.normal(0, 0.2, size=rows), 0.01, 0.99)
    proba = np.column_stack([1 - p1, p1])
    return y, (p1 > 0.5).astype(int), proba


def test_classification_metrics_match_hand_computed_values() -> None:
    y = np.array(["a", "a", "b", "b"])
    pred = np.array(["a", "b", "b", "b"])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    m = compute_metrics("classification", y, pred, proba, np.array(["a", "b"]))
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["recall_macro"] == pytest.approx(0.75)
    assert m["precision_macro"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert m["roc_auc"] == pytest.approx(1.0) and m["pr_auc"] == pytest.approx(1.0)
    assert m["brier"] == pytest.approx(np.mean([0.01, 0.36, 0.04, 0.09]))
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.7])))


def test_regression_metrics_include_mape() -> None:
    m = compute_metrics("regression", np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 3.0]))
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert m["mape"] == pytest.approx((0 + 0.5 + 0.25) / 3)


def test_calibration_error_is_zero_for_calibrated_confidence() -> None:
    y = np.array([1, 1, 1, 0])  # 75% of the 0.75-confidence predictions are right
    proba = np.tile([0.25, 0.75], (4, 1))
    assert calibration_error(y, proba, np.array([0, 1])) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "metric", ["accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"]
)
def test_bootstrap_interval_contains_the_value_and_narrows_with_more_rows(metric: str) -> None:
    small = bootstrap_ci(metric, "classification", *_split(_binary(200)), resamples=200, seed=1)
    large = bootstrap_ci(metric, "classification", *_split(_binary(5000)), resamples=200, seed=1)
    for ci in (small, large):
        assert ci.low <= ci.value <= ci.high and ci.resamples > 0
    assert (large.high - large.low) < (small.high - small.low)


def _split(
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    y, pred, proba = data
    return y, pred, proba, np.array([0, 1])


def test_vectorised_bootstrap_agrees_with_the_normal_approximation() -> None:
    y, pred, _ = _binary(4000, seed=2)
    ci = bootstrap_ci("accuracy", "classification", y, pred, resamples=400, seed=0)
    expected = np.sqrt(ci.value * (1 - ci.value) / len(y))
    assert ci.std == pytest.approx(expected, rel=0.2)


def test_regression_bootstrap_and_empty_resamples() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    pred = y + rng.normal(scale=0.5, size=500)
    for metric in ("rmse", "r2", "mae"):
        ci = bootstrap_ci(metric, "regression", y, pred, resamples=100)
        assert ci.low <= ci.value <= ci.high
    none = bootstrap_ci("rmse", "regression", y, pred, resamples=0)
    assert none.resamples == 0 and none.to_dict()["low"] is None


def test_a_label_the_model_never_saw_counts_with_probability_zero() -> None:
    classes = np.array(["drizzle", "rain", "sun"])
    proba = np.array([[0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1]])
    y = np.array(["snow", "rain", "drizzle"])  # 'snow' is not among the model's classes
    m = compute_metrics("classification", y, classes[proba.argmax(axis=1)], proba, classes)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([1e-15, 0.8, 0.8])))
    assert m["brier"] == pytest.approx(np.mean([0.66 + 1.0, 0.06, 0.06]))


def test_the_paired_margin_interval_sees_through_shared_noise() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=300)
    hard = rng.random(300) < 0.35  # rows both models get wrong
    candidate = np.where(hard, 1 - y, y)
    baseline = candidate.copy()
    baseline[np.flatnonzero(~hard)[:6]] ^= 1  # six more mistakes: 2 points worse
    low, high = bootstrap_margin(
        "accuracy", "classification", y, (candidate, None, None), (baseline, None, None)
    ) or (np.nan, np.nan)
    assert 0.0 < low <= 0.02 <= high < 0.05
    # Each model's own interval is ±5 points: unpaired, the two would overlap.
    ours = bootstrap_ci("accuracy", "classification", y, candidate)
    assert ours.high - ours.low > 0.08


def test_the_margin_of_a_lower_is_better_metric_is_positive_when_the_candidate_is_lower() -> None:
    y = np.array([0.0, 1.0, 2.0, 3.0] * 25)
    low, high = bootstrap_margin(
        "mae", "regression", y, (y + 0.1, None, None), (y + 0.5, None, None)
    ) or (np.nan, np.nan)
    assert low == pytest.approx(0.4) and high == pytest.approx(0.4)
