"""Quality metrics for classification and regression, computed with scikit-learn."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm

from readyml.errors import ConfigError

Task = str  # "classification" | "regression"

# Whether a larger value is better, per metric; the gate and comparisons read this.
HIGHER_IS_BETTER = {
    "accuracy": True,
    "balanced_accuracy": True,
    "f1_macro": True,
    "roc_auc": True,
    "log_loss": False,
    "mae": False,
    "rmse": False,
    "r2": True,
}

DEFAULT_PRIMARY = {"classification": "accuracy", "regression": "rmse"}


def _roc_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(y == classes[1], proba[:, 1]))
    present = np.isin(classes, np.unique(y))
    if not present.all():
        return float("nan")  # one-vs-rest AUC is undefined when a class is absent
    return float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes))


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
    classes: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro F1 and, given probabilities, log loss and ROC AUC."""
    with warnings.catch_warnings():
        # A small validation set may lack a class the model predicts; the score is still defined.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = float(skm.balanced_accuracy_score(y_true, y_pred))
    result = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": balanced,
        "f1_macro": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
    if proba is not None and classes is not None:
        result["log_loss"] = float(skm.log_loss(y_true, proba, labels=classes))
        result["roc_auc"] = _roc_auc(np.asarray(y_true), proba, np.asarray(classes))
    return result


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Mean absolute error, root mean squared error and R²."""
    return {
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "r2": float(skm.r2_score(y_true, y_pred)),
    }


def compute_metrics(
    task: Task,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
    classes: np.ndarray | None = None,
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
        ("mae", "rmse", "r2")
        if task == "regression"
        else tuple(m for m in HIGHER_IS_BETTER if m not in ("mae", "rmse", "r2"))
    )
    if declared not in valid:
        raise ConfigError(
            f"metrics.primary: expected a {task} metric among {list(valid)}, found {declared!r}"
        )
    return declared
