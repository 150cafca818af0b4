"""Per-group metrics and the primary metric's gap between groups (model-7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import precision_score, roc_auc_score

from readyml.config import SensitiveAttribute
from readyml.evaluate.fairness import evaluate_fairness

SITE = [SensitiveAttribute(name="site")]


def _data() -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    site = np.repeat(["a", "b"], 200)
    y = rng.integers(0, 2, 400)
    pred = y.copy()
    flipped = (site == "b") & (rng.random(400) < 0.4)  # site b gets many wrong answers
    pred[flipped] = 1 - pred[flipped]
    p1 = np.clip(np.where(pred == 1, 0.8, 0.2) + rng.normal(0, 0.05, 400), 0, 1)
    return pd.DataFrame({"site": site}), y, pred, np.column_stack([1 - p1, p1])


def _gap(metric, y, pred, site) -> float:  # type: ignore[no-untyped-def]
    a, b = site == "a", site == "b"
    return float(abs(metric(y[a], pred[a]) - metric(y[b], pred[b])))


def test_the_gap_of_any_primary_metric_is_measured_not_taken_as_zero() -> None:
    frame, y, pred, proba = _data()
    site = frame["site"].to_numpy()
    found = evaluate_fairness(
        frame, task="classification", y_true=y, y_pred=pred, attributes=SITE,
        primary="precision_macro", min_group_size=10,
    )  # fmt: skip
    gap = found["attributes"]["site"]["disparities"]["precision_macro_difference"]
    expected = _gap(lambda t, p: precision_score(t, p, average="macro"), y, pred, site)
    assert gap == pytest.approx(expected) and gap > 0.2

    with_proba = evaluate_fairness(
        frame, task="classification", y_true=y, y_pred=pred, attributes=SITE,
        primary="roc_auc", min_group_size=10, proba=proba, classes=np.array([0, 1]),
    )  # fmt: skip
    gap = with_proba["attributes"]["site"]["disparities"]["roc_auc_difference"]
    assert gap == pytest.approx(_gap(roc_auc_score, y, proba[:, 1], site))


def test_a_gap_that_cannot_be_measured_is_none_so_the_gate_vetoes() -> None:
    frame, y, pred, _ = _data()
    found = evaluate_fairness(
        frame, task="classification", y_true=y, y_pred=pred, attributes=SITE,
        primary="roc_auc", min_group_size=10,
    )  # fmt: skip
    assert found["attributes"]["site"]["disparities"]["roc_auc_difference"] is None
