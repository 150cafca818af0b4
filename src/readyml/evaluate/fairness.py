"""Inclusion: per-group metrics and disparities for declared sensitive attributes (model-7).

Per-group metrics come from fairlearn's ``MetricFrame``; the disparities are fairlearn's
demographic-parity and equalized-odds differences. For more than two classes each class is
taken one-vs-rest and the largest difference is reported (with the class it comes from).
``<metric>_difference`` is the largest gap in a quality metric between groups. Groups with
fewer rows than ``min_group_size`` are reported but left out of the disparities.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
)

from readyml.config import SensitiveAttribute
from readyml.errors import DataError
from readyml.evaluate.metrics import Array, clean, compute_metrics

# Metrics reported per group (when they apply to the task).
GROUP_METRICS = {
    "classification": ("accuracy", "balanced_accuracy", "f1_macro"),
    "regression": ("mae", "rmse", "r2"),
}


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def group_labels(frame: pd.DataFrame, attribute: SensitiveAttribute) -> pd.Series:
    """Each row's group for ``attribute`` (values mapped through ``groups`` when declared)."""
    column = attribute.source
    if column not in frame.columns:
        raise DataError(
            f"fairness.sensitive[{attribute.name}]: column '{column}' not in the validation "
            f"data (columns: {', '.join(map(str, frame.columns))})"
        )
    raw = frame[column].map(lambda v: None if pd.isna(v) else _label(v))
    if attribute.groups is None:
        return raw.fillna("(missing)").astype(str)
    lookup = {_label(v): group for group, values in attribute.groups.items() for v in values}
    return raw.map(lambda v: lookup.get(v, "(other)") if v is not None else "(missing)")


def _disparities(
    task: str, y: Array, pred: Array, groups: pd.Series, primary: str, per_group: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    values = [g["metrics"].get(primary) for g in per_group.values() if g["included"]]
    values = [v for v in values if v is not None and np.isfinite(v)]
    # Not computed (None: the gate vetoes, naming it) rather than a gap of 0 that always passes.
    out[f"{primary}_difference"] = float(max(values) - min(values)) if len(values) > 1 else None
    if task != "classification":
        return out
    classes = np.unique(np.concatenate([y, pred]))
    with warnings.catch_warnings():
        # A group holding one label only makes scikit-learn warn inside fairlearn; the
        # difference is still defined.
        warnings.filterwarnings("ignore", message="A single label was found")
        return _class_disparities(y, pred, groups, classes, out)


def _class_disparities(
    y: Array, pred: Array, groups: pd.Series, classes: Array, out: dict[str, Any]
) -> dict[str, Any]:
    worst_dp: tuple[float, str] = (0.0, "")
    worst_eo: tuple[float, str] = (0.0, "")
    for cls in classes if len(classes) > 2 else classes[1:]:
        yt, yp = (y == cls).astype(int), (pred == cls).astype(int)
        dp = float(demographic_parity_difference(yt, yp, sensitive_features=groups))
        worst_dp = max(worst_dp, (dp, _label(cls)))
        if 0 < yt.sum() < len(yt):
            eo = float(equalized_odds_difference(yt, yp, sensitive_features=groups))
            worst_eo = max(worst_eo, (eo if np.isfinite(eo) else 0.0, _label(cls)))
    out["demographic_parity_difference"] = worst_dp[0]
    out["demographic_parity_class"] = worst_dp[1]
    out["equalized_odds_difference"] = worst_eo[0]
    out["equalized_odds_class"] = worst_eo[1]
    return out


def evaluate_fairness(
    frame: pd.DataFrame,
    *,
    task: str,
    y_true: Array,
    y_pred: Array,
    attributes: Sequence[SensitiveAttribute],
    primary: str,
    min_group_size: int = 20,
    proba: Array | None = None,
    classes: Array | None = None,
) -> dict[str, Any]:
    """Per-group metrics and disparities for every sensitive attribute.

    Each group gets the task's :data:`GROUP_METRICS` and the primary metric (those read from
    probabilities only when ``proba`` and ``classes`` are given).

    Returns:
        ``{"attributes": {name: {"groups": {...}, "disparities": {...}}}}``, empty when no
        attribute is declared.
    """
    result: dict[str, Any] = {"min_group_size": min_group_size, "attributes": {}}
    y, pred = np.asarray(y_true), np.asarray(y_pred)
    proba = None if proba is None or classes is None else np.asarray(proba)
    for attribute in attributes:
        groups = group_labels(frame, attribute).reset_index(drop=True)
        wanted = tuple(dict.fromkeys((*GROUP_METRICS[task], primary)))
        frame_metrics = MetricFrame(
            metrics={"count": lambda a, b: len(a)},
            y_true=y,
            y_pred=pred,
            sensitive_features=groups,
        )
        counts = frame_metrics.by_group["count"].to_dict()
        per_group: dict[str, Any] = {}
        for group, size in sorted(counts.items(), key=lambda kv: str(kv[0])):
            mask = (groups == group).to_numpy()
            group_proba = None if proba is None else np.asarray(proba)[mask]
            metrics = compute_metrics(task, y[mask], pred[mask], group_proba, classes)
            per_group[str(group)] = {
                "size": int(size),
                "included": int(size) >= min_group_size,
                "metrics": {k: metrics[k] for k in wanted if k in metrics},
            }
        included = groups.isin([g for g, v in per_group.items() if v["included"]]).to_numpy()
        disparities = (
            _disparities(task, y[included], pred[included], groups[included], primary, per_group)
            if included.sum() > 0 and len({g for g, v in per_group.items() if v["included"]}) > 1
            else {}
        )
        result["attributes"][attribute.name] = {
            "column": attribute.source,
            "groups": per_group,
            "disparities": disparities,
            "excluded_groups": [g for g, v in per_group.items() if not v["included"]],
        }
    return dict(clean(result))
