"""Do the features earn their place? Importance (data-2) and prediction-time cost (data-3).

*Permutation importance*: the loss of the primary metric when one feature's validation values
are shuffled, over a few seeded repeats (mean and standard deviation). *Drop-column
importance*, for small data: the loss when the model is refitted without the feature (through
a ``refit`` callback the training layer passes in). A feature whose importance is not above
zero is listed as not helping; one whose 95 % band straddles zero as uncertain. The band is
Student's t over the repeats (mean ± t(0.975, n−1)·std/√n): with three repeats t is 4.30, not
the normal 1.96, and one repeat gives no band at all, so its feature is uncertain.

*Cost*: for each feature, the memory it takes per row in the input and the time to turn
request values into its input column (what serving does for every request), plus the model's
single-row prediction latency and serialized size, which the gate can bound.
"""

from __future__ import annotations

import math
import pickle
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from readyml.evaluate.metrics import Array, better, clean, compute_metrics
from readyml.flavors import ModelAdapter

# Two-sided confidence of the band around the mean permutation importance.
BAND_CONFIDENCE = 0.95
# Timed single-row predictions for the latency percentiles, after warm-up calls.
LATENCY_CALLS = 30
LATENCY_WARMUP = 3
LATENCY_MIN_CALLS = 10  # single-row predictions always timed for the p95
LATENCY_BUDGET_S = 0.1  # extra timing stops after this long


def _score(model: ModelAdapter, X: pd.DataFrame, y: Array, metric: str) -> float:
    pred = model.predict(X)
    needs_proba = metric in ("log_loss", "roc_auc", "pr_auc", "brier", "calibration_error")
    proba = model.predict_proba(X) if needs_proba and model.has_proba else None
    classes = model.classes_ if proba is not None else None
    value = compute_metrics(model.task, y, pred, proba, classes).get(metric, float("nan"))
    return float(value)


def _half_width(losses: Sequence[float]) -> float:
    """Half-width of the t band around the mean of ``losses``; NaN for fewer than two."""
    n = len(losses)
    if n < 2:
        return float("nan")
    t = float(stats.t.ppf(0.5 + BAND_CONFIDENCE / 2, n - 1))
    return t * float(np.std(losses, ddof=1)) / math.sqrt(n)


def _verdict(mean: float, half_width: float) -> str:
    if mean <= 0:
        return "not helping"
    # A NaN half-width (one repeat) is not "> 0": without a band, the benefit is uncertain.
    return "helps" if mean - half_width > 0 else "uncertain"


def permutation_importance(
    model: ModelAdapter,
    X: pd.DataFrame,
    y: Array,
    *,
    metric: str,
    repeats: int = 3,
    max_rows: int = 20_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Loss of ``metric`` when each column of ``X`` is shuffled, ``repeats`` times each."""
    if len(X) > max_rows:
        chosen = np.random.default_rng(seed).choice(len(X), size=max_rows, replace=False)
        X, y = X.iloc[np.sort(chosen)].reset_index(drop=True), y[np.sort(chosen)]
    base = _score(model, X, y, metric)
    rng = np.random.default_rng(seed)
    features: dict[str, Any] = {}
    for column in X.columns:
        losses = []
        shuffled = X.copy()
        for _ in range(repeats):
            shuffled[column] = X[column].to_numpy()[rng.permutation(len(X))]
            losses.append(better(metric, base, _score(model, shuffled, y, metric)))
        mean = float(np.mean(losses))
        std = float(np.std(losses, ddof=1)) if repeats > 1 else float("nan")
        half = _half_width(losses)
        features[str(column)] = {
            "mean": mean,
            "std": std,
            "low": mean - half,
            "high": mean + half,
            "verdict": _verdict(mean, half),
        }
    return {
        "metric": metric,
        "base": base,
        "repeats": repeats,
        "rows": len(X),
        "features": features,
    }


def drop_column_importance(
    refit: Callable[[str], ModelAdapter],
    X: pd.DataFrame,
    y: Array,
    *,
    metric: str,
    base: float,
    budget_s: float | None = None,
) -> dict[str, float] | str:
    """Loss of ``metric`` when the model is refitted without each column (``refit(column)``).

    With ``budget_s``, the first refit is timed: when all of them would take longer, the
    rest are not run and the reason is returned instead of the losses.
    """
    out: dict[str, float] = {}
    started_s = time.monotonic()
    for column in X.columns:
        model = refit(str(column))
        out[str(column)] = better(metric, base, _score(model, X.drop(columns=[column]), y, metric))
        if budget_s is not None and len(out) == 1:
            each_s = time.monotonic() - started_s
            if each_s * X.shape[1] > budget_s:
                return (
                    f"{X.shape[1]} refits of {each_s:.1f} s each would take about "
                    f"{each_s * X.shape[1]:.0f} s, above importance.drop_column_max_s "
                    f"({budget_s:g} s)"
                )
    return out


def feature_importance(
    model: ModelAdapter,
    X: pd.DataFrame,
    y: Array,
    *,
    metric: str,
    repeats: int = 3,
    max_rows: int = 20_000,
    seed: int = 0,
    refit: Callable[[str], ModelAdapter] | None = None,
    refit_budget_s: float | None = None,
) -> dict[str, Any]:
    """Permutation importance, plus drop-column importance when ``refit`` is given (and its
    refits fit in ``refit_budget_s``; otherwise ``drop_column_skipped`` says why).

    The result lists the features that do not help (``not_helping``) and those whose benefit
    is within noise (``uncertain``).
    """
    result = permutation_importance(
        model, X, y, metric=metric, repeats=repeats, max_rows=max_rows, seed=seed
    )
    dropped: dict[str, float] | str | None = None
    if refit is not None and X.shape[1] < 2:
        # Without its only feature there is nothing to refit on.
        dropped = "a single feature: no model can be refitted without it"
    elif refit is not None:
        dropped = drop_column_importance(
            refit, X, y, metric=metric, base=result["base"], budget_s=refit_budget_s
        )
    if isinstance(dropped, str):
        result["drop_column_skipped"] = dropped
    elif dropped is not None:
        for name, loss in dropped.items():
            result["features"][name]["drop_column"] = loss
            if loss <= 0 and result["features"][name]["verdict"] == "uncertain":
                result["features"][name]["verdict"] = "not helping"
    features = result["features"]
    result["not_helping"] = [n for n, f in features.items() if f["verdict"] == "not helping"]
    result["uncertain"] = [n for n, f in features.items() if f["verdict"] == "uncertain"]
    result["method"] = "permutation + drop-column" if isinstance(dropped, dict) else "permutation"
    if result["not_helping"]:
        result["reason"] = _not_helping_reason(metric, features, result["not_helping"])
    return dict(clean(result))


def _not_helping_reason(metric: str, features: dict[str, Any], names: list[str]) -> str:
    """One line naming each feature that does not help, with the losses that show it."""
    shown = []
    for name in names:
        found = features[name]
        loss = f"loss of {metric} when shuffled: {found['mean']:+.2g}"
        half = found["high"] - found["mean"]
        loss += f" ± {half:.2g}" if math.isfinite(half) else " (one repeat: no band)"
        if "drop_column" in found:
            loss += f"; when refitted without it: {found['drop_column']:+.2g}"
        shown.append(f"{name} ({loss})")
    that = "one that does not" if len(names) == 1 else f"{len(names)} that do not"
    them = "it" if len(names) == 1 else "them"
    return (
        f"expected every feature to improve {metric}, found {that}: "
        f"{', '.join(shown)}; drop {them} or find out why"
    )


def _column_from_records(values: list[Any], dtype: Any) -> pd.Series:
    return pd.Series(values, dtype=object).astype(dtype)


def feature_cost(
    X: pd.DataFrame, *, rows: int = 200, max_feature_ms: float | None = None
) -> dict[str, Any]:
    """Per feature: bytes per row, and milliseconds per 1,000 rows to build its input column.

    The column is rebuilt from Python values (as they arrive in a JSON request) into the
    dtype the model was trained on; the best of three timings is kept.
    """
    sample = X.head(rows)
    features: dict[str, Any] = {}
    for column in sample.columns:
        values = sample[column].astype(object).tolist()
        dtype = sample[column].dtype
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            _column_from_records(values, dtype)
            timings.append(time.perf_counter() - started)
        per_row = float(X[column].memory_usage(index=False, deep=True)) / max(len(X), 1)
        ms = min(timings) * 1000.0 * 1000.0 / max(len(values), 1)
        features[str(column)] = {
            "bytes_per_row": per_row,
            "ms_per_1k_rows": ms,
            "too_costly": max_feature_ms is not None and ms > max_feature_ms,
        }
    too_costly = [n for n, f in features.items() if f["too_costly"]]
    result: dict[str, Any] = {
        "rows": len(sample),
        "max_feature_ms": max_feature_ms,
        "features": features,
        "too_costly": too_costly,
    }
    if too_costly:
        shown = ", ".join(f"{n} ({features[n]['ms_per_1k_rows']:.3g} ms)" for n in too_costly)
        result["reason"] = (
            f"expected each feature's input column to take at most {max_feature_ms:g} ms per "
            f"1,000 rows to build (importance.max_feature_ms), found {len(too_costly)} "
            f"slower: {shown}"
        )
    return dict(clean(result))


def model_size_mb(model: ModelAdapter) -> float:
    """The model's serialized size: its pickle, or its saved files when it cannot pickle."""
    try:
        return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)) / 1e6
    except (pickle.PicklingError, TypeError, AttributeError):
        with tempfile.TemporaryDirectory() as tmp:
            return sum(p.stat().st_size for p in model.save(Path(tmp))) / 1e6


def serving_cost(
    model: ModelAdapter, X: pd.DataFrame, *, calls: int = LATENCY_CALLS
) -> dict[str, Any]:
    """Single-row ``predict`` latency (p50, p95, in ms) and the model's size in MB."""
    row = X.head(1)
    for _ in range(LATENCY_WARMUP):
        model.predict(row)
    timings: list[float] = []
    budget_ends = time.perf_counter() + LATENCY_BUDGET_S
    # At least LATENCY_MIN_CALLS samples; more while the time budget lasts (slow models
    # such as large forests would otherwise add seconds to every run).
    while len(timings) < calls and (
        len(timings) < LATENCY_MIN_CALLS or time.perf_counter() < budget_ends
    ):
        started = time.perf_counter()
        model.predict(row)
        timings.append((time.perf_counter() - started) * 1000.0)
    return {
        "latency_ms_p50": float(np.percentile(timings, 50)),
        "latency_ms_p95": float(np.percentile(timings, 95)),
        "latency_calls": len(timings),
        "size_mb": model_size_mb(model),
    }


def sequence_names(names: Sequence[str]) -> list[str]:
    """Plain list of names (for callers holding tuples)."""
    return [str(n) for n in names]
