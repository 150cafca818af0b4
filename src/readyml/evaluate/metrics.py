"""Quality metrics for classification and regression, and bootstrap confidence intervals.

Metrics come from scikit-learn, except the calibration error (expected calibration error of
the top-label confidence, 10 equal-width bins) and the multiclass Brier score (mean squared
distance between the probability vector and the one-hot label), which it does not define for
every case.

The bootstrap resamples validation rows with replacement. It is vectorised: metrics that are
means of a per-row quantity (accuracy, log loss, Brier, MAE, RMSE, R², MAPE) are recomputed
from gathered per-row values, confusion-matrix metrics (balanced accuracy, macro precision,
recall and F1) from one ``bincount`` per chunk of resamples; ranking metrics (ROC and PR AUC)
and the calibration error fall back to a loop whose resample count is capped so that the work
stays within :data:`BOOTSTRAP_BUDGET_ROWS`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn import metrics as skm

from readyml._json import clean as clean  # the evaluation's JSON is cleaned by it
from readyml.errors import ConfigError

Task = str  # "classification" | "regression"
Array = npt.NDArray[Any]

# Whether a larger value is better, per metric; the gate and comparisons read this.
HIGHER_IS_BETTER = {
    "accuracy": True,
    "balanced_accuracy": True,
    "precision_macro": True,
    "recall_macro": True,
    "f1_macro": True,
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "brier": False,
    "calibration_error": False,
    "mae": False,
    "rmse": False,
    "r2": True,
    "mape": False,
}
REGRESSION = ("mae", "rmse", "r2", "mape")
DEFAULT_PRIMARY = {"classification": "accuracy", "regression": "rmse"}
# Bins of the expected calibration error.
CALIBRATION_BINS = 10
# Gathered rows per chunk of vectorised bootstrap resamples (bounds memory: 8 bytes each).
BOOTSTRAP_CHUNK_ROWS = 4_000_000
# Total rows a looped (non-vectorised) bootstrap may score; caps its resample count.
BOOTSTRAP_BUDGET_ROWS = 20_000_000
_EPS = 1e-15


def better(metric: str, a: float, b: float) -> float:
    """How much better ``a`` is than ``b`` (positive: better), whatever the metric's direction."""
    return a - b if HIGHER_IS_BETTER.get(metric, True) else b - a


def _one_hot(y: Array, classes: Array) -> Array:
    matches: Array = np.asarray(y)[:, None] == np.asarray(classes)[None, :]
    return matches.astype(float)


def _roc_auc(y: Array, proba: Array, classes: Array) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(y == classes[1], proba[:, 1]))
    present = np.isin(classes, np.unique(y))
    if not present.all():
        return float("nan")  # one-vs-rest AUC is undefined when a class is absent
    return float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes))


def _pr_auc(y: Array, proba: Array, classes: Array) -> float:
    if proba.shape[1] == 2:
        positive = y == classes[1]
        return float(skm.average_precision_score(positive, proba[:, 1])) if positive.any() else 0.0
    scores = [
        skm.average_precision_score(y == c, proba[:, k])
        for k, c in enumerate(classes)
        if (y == c).any()
    ]
    return float(np.mean(scores)) if scores else float("nan")


def _brier_rows(y: Array, proba: Array, classes: Array) -> Array:
    if proba.shape[1] == 2:  # scikit-learn's binary convention: the positive class only
        return np.asarray((proba[:, 1] - (y == classes[1])) ** 2, dtype=float)
    one_hot = _one_hot(y, classes)
    unseen = one_hot.sum(axis=1) == 0  # a label the model has no column for: its share was 0
    return np.asarray(((proba - one_hot) ** 2).sum(axis=1) + unseen, dtype=float)


def _log_loss_rows(y: Array, proba: Array, classes: Array) -> Array:
    """Per-row log loss; a label the model never saw has probability 0 (clipped to 1e-15)."""
    index = np.searchsorted(classes, y) if _sorted(classes) else _index_of(y, classes)
    index = np.clip(index, 0, proba.shape[1] - 1)
    rows = np.arange(len(y))
    picked = np.where(classes[index] == y, proba[rows, index], 0.0)
    total = proba.sum(axis=1)
    return np.asarray(-np.log(np.clip(picked / np.where(total > 0, total, 1.0), _EPS, 1.0)))


def _sorted(classes: Array) -> bool:
    try:
        return bool(np.all(classes[:-1] <= classes[1:]))
    except TypeError:
        return False


def _index_of(y: Array, classes: Array) -> Array:
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    return np.array([lookup.get(v, 0) for v in np.asarray(y).tolist()])


def calibration_error(y: Array, proba: Array, classes: Array) -> float:
    """Expected calibration error of the top-label confidence, in equal-width bins."""
    if len(y) == 0:
        return float("nan")
    confidence = proba.max(axis=1)
    correct = np.asarray(classes)[proba.argmax(axis=1)] == y
    bins = np.minimum((confidence * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    conf_sum = np.bincount(bins, weights=confidence, minlength=CALIBRATION_BINS)
    acc_sum = np.bincount(bins, weights=correct.astype(float), minlength=CALIBRATION_BINS)
    return float(np.abs(conf_sum - acc_sum).sum() / len(y))


def classification_metrics(
    y_true: Array,
    y_pred: Array,
    proba: Array | None = None,
    classes: Array | None = None,
) -> dict[str, float]:
    """Label metrics and, given probabilities (columns in ``classes`` order), probability ones.

    >>> import numpy as np
    >>> m = classification_metrics(np.array(["a", "b"]), np.array(["a", "a"]))
    >>> m["accuracy"], m["recall_macro"]
    (0.5, 0.5)
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    with warnings.catch_warnings():
        # A small validation set may lack a class the model predicts; the score is still defined.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        balanced = float(skm.balanced_accuracy_score(y_true, y_pred))
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    result = {
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else float("nan"),
        "balanced_accuracy": balanced,
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
    }
    if proba is not None and classes is not None:
        classes = np.asarray(classes)
        result["log_loss"] = float(np.mean(_log_loss_rows(y_true, proba, classes)))
        result["roc_auc"] = _roc_auc(y_true, proba, classes)
        result["pr_auc"] = _pr_auc(y_true, proba, classes)
        result["brier"] = float(np.mean(_brier_rows(y_true, proba, classes)))
        result["calibration_error"] = calibration_error(y_true, proba, classes)
    return result


def regression_metrics(y_true: Array, y_pred: Array) -> dict[str, float]:
    """Mean absolute error, root mean squared error, R² and mean absolute percentage error."""
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    return {
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "r2": float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
        "mape": float(skm.mean_absolute_percentage_error(y_true, y_pred)),
    }


def compute_metrics(
    task: Task,
    y_true: Array,
    y_pred: Array,
    proba: Array | None = None,
    classes: Array | None = None,
) -> dict[str, float]:
    """Every metric that applies to ``task``."""
    compute: dict[Task, Callable[[], dict[str, float]]] = {
        "classification": lambda: classification_metrics(y_true, y_pred, proba, classes),
        "regression": lambda: regression_metrics(y_true, y_pred),
    }
    if task not in compute:
        raise ConfigError(f"task: expected 'classification' or 'regression', found {task!r}")
    return compute[task]()


def primary_metric(task: Task, declared: str | None) -> str:
    """The declared primary metric, checked against the task, or the task's default."""
    if declared is None:
        return DEFAULT_PRIMARY[task]
    valid = (
        REGRESSION
        if task == "regression"
        else tuple(m for m in HIGHER_IS_BETTER if m not in REGRESSION)
    )
    if declared not in valid:
        raise ConfigError(
            f"metrics.primary: expected a {task} metric among {list(valid)}, found {declared!r}"
        )
    return declared


@dataclass(frozen=True)
class ConfidenceInterval:
    """A bootstrap confidence interval of one metric."""

    metric: str
    value: float
    low: float
    high: float
    std: float
    level: float
    resamples: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (NaN becomes ``None``)."""
        return dict(clean(asdict(self)))


def _chunks(n_rows: int, resamples: int) -> list[int]:
    per_chunk = max(1, BOOTSTRAP_CHUNK_ROWS // max(n_rows, 1))
    sizes = [per_chunk] * (resamples // per_chunk)
    if resamples % per_chunk:
        sizes.append(resamples % per_chunk)
    return sizes


def _gathered_means(rows: list[Array], n: int, resamples: int, rng: np.random.Generator) -> Array:
    """Bootstrap means of each per-row array, shape ``(resamples, len(rows))``."""
    out = np.empty((resamples, len(rows)))
    done = 0
    for size in _chunks(n, resamples):
        index = rng.integers(0, n, size=(size, n), dtype=np.int64)
        for j, values in enumerate(rows):
            out[done : done + size, j] = values[index].mean(axis=1)
        done += size
    return out


def _bootstrap_values(
    metric: str,
    task: Task,
    y: Array,
    pred: Array,
    proba: Array | None,
    classes: Array | None,
    resamples: int,
    rng: np.random.Generator,
) -> Array:
    n = len(y)
    if task == "regression":
        yf, pf = y.astype(float), pred.astype(float)
        err = pf - yf
        if metric in ("mae", "rmse", "mape"):
            per_row = {
                "mae": np.abs(err),
                "rmse": err**2,
                "mape": np.abs(err) / np.maximum(np.abs(yf), np.finfo(float).eps),
            }[metric]
            means = _gathered_means([per_row], n, resamples, rng)[:, 0]
            return np.sqrt(means) if metric == "rmse" else means
        sums = _gathered_means([err**2, yf, yf**2], n, resamples, rng)
        variance = sums[:, 2] - sums[:, 1] ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(1.0 - sums[:, 0] / variance)
    if metric == "accuracy":
        return _gathered_means([(y == pred).astype(float)], n, resamples, rng)[:, 0]
    if metric in ("log_loss", "brier") and proba is not None and classes is not None:
        rows = (_log_loss_rows if metric == "log_loss" else _brier_rows)(y, proba, classes)
        return _gathered_means([rows], n, resamples, rng)[:, 0]
    if metric in ("balanced_accuracy", "precision_macro", "recall_macro", "f1_macro"):
        return _confusion_bootstrap(metric, y, pred, resamples, rng)
    # Ranking and binned metrics: loop, with the resample count capped by the row budget.
    loops = max(1, min(resamples, BOOTSTRAP_BUDGET_ROWS // max(n, 1)))
    values = np.empty(loops)
    for b in range(loops):
        index = rng.integers(0, n, size=n)
        p = None if proba is None else proba[index]
        values[b] = compute_metrics(task, y[index], pred[index], p, classes).get(metric, np.nan)
    return values


def _confusion_bootstrap(
    metric: str, y: Array, pred: Array, resamples: int, rng: np.random.Generator
) -> Array:
    labels, codes = np.unique(np.concatenate([y, pred]), return_inverse=True)
    k, n = len(labels), len(y)
    cell = codes[:n] * k + codes[n:]
    out = np.empty(resamples)
    done = 0
    for size in _chunks(n, resamples):
        index = rng.integers(0, n, size=(size, n), dtype=np.int64)
        flat = cell[index] + (np.arange(size) * k * k)[:, None]
        cm = np.bincount(flat.ravel(), minlength=size * k * k).reshape(size, k, k).astype(float)
        tp = np.diagonal(cm, axis1=1, axis2=2)
        support, predicted = cm.sum(axis=2), cm.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = np.where(support > 0, tp / support, np.nan)
            precision = np.where(predicted > 0, tp / predicted, 0.0)
            if metric == "balanced_accuracy":
                value = np.nanmean(recall, axis=1)
            else:
                present = (support + predicted) > 0
                recall0 = np.nan_to_num(recall)
                f1 = np.where(
                    precision + recall0 > 0, 2 * precision * recall0 / (precision + recall0), 0.0
                )
                chosen = {"precision_macro": precision, "recall_macro": recall0, "f1_macro": f1}
                value = (chosen[metric] * present).sum(axis=1) / present.sum(axis=1)
        out[done : done + size] = value
        done += size
    return out


def bootstrap_margin(
    metric: str,
    task: Task,
    y_true: Array,
    candidate: tuple[Array, Array | None, Array | None],
    baseline: tuple[Array, Array | None, Array | None],
    *,
    resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the candidate's margin over a baseline on ``metric``
    (positive: the candidate is better), both scored on the same resampled rows.

    ``candidate`` and ``baseline`` are each ``(y_pred, proba, classes)``. Pairing the rows
    cancels what both models get right or wrong alike, so the interval is much narrower than
    the two models' own intervals would suggest. ``None`` without resamples.

    >>> import numpy as np
    >>> y = np.array([0, 1] * 50)
    >>> bootstrap_margin("accuracy", "classification", y, (y, None, None), (1 - y, None, None))
    (1.0, 1.0)
    """
    y = np.asarray(y_true)
    if resamples == 0 or len(y) < 2:
        return None
    sign = 1.0 if HIGHER_IS_BETTER.get(metric, True) else -1.0
    draws = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resamples of tiny sets
        for pred, proba, classes in (candidate, baseline):
            # The same seed draws the same rows for both: the metric's path is the same.
            rng = np.random.default_rng(seed)
            draws.append(
                _bootstrap_values(metric, task, y, np.asarray(pred), proba, classes, resamples, rng)
            )
    margins = sign * (draws[0] - draws[1])
    margins = margins[np.isfinite(margins)]
    if len(margins) == 0:
        return None
    alpha = (1.0 - level) / 2
    low, high = np.quantile(margins, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(
    metric: str,
    task: Task,
    y_true: Array,
    y_pred: Array,
    proba: Array | None = None,
    classes: Array | None = None,
    *,
    resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> ConfidenceInterval:
    """Percentile bootstrap confidence interval of ``metric`` over the rows.

    >>> import numpy as np
    >>> y = np.array([0, 1] * 50)
    >>> ci = bootstrap_ci("accuracy", "classification", y, y, resamples=50)
    >>> (ci.low, ci.value, ci.high)
    (1.0, 1.0, 1.0)
    """
    y, pred = np.asarray(y_true), np.asarray(y_pred)
    value = compute_metrics(task, y, pred, proba, classes).get(metric, float("nan"))
    if resamples == 0 or len(y) < 2:
        return ConfidenceInterval(metric, value, np.nan, np.nan, np.nan, level, 0)
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resamples of tiny sets
        values = _bootstrap_values(metric, task, y, pred, proba, classes, resamples, rng)
        values = values[np.isfinite(values)]
    if len(values) == 0:
        return ConfidenceInterval(metric, value, np.nan, np.nan, np.nan, level, 0)
    alpha = (1.0 - level) / 2
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return ConfidenceInterval(
        metric, value, float(low), float(high), float(values.std()), level, len(values)
    )
