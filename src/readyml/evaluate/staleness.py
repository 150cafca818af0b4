"""The impact of staleness: quality against model age on time-ordered data (model-4).

The rows are sorted by the time column and cut into ``windows + 1`` consecutive windows of
equal row counts. The newest window is held out for evaluation; a model is trained on each
older window alone (so every model sees as much data) and scored on the newest. A model's age
is the time from the end of its training window to the middle of the evaluation window. The
recommended retraining period is the largest age whose loss against the freshest model stays
within ``tolerance``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from readyml.errors import DataError, ReadymlError
from readyml.evaluate.metrics import better, clean

# Fewest rows a window may hold for its model to mean anything.
MIN_WINDOW_ROWS = 20
_DAY = pd.Timedelta(days=1)


def staleness_curve(
    data: pd.DataFrame,
    *,
    time_column: str,
    windows: int,
    metric: str,
    fit_and_score: Callable[[pd.DataFrame, pd.DataFrame], float],
    tolerance: float = 0.02,
) -> dict[str, Any]:
    """Quality of models trained on older windows, scored on the newest; and a retraining period.

    Args:
        data: Every row, with ``time_column``.
        time_column: The column that orders rows in time.
        windows: How many training windows (the evaluation window is one more).
        metric: The metric ``fit_and_score`` returns (for its direction).
        fit_and_score: Trains on its first frame and returns ``metric`` on its second.
        tolerance: Loss of ``metric`` (absolute) tolerated before retraining.

    Raises:
        DataError: The time column is missing or the windows would be too small.
    """
    if time_column not in data.columns:
        raise DataError(
            f"staleness.time_column: column '{time_column}' not in the data "
            f"(columns: {', '.join(map(str, data.columns))})"
        )
    times = pd.to_datetime(data[time_column])
    order = np.argsort(times.to_numpy(), kind="stable")
    rows = data.iloc[order].reset_index(drop=True)
    times = times.iloc[order].reset_index(drop=True)
    parts = np.array_split(np.arange(len(rows)), windows + 1)
    if min(len(p) for p in parts) < MIN_WINDOW_ROWS:
        raise DataError(
            f"staleness: {len(rows)} rows make windows of {min(len(p) for p in parts)} rows "
            f"with staleness.windows={windows}; expected at least {MIN_WINDOW_ROWS} per window"
        )
    evaluation = parts[-1]
    eval_frame = rows.iloc[evaluation]
    eval_mid = (
        times.iloc[evaluation[0]] + (times.iloc[evaluation[-1]] - times.iloc[evaluation[0]]) / 2
    )
    points: list[dict[str, Any]] = []
    for part in reversed(parts[:-1]):
        try:
            value: float | None = fit_and_score(rows.iloc[part], eval_frame)
            error = None
        except ReadymlError as exc:  # e.g. a window holding a single class
            value, error = None, str(exc)
        end = times.iloc[part[-1]]
        points.append(
            {
                "train_start": str(times.iloc[part[0]].date()),
                "train_end": str(end.date()),
                "n_train": len(part),
                "age_days": float((eval_mid - end) / _DAY),
                "metric": value,
                "error": error,
            }
        )
    scored = [p for p in points if p["metric"] is not None]
    if not scored:
        raise DataError(
            f"staleness: no window could be trained ({points[0]['error']}); "
            "use fewer staleness.windows or another time column"
        )
    points = scored
    fresh = points[0]["metric"]
    recommended = points[0]["age_days"]
    for point in points:
        point["loss"] = better(metric, fresh, point["metric"])
    for point in points[1:]:
        if point["loss"] > tolerance:
            break
        recommended = point["age_days"]
    exceeded = any(p["loss"] > tolerance for p in points[1:])
    reason = (
        f"{metric} falls by more than {tolerance:g} beyond {recommended:.0f} days of model age"
        if exceeded
        else f"{metric} stays within {tolerance:g} up to the oldest window tested "
        f"({points[-1]['age_days']:.0f} days); retrain at least this often"
    )
    return dict(
        clean(
            {
                "time_column": time_column,
                "metric": metric,
                "tolerance": tolerance,
                "eval_start": str(times.iloc[evaluation[0]].date()),
                "eval_end": str(times.iloc[evaluation[-1]].date()),
                "n_eval": len(evaluation),
                "points": points,
                "retrain_every_days": recommended,
                "degrades": exceeded,
                "reason": reason,
            }
        )
    )
