"""The rows each capture reason matches, with a sort key and the numbers behind it.

One function per reason of :data:`~readyml.feedback.review_sets.REASONS` (``random`` is drawn
by :mod:`readyml.feedback.capture` from what the others leave). Each returns :class:`Matches`:
a key per logged row (NaN: not matched; lower keys are selected first) and a short detail.
The tests themselves are the monitor's: drift is :func:`readyml.data.detect_drift` against the
training profile, schema violations are :func:`readyml.data.validate_frame` against the
checked-in schema, declared slices are :func:`readyml.evaluate.slices.slice_masks`; these
functions only locate the rows behind each verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from readyml.config import SliceSpec
from readyml.data import (
    Anomaly,
    ColumnProfile,
    FeatureSchema,
    Schema,
    detect_drift,
    profile_frame,
    validate_frame,
)
from readyml.data.profile import numeric_values
from readyml.evaluate.slices import slice_masks
from readyml.monitor.inputs import Reference, proba_columns

# Reference mass outside which a value of a drifted numeric feature lies "where training
# had little mass": below the 1st or above the 99th percentile of the training profile.
OUTSIDE_RANKS: Final = (0.01, 0.99)
# A regression row is mispredicted when its absolute error exceeds this quantile of the
# absolute errors on the validation split ...
ERROR_QUANTILE: Final = 0.95
# ... or, without validation predictions, this many validation RMSEs.
RMSE_FACTOR: Final = 2.0
# Non-numeric features with more distinct training values are identifiers, not slices.
MAX_SLICE_VALUES: Final = 50


@dataclass
class Matches:
    """Rows one reason matches: ``key`` (NaN where not matched; lowest selected first),
    ``detail`` (the numbers behind the match), ``notes`` (why nothing could match) and
    ``info`` (numbers for the manifest)."""

    key: NDArray[np.float64]
    detail: NDArray[np.object_]
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, n: int, note: str | None = None) -> Matches:
        """No row matched (with the reason why, if any)."""
        return cls(
            key=np.full(n, np.nan),
            detail=np.full(n, "", dtype=object),
            notes=[note] if note else [],
        )

    @property
    def matched(self) -> NDArray[np.bool_]:
        """Whether each row matched."""
        return ~np.isnan(self.key)


def confidence(traffic: pd.DataFrame, task: str) -> NDArray[np.float64]:
    """The top class probability of each row (NaN for regression or without probabilities)."""
    probas = proba_columns(traffic)
    if task != "classification" or not probas:
        return np.full(len(traffic), np.nan)
    top = traffic[probas].apply(pd.to_numeric, errors="coerce").max(axis=1, skipna=True)
    return np.asarray(top.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def mispredictions(
    traffic: pd.DataFrame, reference: Reference, top: NDArray[np.float64]
) -> Matches:
    """Labelled rows the model got wrong.

    Classification: label and prediction differ as text (as the quality check compares them),
    most confident mistakes first. Regression: the absolute error exceeds the validation
    error scale (:func:`error_scale`), largest first.
    """
    n = len(traffic)
    labelled = traffic["label"].notna().to_numpy() if "label" in traffic.columns else None
    if labelled is None or not labelled.any():
        return Matches.empty(n, "misprediction: no feedback labels in the window")
    if reference.task == "classification":
        truth = traffic["label"].astype(str).to_numpy()
        predicted = traffic["prediction"].astype(str).to_numpy()
        wrong = labelled & (truth != predicted)
        found = Matches.empty(n)
        found.key[wrong] = np.where(np.isnan(top[wrong]), 0.0, -top[wrong])
        for i in np.flatnonzero(wrong):
            p = "" if np.isnan(top[i]) else f" (p={top[i]:.2f})"
            found.detail[i] = f"predicted {predicted[i]!r}{p}, labelled {truth[i]!r}"
        return found
    scale, source = error_scale(reference)
    if scale is None:
        return Matches.empty(
            n, "misprediction: no validation predictions or RMSE to judge regression errors by"
        )
    y = pd.to_numeric(traffic["label"], errors="coerce").to_numpy(dtype=np.float64)
    y_hat = pd.to_numeric(traffic["prediction"], errors="coerce").to_numpy(dtype=np.float64)
    error = np.abs(y - y_hat)
    with np.errstate(invalid="ignore"):
        wrong = labelled & np.isfinite(error) & (error > scale)
    found = Matches.empty(n)
    found.key[wrong] = -error[wrong]
    found.info = {"error_scale": scale, "error_scale_source": source}
    for i in np.flatnonzero(wrong):
        found.detail[i] = (
            f"predicted {y_hat[i]:.4g}, labelled {y[i]:.4g}: "
            f"|error| {error[i]:.3g} > {scale:.3g} ({source})"
        )
    return found


def error_scale(reference: Reference) -> tuple[float | None, str]:
    """The absolute error above which a regression prediction counts as a misprediction.

    The :data:`ERROR_QUANTILE` quantile of the absolute errors on the validation split (an
    error the model makes on one validation row in twenty), else :data:`RMSE_FACTOR` times
    the validation RMSE, else ``None``.
    """
    valid, predicted = reference.valid, reference.valid_pred
    if valid is not None and predicted is not None and reference.label in valid.columns:
        truth = pd.to_numeric(valid[reference.label], errors="coerce").to_numpy(dtype=np.float64)
        errors = np.abs(truth - np.asarray(predicted, dtype=np.float64))
        errors = errors[np.isfinite(errors)]
        if len(errors):
            return float(np.quantile(errors, ERROR_QUANTILE)), "validation p95"
    rmse = reference.metrics.get("rmse")
    if isinstance(rmse, int | float) and rmse > 0:
        return RMSE_FACTOR * float(rmse), f"{RMSE_FACTOR:g} x validation RMSE"
    return None, ""


def low_confidence(
    traffic: pd.DataFrame, reference: Reference, top: NDArray[np.float64], below: float
) -> Matches:
    """Classified rows whose top class probability is under ``below``, lowest first."""
    n = len(traffic)
    if reference.task != "classification":
        return Matches.empty(n, "low_confidence: a regression model has no class probabilities")
    if np.isnan(top).all():
        return Matches.empty(n, "low_confidence: the log has no proba_<class> values")
    with np.errstate(invalid="ignore"):
        low = np.isfinite(top) & (top < below)
    found = Matches.empty(n)
    found.key[low] = top[low]
    for i in np.flatnonzero(low):
        found.detail[i] = f"p(max)={top[i]:.2f} < {below:g}"
    return found


def drift(
    traffic: pd.DataFrame,
    reference: Reference,
    *,
    method: str | Mapping[str, str],
    thresholds: Mapping[str, float] | None,
    rare_share: float,
) -> Matches:
    """Rows lying where training had little mass, on the features that drifted.

    Drift is the skew check's: :func:`readyml.data.detect_drift` of the window against the
    training profile with the same method and thresholds. On a drifted feature a row is out
    when its value is outside the training 1st-99th percentile (numbers) or has a training
    share under ``rare_share`` (labels, unseen included). Most features out first.
    """
    n = len(traffic)
    profile = reference.profile
    if profile is None:
        return Matches.empty(n, "drift: no training profile for the reference version")
    names = [f for f in reference.features if f in traffic.columns and f in profile.columns]
    if not names:
        return Matches.empty(n, "drift: no logged feature is in the training profile")
    report = detect_drift(
        profile,
        profile_frame(traffic[names], columns=names),
        columns=names,
        method=method,
        thresholds=thresholds,
    )
    drifted = [r for r in report.columns.values() if r.drifted and r.column is not None]
    found = Matches.empty(n)
    found.info = {
        "drifted": {
            str(r.column): {"method": r.method, "statistic": r.statistic, "threshold": r.threshold}
            for r in drifted
        }
    }
    if not drifted:
        found.notes.append("drift: no feature drifted from the training profile in the window")
        return found
    count = np.zeros(n, dtype=np.int64)
    parts: list[list[str]] = [[] for _ in range(n)]
    stats: list[list[str]] = [[] for _ in range(n)]
    for result in drifted:
        name = str(result.column)
        outside, texts = _outside(traffic[name], profile.columns[name], rare_share)
        count += outside
        for i in np.flatnonzero(outside):
            parts[i].append(texts[i])
            stats[i].append(f"{name} ({result.method} {result.statistic:.3g})")
    out = count > 0
    found.key[out] = -count[out].astype(np.float64)
    for i in np.flatnonzero(out):
        found.detail[i] = f"{'; '.join(parts[i])}; drifted: {', '.join(stats[i])}"
    return found


def _outside(
    series: pd.Series, column: ColumnProfile, rare_share: float
) -> tuple[NDArray[np.bool_], list[str]]:
    """Rows of ``series`` where the training profile ``column`` had little mass, and why."""
    n = len(series)
    texts = [""] * n
    if column.numeric:
        bounds = column.quantiles(OUTSIDE_RANKS)
        if bounds is None or column.type == "datetime":
            return np.zeros(n, dtype=bool), texts
        low, high = bounds
        values = numeric_values(series, column.type)
        with np.errstate(invalid="ignore"):
            outside = (values < low) | (values > high)
        for i in np.flatnonzero(outside):
            texts[i] = f"{column.name}={values[i]:.4g} outside reference [{low:.4g}, {high:.4g}]"
        return np.asarray(outside, dtype=bool), texts
    shares = _shares(series, column)
    outside = np.isfinite(shares) & (shares < rare_share)
    for i in np.flatnonzero(outside):
        texts[i] = (
            f"{column.name}={series.iloc[i]!s} has reference share {shares[i]:.3f} < {rare_share:g}"
        )
    return outside, texts


def _shares(series: pd.Series, column: ColumnProfile) -> NDArray[np.float64]:
    """The training share of each row's value as text (NaN for nulls; 0 when unseen)."""
    present = series.notna().to_numpy()
    text = series[present].astype(str)
    total = max(column.n_values, 1)
    lookup = {value: column.estimate(value) / total for value in text.unique().tolist()}
    shares = np.full(len(series), np.nan)
    shares[present] = text.map(lookup).to_numpy(dtype=np.float64)
    return shares


def rare_slices(
    traffic: pd.DataFrame,
    reference: Reference,
    *,
    rare_share: float,
    slices: Sequence[SliceSpec],
) -> Matches:
    """Rows in a slice rare in training, rarest first.

    Slices: each value of a categorical feature (at most :data:`MAX_SLICE_VALUES` distinct
    training values; share from the training profile, unseen values included), and the
    project's declared slices (share on the validation split, which holds every column; the
    profile keeps no joint shares).
    """
    n = len(traffic)
    found = Matches.empty(n)
    parts: list[list[str]] = [[] for _ in range(n)]
    rarest = np.full(n, np.inf)
    profile = reference.profile
    for name in reference.features:
        column = profile.columns.get(name) if profile is not None else None
        if column is None or name not in traffic.columns or column.numeric:
            continue
        if column.distinct > MAX_SLICE_VALUES:
            continue
        shares = _shares(traffic[name], column)
        rare = np.isfinite(shares) & (shares < rare_share)
        for i in np.flatnonzero(rare):
            parts[i].append(f"{name}={traffic[name].iloc[i]!s} (training share {shares[i]:.3f})")
        rarest[rare] = np.minimum(rarest[rare], shares[rare])
    if profile is None:
        found.notes.append("rare_slice: no training profile; feature values not judged")
    valid = reference.valid
    for spec in slices:
        missing = [c for c in spec.columns if c not in traffic.columns]
        if valid is None or missing or any(c not in valid.columns for c in spec.columns):
            why = f"column {missing[0]!r} is not logged" if missing else "no validation split"
            found.notes.append(f"rare_slice: slice {spec.name!r} skipped ({why})")
            continue
        trained = {label: float(np.mean(mask)) for label, mask in slice_masks(valid, spec)}
        for label, mask in slice_masks(traffic, spec):
            share = trained.get(label, 0.0)
            if share >= rare_share:
                continue
            rows = np.asarray(mask, dtype=bool)
            for i in np.flatnonzero(rows):
                parts[i].append(f"slice {label} (validation share {share:.3f})")
            rarest[rows] = np.minimum(rarest[rows], share)
    hit = np.isfinite(rarest)
    found.key[hit] = rarest[hit]
    for i in np.flatnonzero(hit):
        found.detail[i] = f"{'; '.join(parts[i])} < {rare_share:g}"
    return found


def schema_violations(traffic: pd.DataFrame, reference: Reference) -> Matches:
    """Served rows outside the checked-in schema, most violated features first.

    :func:`readyml.data.validate_frame` decides which features break the schema (error
    anomalies, as the invariants check); the rows behind each are located by the same rule:
    out of ``[min, max]``, a category not listed, null where not nullable, ±inf. For any
    other kind (``type_mismatch``) the validator's example rows (up to five) are taken.
    Rejected requests never reach the log, so only rows the server answered appear here.
    """
    n = len(traffic)
    if reference.schema is None:
        return Matches.empty(n, "schema_violation: no schema.yaml; nothing to check against")
    names = [f for f in reference.features if f in traffic.columns]
    schema = Schema(features=[f for f in reference.schema.features if f.name in names])
    frame = traffic[names].reset_index(drop=True)
    report = validate_frame(frame, schema=schema)
    count = np.zeros(n, dtype=np.int64)
    parts: list[list[str]] = [[] for _ in range(n)]
    for anomaly in report.errors:
        feature = schema.feature(anomaly.column) if anomaly.column is not None else None
        if feature is None or feature.name not in frame.columns:
            continue
        rows, texts = _violating(frame[feature.name], feature, anomaly)
        count += rows
        for i in np.flatnonzero(rows):
            parts[i].append(texts[i])
    found = Matches.empty(n)
    hit = count > 0
    found.key[hit] = -count[hit].astype(np.float64)
    for i in np.flatnonzero(hit):
        found.detail[i] = "; ".join(parts[i])
    return found


def _violating(
    series: pd.Series, feature: FeatureSchema, anomaly: Anomaly
) -> tuple[NDArray[np.bool_], list[str]]:
    """Rows of ``series`` behind one error anomaly of ``feature``, and a text per row."""
    n, name = len(series), feature.name
    texts = [""] * n
    rows = np.zeros(n, dtype=bool)
    if anomaly.kind == "out_of_range":
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            if feature.min is not None:
                rows |= values < feature.min
            if feature.max is not None:
                rows |= values > feature.max
        low = "-inf" if feature.min is None else f"{feature.min:g}"
        high = "inf" if feature.max is None else f"{feature.max:g}"
        for i in np.flatnonzero(rows):
            texts[i] = f"{name}={values[i]:.4g} outside schema [{low}, {high}]"
    elif anomaly.kind == "unseen_categories" and feature.categories is not None:
        present = series.notna().to_numpy()
        rows = present & ~series.astype(str).isin(feature.categories).to_numpy()
        for i in np.flatnonzero(rows):
            texts[i] = f"{name}={series.iloc[i]!s} not a schema category"
    elif anomaly.kind in ("too_many_nulls", "nan_or_inf"):
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        infinite = np.isinf(values) if anomaly.kind == "nan_or_inf" else np.zeros(n, dtype=bool)
        nulls = series.isna().to_numpy() if not feature.nullable else np.zeros(n, dtype=bool)
        rows = infinite | nulls
        for i in np.flatnonzero(rows):
            texts[i] = (
                f"{name}={values[i]:g} not finite"
                if infinite[i]
                else f"{name} is null (nullable: false)"
            )
    else:
        rows[[i for i in anomaly.examples if 0 <= i < n]] = True
        for i in np.flatnonzero(rows):
            texts[i] = f"{name}: {anomaly.kind} (expected {anomaly.expected})"
    return np.asarray(rows, dtype=bool), texts
