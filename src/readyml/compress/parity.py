"""Parity: how closely a compressed or converted model answers like its parent.

Measured on the validation split: the largest absolute difference of class probabilities (or
regression values), and the share of rows whose label (or value, within the tolerance) is
identical. An export must stay within a tolerance or it fails; a quantized, pruned or
distilled model is expected to differ, so its parity is recorded and the quality gate judges it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from readyml.errors import FlavorError
from readyml.flavors import ModelAdapter

# Largest probability (or value, relative to the values' scale) difference an export may show.
EXPORT_TOLERANCE = 1e-4
# Smallest share of identical labels an export may show (ties may break differently).
EXPORT_MIN_IDENTICAL = 0.99


@dataclass(frozen=True)
class Parity:
    """Agreement of a candidate with its parent on ``n_rows`` validation rows."""

    n_rows: int
    max_abs_diff: float
    identical: float
    tolerance: float | None = None
    min_identical: float | None = None

    @property
    def passed(self) -> bool:
        """Within the tolerance (always true when none was set)."""
        close = self.tolerance is None or self.max_abs_diff <= self.tolerance
        same = self.min_identical is None or self.identical >= self.min_identical
        return close and same

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, with ``passed``."""
        return {**asdict(self), "passed": self.passed}


def _outputs(model: ModelAdapter, X: Any) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(model.predict(X))
    if model.task == "classification" and model.has_proba:
        return labels, np.asarray(model.predict_proba(X), dtype=np.float64)
    return labels, labels.astype(np.float64).reshape(len(labels), -1)


def compare(
    parent: ModelAdapter,
    candidate: ModelAdapter,
    X: Any,
    *,
    tolerance: float | None = None,
    min_identical: float | None = None,
) -> Parity:
    """Compare the candidate's outputs with the parent's on ``X``.

    Regression values are compared relative to their scale (``max(1, max |value|)``).

    >>> from sklearn.linear_model import LogisticRegression
    >>> import pandas as pd
    >>> from readyml.flavors.sklearn import SklearnModel
    >>> frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    >>> model = SklearnModel(estimator=LogisticRegression()).fit(frame, [0, 0, 1, 1])
    >>> compare(model, model, frame, tolerance=0.0).passed
    True
    """
    labels_a, values_a = _outputs(parent, X)
    labels_b, values_b = _outputs(candidate, X)
    if values_a.shape != values_b.shape:
        raise FlavorError(
            f"parity: expected outputs of shape {values_a.shape} like the parent, "
            f"found {values_b.shape}"
        )
    n_rows = len(labels_a)
    if n_rows == 0:
        return Parity(0, 0.0, 1.0, tolerance, min_identical)
    difference = np.abs(values_a - values_b)
    if parent.task == "regression":
        scale = max(1.0, float(np.max(np.abs(values_a))))
        max_diff = float(np.max(difference)) / scale
        identical = float(np.mean(difference.max(axis=1) / scale <= (tolerance or 0.0)))
    else:
        max_diff = float(np.max(difference)) if values_a.size else 0.0
        identical = float(np.mean(labels_a == labels_b))
    return Parity(n_rows, max_diff, identical, tolerance, min_identical)


def require(parity: Parity, *, what: str) -> Parity:
    """Return ``parity`` when it passed; else raise ``FlavorError`` naming both numbers."""
    if not parity.passed:
        raise FlavorError(
            f"{what}: parity with the parent is outside the tolerance on {parity.n_rows} "
            f"validation rows: max abs difference {parity.max_abs_diff:.3g} (allowed "
            f"{parity.tolerance:g}), identical labels {parity.identical:.2%} (required "
            f"{(parity.min_identical or 0):.0%})"
        )
    return parity
