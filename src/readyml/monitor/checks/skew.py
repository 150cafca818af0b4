"""Monitor 3: training/serving skew — per example by request id, and per distribution.

Per example: the features of logged requests recomputed offline by the training code path
(``skew.offline_features``: a file, or a ``module:function`` given the logged rows; both keyed
by ``request_id`` and ``row``, the row's position in its request, which may be left out: a
request's rows are then taken in the order listed) are compared with what was served, row by
row. A numeric value is skewed when it differs by more than ``tolerance`` relative to the
offline value (or when only one side is missing), a label when the texts differ. Reported: the
number of features with skew and the skewed rows of each feature. Per distribution: each
served feature against the training profile with the drift tests of
:func:`readyml.data.detect_drift` (auto-selected; KS or Wasserstein on numbers, chi-square or
Jensen-Shannon on labels), overall and per window for the report.

The rubric's test is the per-example one: "training and serving features compute the same
values". When it ran, drifted distributions are still reported (alerts of severity ``info``)
but do not fail the check — a world that changed is not a skew, and the quality and invariant
checks judge its effects. Without offline features, distribution drift is the only proxy and
fails the check.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Final, cast

import numpy as np
import pandas as pd

from readyml import _project_imports as project_imports
from readyml.data import METHODS, Profile, detect_drift, profile_frame, read_table
from readyml.data.drift import DriftResult
from readyml.errors import ConfigError, DataError
from readyml.monitor.checks._base import CheckResult, Finding, Severity, skipped, verdict
from readyml.monitor.checks.invariants import SERVED_PROFILE
from readyml.monitor.inputs import ROW_COLUMN, MonitorInputs

# Example request ids listed per skewed feature.
MAX_EXAMPLES = 5
OFFLINE_KEY: Final = "monitoring.skew.offline_features"
# What identifies a logged row: its request, and its position in the request.
_KEY: Final = ["request_id", ROW_COLUMN]


class SkewCheck:
    """Per-example skew against offline recomputation, and drift against training.

    Args:
        offline_features: file or ``module:function`` giving recomputed features by request id.
        tolerance: relative difference above which a numeric value is skewed.
        max_skewed_share: share of skewed examples a feature may have.
        drift_method: drift test (``auto`` or a name from ``readyml.data.METHODS``).
        drift_thresholds: thresholds by drift method name.
        max_drifted_features: drifted features allowed before the check fails.
    """

    name: ClassVar[str] = "skew"
    test_id: ClassVar[str] = "monitor-3"

    def __init__(
        self,
        *,
        offline_features: str | None = None,
        tolerance: float = 1e-6,
        max_skewed_share: float = 0.0,
        drift_method: str = "auto",
        drift_thresholds: dict[str, float] | None = None,
        max_drifted_features: int = 0,
    ) -> None:
        self.offline_features = offline_features
        self.tolerance = tolerance
        self.max_skewed_share = max_skewed_share
        self.drift_method = drift_method
        self.drift_thresholds = drift_thresholds
        self.max_drifted_features = max_drifted_features

    def run(self, inputs: MonitorInputs) -> CheckResult:
        served = inputs.features()
        if served.empty:
            return skipped(self.name, self.test_id, "no logged traffic in the lookback")
        findings: list[Finding] = []
        examples = self._per_example(inputs, findings)
        drift_severity: Severity = "info" if examples is not None else "warning"
        drift, series = self._distribution(inputs, findings, severity=drift_severity)
        parts = []
        if examples is not None:
            parts.append(
                f"{examples['features_with_skew']} of {examples['features_compared']} features "
                f"skewed on {examples['examples_compared']:,} recomputed examples"
            )
        if drift is not None:
            parts.append(
                f"{drift['n_drifted']} of {drift['n_columns']} features drifted from training"
            )
        if not parts:
            return skipped(self.name, self.test_id, "no offline features and no training profile")
        return verdict(
            self.name,
            self.test_id,
            findings,
            "; ".join(parts),
            details={"per_example": examples, "distribution": drift},
            series=series,
        )

    # -- per example -----------------------------------------------------------------

    def _offline(self, inputs: MonitorInputs) -> pd.DataFrame | None:
        if inputs.offline is not None:
            return inputs.offline
        source = self.offline_features
        if source is None:
            return None
        if project_imports_target(source):
            if inputs.root is None:
                return None
            frame = _call(offline_function(inputs.root, source), source, inputs)
            if not isinstance(frame, pd.DataFrame):
                raise ConfigError(
                    f"{OFFLINE_KEY}: {source} returned "
                    f"{type(frame).__name__}, expected a pandas DataFrame"
                )
            return frame
        base = inputs.root if inputs.root is not None else inputs.workspace.parent
        try:
            return read_table(base / source)
        except DataError as exc:
            raise DataError(f"{OFFLINE_KEY}: {exc}") from exc

    def _per_example(self, inputs: MonitorInputs, findings: list[Finding]) -> dict[str, Any] | None:
        offline = self._offline(inputs)
        if offline is None:
            return None
        if "request_id" not in offline.columns:
            raise DataError("offline features: expected a 'request_id' column, found none")
        traffic = inputs.request_rows()
        names = [
            f for f in inputs.reference.features if f in offline.columns and f in traffic.columns
        ]
        left = _keyed(traffic, names)
        right = _keyed(offline, names)
        joined = left.merge(right, on=_KEY, suffixes=("", "__offline"))
        per_feature: dict[str, Any] = {}
        for name in names:
            mask = _skewed(joined[name], joined[f"{name}__offline"], self.tolerance)
            count = int(mask.sum())
            share = count / len(joined) if len(joined) else 0.0
            per_feature[name] = {
                "skewed": count,
                "share": share,
                "examples": joined.loc[mask, "request_id"].unique()[:MAX_EXAMPLES].tolist(),
            }
            if count and share > self.max_skewed_share:
                findings.append(
                    Finding(
                        key=f"skew:{name}",
                        message=f"feature {name}: {count} of {len(joined)} served values differ "
                        "from the training code path's",
                        severity="critical",
                        value=share,
                        threshold=self.max_skewed_share,
                        labels={"feature": name},
                    )
                )
        return {
            "examples_compared": len(joined),
            "unmatched": int(len(left) - len(joined)),
            "features_compared": len(names),
            "features_with_skew": sum(1 for v in per_feature.values() if v["skewed"]),
            "features": per_feature,
        }

    # -- distributions ---------------------------------------------------------------

    def _distribution(
        self, inputs: MonitorInputs, findings: list[Finding], *, severity: Severity
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        reference = inputs.reference.profile
        if reference is None:
            return None, {}
        served = inputs.features()
        names = [n for n in served.columns if n in reference.columns]
        current = inputs.cache.get(SERVED_PROFILE)
        if not isinstance(current, Profile):
            current = profile_frame(served, columns=names)
            inputs.cache[SERVED_PROFILE] = current
        report = detect_drift(
            reference,
            current,
            columns=names,
            method=self.drift_method,
            thresholds=self.drift_thresholds,
        )
        drifted = [r for r in report.columns.values() if r.drifted]
        if len(drifted) > self.max_drifted_features:
            for result in drifted:
                findings.append(
                    Finding(
                        key=f"drift:{result.column}",
                        message=f"feature {result.column} drifted from training: "
                        + _measured(result),
                        severity=severity,
                        value=result.statistic,
                        threshold=result.threshold,
                        labels={"feature": str(result.column), "method": result.method},
                    )
                )
        return report.to_dict(), self._windows(inputs, reference, names)

    def _windows(
        self, inputs: MonitorInputs, reference: Profile, names: list[str]
    ) -> dict[str, Any]:
        """Drift score per window: statistic / threshold, or (1 - p) / (1 - alpha)."""
        if inputs.spec.windows < 2:
            return {}
        served = inputs.features()
        index = inputs.window_index()
        edges = inputs.window_edges()
        scores: dict[str, list[float | None]] = {n: [] for n in names}
        for window in range(inputs.spec.windows):
            part = served[index == window]
            if len(part) == 0:
                for n in names:
                    scores[n].append(None)
                continue
            report = detect_drift(
                reference,
                profile_frame(part, columns=names),
                columns=names,
                method=self.drift_method,
                thresholds=self.drift_thresholds,
            )
            for n in names:
                result = report.columns.get(n)
                scores[n].append(
                    None
                    if result is None
                    else _score(
                        result.statistic, result.p_value, result.adjusted_p_value, result.threshold
                    )
                )
        return {
            "windows": [e.isoformat() for e in edges[:-1]],
            "drift_score": scores,
        }


def _score(
    statistic: float, p_value: float | None, adjusted: float | None, threshold: float
) -> float:
    """A drift score where 1 is the threshold: distance / threshold, or (1-p) / (1-alpha)."""
    if p_value is not None:
        p = adjusted if adjusted is not None else p_value
        return float((1.0 - p) / max(1.0 - threshold, 1e-9))
    return float(statistic / threshold) if threshold else 0.0


def offline_function(root: Path, source: str) -> Callable[[pd.DataFrame], Any]:
    """The ``module:function`` of ``skew.offline_features``, imported from the project.

    Raises:
        ConfigError: the module cannot be imported or has no such function.
    """
    project_imports.prepare(root, source)
    module_name, name = source.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{OFFLINE_KEY}: expected an importable module:function, found {source!r} ({exc})"
        ) from None
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(
            f"{OFFLINE_KEY}: expected a function {name!r} in module {module_name!r}, found "
            f"{'nothing' if function is None else type(function).__name__}"
        )
    return cast(Callable[[pd.DataFrame], Any], function)


def project_imports_target(source: str) -> bool:
    """Whether ``source`` names a ``module:function`` rather than a file."""
    return (
        ":" in source and not source.startswith(("/", ".")) and "/" not in source.split(":", 1)[0]
    )


def _call(function: Callable[[pd.DataFrame], Any], source: str, inputs: MonitorInputs) -> Any:
    """The user's ``offline_features`` function on the logged rows; its error is one line."""
    try:
        return function(inputs.request_rows())
    except Exception as exc:  # the user's code ran: any error is theirs to fix
        raise ConfigError(
            f"{OFFLINE_KEY}: expected {source} to recompute the logged rows' features, found "
            f"{project_imports.describe_error(exc, root=inputs.root)}"
        ) from exc


def _keyed(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """``request_id``, ``row`` and ``names`` of ``frame``, one row per key. Without a ``row``
    column, a request's rows are numbered in the order the frame lists them."""
    ids = frame["request_id"].astype(str)
    if ROW_COLUMN in frame.columns:
        rows = pd.to_numeric(frame[ROW_COLUMN], errors="coerce")
    else:
        rows = ids.groupby(ids, sort=False).cumcount()
    keyed = frame[names].assign(request_id=ids.to_numpy(), **{ROW_COLUMN: rows.to_numpy()})
    return keyed.drop_duplicates(_KEY)


def _skewed(served: pd.Series, offline: pd.Series, tolerance: float) -> np.ndarray:
    served_missing = served.isna().to_numpy()
    offline_missing = offline.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(served) and pd.api.types.is_numeric_dtype(offline):
        a = served.to_numpy(dtype=np.float64, na_value=np.nan)
        b = offline.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            differ = np.abs(a - b) > tolerance * np.maximum(1.0, np.abs(b))
        differ = np.where(served_missing | offline_missing, False, differ)
    else:
        differ = (served.astype(str).to_numpy() != offline.astype(str).to_numpy()) & ~(
            served_missing | offline_missing
        )
    return np.asarray(differ | (served_missing != offline_missing), dtype=bool)


def _measured(result: DriftResult) -> str:
    """The drift test's figure against its threshold: a p-value (adjusted for the number of
    features tested) against its level, or a distance against its bound."""
    p_value = result.adjusted_p_value if result.adjusted_p_value is not None else result.p_value
    if METHODS[result.method].uses_p_value and p_value is not None:
        return (
            f"{result.method} p = {p_value:.3g} below {result.threshold:g} "
            f"(statistic {result.statistic:.3g})"
        )
    return f"{result.method} {result.statistic:.3g} (threshold {result.threshold:g})"
