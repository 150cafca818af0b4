"""Monitor 7: prediction quality, with labels and before they arrive.

With feedback labels (at least ``min_labels``): ``metric`` (default: the version's primary)
overall, per window and per slice, against its validation value; a drop above ``max_drop``
fires. Before labels: the distribution of predictions against the version's predictions on
its validation split (or the training labels) — Jensen-Shannon distance (base 2) for classes,
Wasserstein over the reference's standard deviation for values; per-slice prediction bias;
and, for classifiers, the accuracy estimated from calibrated confidence (the CBPE idea: each
row's top probability mapped through the validation split's reliability curve is its chance
of being right). Where labels exist, the estimate on the labelled rows is set against the
measured accuracy, so the estimator's error is known.

A slice's prediction bias is the largest gap of a class's predicted share (or of the mean
prediction, in reference label standard deviations) against the validation labels in that
slice. A model often has a standing bias in a small slice (it predicts the majority class
more there), which is no news at serving time, so what fires is the *change*: served against
validation predictions in the slice (serving bias minus standing bias), when it exceeds
``max_slice_bias`` and is beyond sampling noise — a chi-square test of homogeneity of the
predicted-class counts, or Welch's t on the predictions, significant at ``slice_bias_alpha``
after Holm's correction over the slices tested. Both biases are reported. Without the
validation predictions, the validation labels stand in for them (and the details say so).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ttest_ind, wasserstein_distance

from readyml.evaluate.metrics import HIGHER_IS_BETTER, compute_metrics
from readyml.monitor.checks._base import CheckResult, Finding, skipped, verdict
from readyml.monitor.inputs import PROBA_PREFIX, MonitorInputs, Reference, proba_columns

CALIBRATION_BINS = 10  # bins of the confidence → accuracy reliability curve
MAX_SLICE_VALUES = 20  # a categorical feature with more values is not sliced automatically
MAX_LISTED = 10  # unknown label values listed in the details


class QualityCheck:
    """Prediction quality from labels, and estimated before them.

    Args:
        metric: metric judged (default: the version's primary).
        max_drop: loss of ``metric`` against validation that fires (absolute).
        min_labels: labelled rows needed to judge measured quality.
        max_prediction_shift: distance of the prediction distribution that fires.
        max_slice_bias: change of a slice's prediction bias since validation that fires.
        slice_bias_alpha: significance level of that change (Holm over the slices tested).
        slice_columns: features to slice by (default: categorical features).
        min_slice_rows: fewest rows a slice needs on each side.
    """

    name: ClassVar[str] = "quality"
    test_id: ClassVar[str] = "monitor-7"

    def __init__(
        self,
        *,
        metric: str | None = None,
        max_drop: float = 0.05,
        min_labels: int = 30,
        max_prediction_shift: float = 0.1,
        max_slice_bias: float = 0.15,
        slice_columns: list[str] | None = None,
        min_slice_rows: int = 30,
        slice_bias_alpha: float = 0.01,
    ) -> None:
        self.metric = metric
        self.max_drop = max_drop
        self.min_labels = min_labels
        self.max_prediction_shift = max_prediction_shift
        self.max_slice_bias = max_slice_bias
        self.slice_columns = slice_columns
        self.min_slice_rows = min_slice_rows
        self.slice_bias_alpha = slice_bias_alpha

    def run(self, inputs: MonitorInputs) -> CheckResult:
        frame = inputs.traffic()
        if frame.empty:
            return skipped(self.name, self.test_id, "no logged traffic in the lookback")
        ref = inputs.reference
        classifier = ref.task == "classification"
        metric = self.metric or ref.primary or ("accuracy" if classifier else "rmse")
        findings: list[Finding] = []
        details: dict[str, Any] = {"metric": metric, "rows": len(frame)}
        series: dict[str, Any] = {"windows": [e.isoformat() for e in inputs.window_edges()[:-1]]}
        index = inputs.window_index()
        labelled = (
            frame["label"].notna().to_numpy()
            if "label" in frame.columns
            else np.zeros(len(frame), bool)
        )
        stray = _stray_labels(frame, ref)
        labelled = labelled & ~stray
        details["labelled"] = int(labelled.sum())
        if stray.any():
            details["unknown_labels"] = {
                "rows": int(stray.sum()),
                "values": sorted(frame.loc[stray, "label"].astype(str).unique())[:MAX_LISTED],
            }
        details["prediction_shift"] = self._shift(frame, ref, findings)
        details["slice_bias"], bias_test = self._slice_bias(frame, ref, inputs, findings)
        if bias_test is not None:
            details["slice_bias_test"] = bias_test
        estimate = self._cbpe(frame, ref) if classifier else None
        scored = np.isfinite(estimate) if estimate is not None else np.zeros(len(frame), bool)
        left_out = int(len(frame) - scored.sum()) if estimate is not None else 0
        if left_out:
            details["estimate_left_out"] = {"rows": left_out, "reason": "probabilities not finite"}
        if not scored.any():
            estimate = None
        if estimate is not None:
            details["estimated_accuracy"] = float(estimate[scored].mean())
            series["estimated_accuracy"] = _per_window(
                estimate[scored], index[scored], inputs.spec.windows
            )
        reference_value = ref.metrics.get(metric)
        details["reference"] = reference_value
        if labelled.sum() >= self.min_labels:
            measured = self._measured(frame[labelled], ref, metric)
            details["measured"] = measured
            series[metric] = [
                self._measured(frame[labelled & (index == w)], ref, metric)
                if (labelled & (index == w)).sum() >= max(5, self.min_labels // 5)
                else None
                for w in range(inputs.spec.windows)
            ]
            both = labelled & scored
            if estimate is not None and both.any():
                estimated = float(estimate[both].mean())
                actual = self._measured(frame[both], ref, "accuracy")
                details["estimate_error"] = {
                    "estimated": estimated,
                    "actual": actual,
                    "error": estimated - actual if actual is not None else None,
                }
            if measured is not None and isinstance(reference_value, int | float):
                drop = _drop(metric, float(reference_value), measured)
                details["drop"] = drop
                if drop > self.max_drop:
                    findings.append(
                        Finding(
                            key=f"quality:{metric}",
                            message=f"{metric} {measured:.3f} on "
                            f"{int(labelled.sum())} labelled rows, "
                            f"{_worse(metric, drop)} validation ({reference_value:.3f})",
                            severity="critical",
                            value=drop,
                            threshold=self.max_drop,
                            labels={"metric": metric},
                        )
                    )
            details["label_shift"] = self._label_shift(frame[labelled], ref, findings)
            details["slices"] = self._slice_quality(frame[labelled], ref, inputs, metric, findings)
        elif estimate is not None and isinstance(ref.metrics.get("accuracy"), int | float):
            estimated = details["estimated_accuracy"]
            drop = float(ref.metrics["accuracy"]) - estimated
            details["estimated_drop"] = drop
            if drop > self.max_drop:
                findings.append(
                    Finding(
                        key="quality:estimated_accuracy",
                        message=f"estimated accuracy {estimated:.3f} (no labels yet), "
                        f"{drop:.3f} below validation",
                        value=drop,
                        threshold=self.max_drop,
                        labels={"metric": "accuracy", "estimated": "true"},
                    )
                )
        shown = details.get("measured")
        summary = (
            f"{metric} {shown:.3f} on {details['labelled']:,} labelled rows (validation "
            f"{reference_value if reference_value is None else f'{reference_value:.3f}'})"
            if isinstance(shown, float)
            else f"{details['labelled']} labelled rows (< {self.min_labels}); judged on predictions"
        )
        if stray.any():
            summary += (
                f"; {int(stray.sum())} labelled row(s) left out: label not one of the classes"
            )
        if left_out:
            summary += (
                f"; {left_out} row(s) left out of the accuracy estimate: probabilities not finite"
            )
        return verdict(self.name, self.test_id, findings, summary, details=details, series=series)

    # -- with labels -----------------------------------------------------------------

    def _measured(self, frame: pd.DataFrame, ref: Reference, metric: str) -> float | None:
        if frame.empty:
            return None
        if ref.task == "classification":
            y_true = frame["label"].astype(str).to_numpy()
            y_pred = frame["prediction"].astype(str).to_numpy()
            probas = proba_columns(frame)
            proba = frame[probas].to_numpy(dtype=np.float64) if probas else None
            classes = np.array([c[len(PROBA_PREFIX) :] for c in probas]) if probas else None
            if metric == "accuracy":
                return float(np.mean(y_true == y_pred))
            values = compute_metrics("classification", y_true, y_pred, proba, classes)
        else:
            y_true = pd.to_numeric(frame["label"], errors="coerce").to_numpy(dtype=np.float64)
            y_pred = frame["prediction"].to_numpy(dtype=np.float64)
            ok = np.isfinite(y_true) & np.isfinite(y_pred)
            if not ok.any():
                return None
            values = compute_metrics("regression", y_true[ok], y_pred[ok])
        value = values.get(metric)
        return float(value) if value is not None else None

    def _slice_quality(
        self,
        frame: pd.DataFrame,
        ref: Reference,
        inputs: MonitorInputs,
        metric: str,
        findings: list[Finding],
    ) -> dict[str, Any]:
        reference_value = ref.metrics.get(metric)
        out: dict[str, Any] = {}
        for column in self._slice_columns(inputs):
            for value, part in frame.groupby(column, observed=True, sort=True):
                if len(part) < self.min_slice_rows:
                    continue
                measured = self._measured(part, ref, metric)
                name = f"{column}={value}"
                out[name] = {"rows": len(part), metric: measured}
                if measured is not None and isinstance(reference_value, int | float):
                    drop = _drop(metric, float(reference_value), measured)
                    if drop > self.max_drop:
                        findings.append(
                            Finding(
                                key=f"slice_quality:{name}",
                                message=f"{metric} {measured:.3f} in slice {name} "
                                f"({len(part)} rows), "
                                f"{_worse(metric, drop)} validation",
                                value=drop,
                                threshold=self.max_drop,
                                labels={"metric": metric, "slice": name},
                            )
                        )
        return out

    # -- before labels ---------------------------------------------------------------

    def _shift(
        self, frame: pd.DataFrame, ref: Reference, findings: list[Finding]
    ) -> dict[str, Any] | None:
        served = frame["prediction"]
        if ref.task == "classification":
            reference = _reference_classes(ref)
            if reference is None:
                return None
            current = served.astype(str).value_counts(normalize=True)
            labels = sorted(set(reference.index) | set(current.index))
            p = reference.reindex(labels, fill_value=0.0).to_numpy()
            q = current.reindex(labels, fill_value=0.0).to_numpy()
            distance = float(jensenshannon(p, q, base=2))
            result = {
                "method": "jensenshannon",
                "distance": distance,
                "reference": {k: float(v) for k, v in reference.items()},
                "served": {k: float(v) for k, v in current.items()},
            }
        else:
            if ref.valid_pred is None:
                return None
            base = np.asarray(ref.valid_pred, dtype=np.float64)
            values = served.to_numpy(dtype=np.float64, na_value=np.nan)
            values = values[np.isfinite(values)]
            if not len(values):
                return None
            distance = float(wasserstein_distance(base, values) / max(float(np.std(base)), 1e-3))
            result = {"method": "wasserstein", "distance": distance}
        if distance > self.max_prediction_shift:
            findings.append(
                Finding(
                    key="prediction_shift",
                    message=f"prediction distribution shifted from the reference: "
                    f"{result['method']} {distance:.3f} (threshold {self.max_prediction_shift:g})",
                    value=distance,
                    threshold=self.max_prediction_shift,
                )
            )
        return result

    def _label_shift(
        self, frame: pd.DataFrame, ref: Reference, findings: list[Finding]
    ) -> dict[str, Any] | None:
        """Labels fed back against the training labels (classes: Jensen-Shannon distance)."""
        if (
            ref.task != "classification"
            or ref.profile is None
            or ref.label not in ref.profile.columns
        ):
            return None
        reference = _profile_classes(ref)
        if reference is None:
            return None
        current = frame["label"].astype(str).map(_as_class).value_counts(normalize=True)
        labels = sorted(set(reference.index) | set(current.index))
        p = reference.reindex(labels, fill_value=0.0).to_numpy()
        q = current.reindex(labels, fill_value=0.0).to_numpy()
        distance = float(jensenshannon(p, q, base=2))
        if distance > self.max_prediction_shift:
            moved = current.reindex(labels, fill_value=0.0) - reference.reindex(
                labels, fill_value=0.0
            )
            top_moves = ", ".join(
                f"{k} {reference.get(k, 0.0):.0%}→{current.get(k, 0.0):.0%}"
                for k in moved.abs().sort_values(ascending=False).index[:3]
            )
            findings.append(
                Finding(
                    key="drift:label",
                    message=f"label distribution drifted from training: jensenshannon "
                    f"{distance:.3f} (threshold {self.max_prediction_shift:g}); {top_moves}",
                    value=distance,
                    threshold=self.max_prediction_shift,
                    labels={"feature": ref.label},
                )
            )
        return {
            "method": "jensenshannon",
            "distance": distance,
            "reference": {k: float(v) for k, v in reference.items()},
            "labels": {k: float(v) for k, v in current.items()},
        }

    def _slice_columns(self, inputs: MonitorInputs) -> list[str]:
        frame = inputs.traffic()
        if self.slice_columns is not None:
            return [c for c in self.slice_columns if c in frame.columns]
        schema = inputs.reference.schema
        if schema is not None:
            names = [f.name for f in schema.features if f.type in ("category", "bool")]
        else:
            names = [
                f for f, d in inputs.reference.dtypes.items() if d in ("string", "category", "bool")
            ]
        return [n for n in names if n in frame.columns and frame[n].nunique() <= MAX_SLICE_VALUES]

    def _slice_bias(
        self, frame: pd.DataFrame, ref: Reference, inputs: MonitorInputs, findings: list[Finding]
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Each slice's prediction bias, its standing value at validation, and the change.

        Returns the per-slice numbers and how the change was tested (``None`` without a
        labelled validation split).
        """
        valid = ref.valid
        if valid is None or ref.label not in valid.columns:
            return {}, None
        classifier = ref.task == "classification"
        truth = _outcomes(valid[ref.label], classifier)
        # Without the version's validation predictions the labels stand in for them, so the
        # model's own standing bias in a slice counts as a change (the old comparison).
        with_pred = ref.valid_pred is not None and len(ref.valid_pred) == len(valid)
        baseline = _outcomes(pd.Series(ref.valid_pred), classifier) if with_pred else truth
        served = _outcomes(frame["prediction"], classifier)
        scale = 1.0 if classifier else max(float(np.nanstd(truth, ddof=1)), 1e-9)
        out: dict[str, dict[str, Any]] = {}
        for column in self._slice_columns(inputs):
            if column not in valid.columns:
                continue
            reference_rows = valid.groupby(column, observed=True).indices
            for value, rows in frame.groupby(column, observed=True, sort=True).indices.items():
                at = reference_rows.get(value)
                if at is None or len(rows) < self.min_slice_rows or len(at) < self.min_slice_rows:
                    continue
                entry: dict[str, Any] | None
                if classifier:
                    entry = _class_bias(served[rows], baseline[at], truth[at])
                else:
                    entry = _mean_bias(served[rows], baseline[at], truth[at], scale)
                if entry is None:
                    continue
                if not with_pred:
                    entry["standing_bias"] = None
                out[f"{column}={value}"] = {"rows": len(rows), "reference_rows": len(at), **entry}
        adjusted = _holm([entry["p_value"] for entry in out.values()])
        for (name, entry), p_adjusted in zip(out.items(), adjusted, strict=True):
            entry["p_adjusted"] = p_adjusted
            change = entry["change"]
            if abs(change) > self.max_slice_bias and p_adjusted < self.slice_bias_alpha:
                findings.append(
                    Finding(
                        key=f"slice_bias:{name}",
                        message=_bias_message(name, entry, len(out), with_pred),
                        value=change,
                        threshold=self.max_slice_bias,
                        labels={"slice": name},
                    )
                )
        test = {
            "baseline": "validation predictions" if with_pred else "validation labels",
            "test": "chi-square of homogeneity" if classifier else "Welch's t",
            "correction": "holm",
            "alpha": self.slice_bias_alpha,
            "slices": len(out),
        }
        if not with_pred:
            test["note"] = (
                "no validation predictions: served predictions are compared with the "
                "validation labels, so the model's standing bias in a slice counts as a change"
            )
        return out, test

    def _cbpe(self, frame: pd.DataFrame, ref: Reference) -> np.ndarray | None:
        """Each row's estimated chance of being right; NaN where a probability is not finite."""
        probas = proba_columns(frame)
        if not probas:
            return None
        values = frame[probas].to_numpy(dtype=np.float64)
        finite = np.isfinite(values).all(axis=1)
        confidence = np.full(len(frame), np.nan)
        confidence[finite] = values[finite].max(axis=1)
        curve = _reliability(ref)
        if curve is None:
            return confidence
        # A NaN cast to int lands in bin 0: only finite confidences are binned.
        bins = np.clip((confidence[finite] * CALIBRATION_BINS).astype(int), 0, CALIBRATION_BINS - 1)
        confidence[finite] = curve[bins]
        return confidence


def _stray_labels(frame: pd.DataFrame, ref: Reference) -> np.ndarray:
    """Rows whose label is not one of the classifier's classes (metrics cannot score them)."""
    probas = proba_columns(frame)
    classes = [c[len(PROBA_PREFIX) :] for c in probas] if probas else ref.classes
    if ref.task != "classification" or not classes or "label" not in frame.columns:
        return np.zeros(len(frame), bool)
    labels = frame["label"]
    return np.asarray(labels.notna() & ~labels.astype(str).isin(classes), dtype=bool)


def _outcomes(values: pd.Series, classifier: bool) -> np.ndarray:
    """Classes as text (``"1.0"`` read as ``"1"``, missing as ``None``), or values as floats."""
    if classifier:
        text = values.astype(str).map(_as_class).where(values.notna().to_numpy(), None)
        return np.asarray(text.to_numpy(), dtype=object)
    return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64)


def _class_bias(
    served: np.ndarray, baseline: np.ndarray, truth: np.ndarray
) -> dict[str, Any] | None:
    """Largest class-share gaps in one slice, and a chi-square test of served vs baseline.

    ``bias``: served against the labels; ``standing_bias``: the baseline (the validation
    predictions) against the labels; ``change``: served against the baseline, the judged one.
    ``None`` when a side has no class.
    """
    served, baseline, truth = (side[pd.notna(side)] for side in (served, baseline, truth))
    if not (len(served) and len(baseline) and len(truth)):
        return None
    classes = sorted(set(served) | set(baseline) | set(truth))
    counts = np.array([[np.sum(side == c) for c in classes] for side in (served, baseline, truth)])
    shares = counts / counts.sum(axis=1, keepdims=True)
    table = counts[:2, counts[:2].sum(axis=0) > 0]
    p_value = float(chi2_contingency(table).pvalue) if table.shape[1] > 1 else 1.0
    moved = shares[0] - shares[1]
    top = int(np.argmax(np.abs(moved)))
    return {
        "bias": float(np.abs(shares[0] - shares[2]).max()),
        "standing_bias": float(np.abs(shares[1] - shares[2]).max()),
        "change": float(abs(moved[top])),
        "class": str(classes[top]),
        "served_share": float(shares[0, top]),
        "reference_share": float(shares[1, top]),
        "p_value": p_value,
    }


def _mean_bias(
    served: np.ndarray, baseline: np.ndarray, truth: np.ndarray, scale: float
) -> dict[str, Any] | None:
    """Mean-prediction gaps in one slice (in reference label SDs), and Welch's t test.

    Same three numbers as :func:`_class_bias`, signed; ``None`` when a side has no value.
    """
    served = served[np.isfinite(served)]
    baseline = baseline[np.isfinite(baseline)]
    truth = truth[np.isfinite(truth)]
    if not (len(served) and len(baseline) and len(truth)):
        return None
    moved = float(served.mean() - baseline.mean())
    p_value = float(ttest_ind(served, baseline, equal_var=False).pvalue)
    if not np.isfinite(p_value):
        # No spread on either side: any difference of constants of 2+ rows is certain.
        constant = min(len(served), len(baseline)) > 1 and moved != 0.0
        p_value = 0.0 if constant else 1.0
    return {
        "bias": float((served.mean() - truth.mean()) / scale),
        "standing_bias": float((baseline.mean() - truth.mean()) / scale),
        "change": moved / scale,
        "p_value": p_value,
    }


def _holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values: the family-wise error over every slice tested stays at alpha."""
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(np.argsort(p_values, kind="stable")):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[int(i)] = running
    return adjusted


def _bias_message(name: str, entry: dict[str, Any], slices: int, with_pred: bool) -> str:
    """One line for a slice whose prediction bias changed beyond noise."""
    against = "validation" if with_pred else "the validation labels (no validation predictions)"
    if "class" in entry:
        moved = (
            f"class {entry['class']!r} predicted for {entry['served_share']:.0%} of "
            f"{entry['rows']} served rows, {entry['reference_share']:.0%} at {against}"
        )
    else:
        moved = f"mean prediction {entry['change']:+.3f} label SDs from {against}"
    standing = entry["standing_bias"]
    return (
        f"prediction bias in slice {name} changed by {abs(entry['change']):.3f}: {moved}"
        + (f"; standing bias {standing:.3f}" if standing is not None else "")
        + f"; p={entry['p_adjusted']:.2g} (Holm over {slices} slices)"
    )


def _drop(metric: str, reference: float, measured: float) -> float:
    """How much worse ``measured`` is than ``reference`` (positive: worse)."""
    return reference - measured if HIGHER_IS_BETTER.get(metric, True) else measured - reference


def _worse(metric: str, drop: float) -> str:
    """``0.212 below`` for a score, ``1.189 above`` for an error: the way it got worse."""
    return f"{drop:.3f} {'below' if HIGHER_IS_BETTER.get(metric, True) else 'above'}"


def _reference_classes(ref: Reference) -> pd.Series | None:
    if ref.valid_pred is not None:
        return pd.Series(np.asarray(ref.valid_pred).astype(str)).value_counts(normalize=True)
    if ref.profile is not None and ref.label in ref.profile.columns:
        return _profile_classes(ref)
    return None


def _as_class(value: str) -> str:
    """A class as served and labelled: a whole number profiled as a float (``"1.0"``) is ``"1"``."""
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() else value


def _profile_classes(ref: Reference) -> pd.Series | None:
    """Share of each class among the training labels, from the training profile."""
    if ref.profile is None:
        return None
    top = ref.profile.columns[ref.label].top(1000)
    total = sum(c for _, c in top)
    if not total:
        return None
    shares = pd.Series([c / total for _, c in top], index=[_as_class(k) for k, _ in top])
    return shares.groupby(level=0).sum()


def _reliability(ref: Reference) -> np.ndarray | None:
    """Observed accuracy per confidence bin on the validation split (confidence where empty)."""
    if ref.valid is None or ref.valid_proba is None or ref.valid_pred is None:
        return None
    confidence = ref.valid_proba.max(axis=1)
    correct = np.asarray(ref.valid_pred).astype(str) == ref.valid[ref.label].astype(str).to_numpy()
    bins = np.clip((confidence * CALIBRATION_BINS).astype(int), 0, CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    hits = np.bincount(bins, weights=correct.astype(float), minlength=CALIBRATION_BINS)
    mids = (np.arange(CALIBRATION_BINS) + 0.5) / CALIBRATION_BINS
    # Shrink sparse bins towards their confidence (5 pseudo-rows).
    return (hits + 5 * mids) / (counts + 5)


def _per_window(values: np.ndarray, index: np.ndarray, windows: int) -> list[float | None]:
    out: list[float | None] = []
    for w in range(windows):
        part = values[index == w]
        out.append(float(part.mean()) if len(part) else None)
    return out
