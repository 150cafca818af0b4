"""Baselines: "a simpler model is not better" (ML Test Score model-5).

Every evaluation also fits the simplest sensible models on the same training split and scores
them on the same validation rows: a dummy (the majority class, or the mean) and a linear model
(logistic regression, or ridge regression) behind median imputation, standardisation and
one-hot encoding. The candidate's margin over each is recorded, positive when it is better.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from readyml.evaluate.metrics import better, clean, compute_metrics

# Iterations of the logistic baseline's solver.
# A model's outputs on the validation rows: predictions, probabilities, classes.
Outputs = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]

LINEAR_MAX_ITER = 300
# Largest training set the linear baseline is fitted on (a seeded sample beyond it).
LINEAR_MAX_ROWS = 200_000
# Categories per column the linear baseline one-hot encodes (rarer ones share a column).
LINEAR_MAX_CATEGORIES = 50


def _columns(frame: pd.DataFrame, features: Sequence[str]) -> tuple[list[str], list[str]]:
    numeric, categorical = [], []
    for name in features:
        dtype = frame[name].dtype
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            numeric.append(name)
        elif not pd.api.types.is_datetime64_any_dtype(dtype):
            categorical.append(name)
    return numeric, categorical


def _linear(task: str, frame: pd.DataFrame, features: Sequence[str], seed: int) -> Pipeline:
    numeric, categorical = _columns(frame, features)
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric)
        )
    if categorical:
        encoder = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            max_categories=LINEAR_MAX_CATEGORIES,
            sparse_output=False,
        )
        parts.append(
            (
                "categorical",
                make_pipeline(SimpleImputer(strategy="most_frequent"), encoder),
                categorical,
            )
        )
    model: Any = (
        LogisticRegression(max_iter=LINEAR_MAX_ITER, random_state=seed)
        if task == "classification"
        else Ridge()
    )
    return Pipeline([("prepare", ColumnTransformer(parts, remainder="drop")), ("model", model)])


def _as_text(frame: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """Categorical columns as plain strings, so that the encoder sees one type per column."""
    out = frame[list(features)].copy()
    for name in _columns(frame, features)[1]:
        out[name] = out[name].astype("string").astype(object).where(out[name].notna(), np.nan)
    return out


def fit_baselines(
    task: str,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    features: Sequence[str],
    label: str,
    seed: int = 0,
    outputs: dict[str, Outputs] | None = None,
) -> dict[str, dict[str, Any]]:
    """Fit the dummy and linear baselines on ``train``; their metrics on ``valid``.

    ``outputs``, when given, receives each baseline's ``(y_pred, proba, classes)`` on
    ``valid`` (to compare it with the candidate row by row).

    Returns:
        ``{"dummy": {"model", "metrics"}, "linear": {"model", "metrics", "converged"}}``.
    """
    outputs = outputs if outputs is not None else {}
    y_train, y_valid = train[label].to_numpy(), valid[label].to_numpy()
    dummy: Any = (
        DummyClassifier(strategy="most_frequent")
        if task == "classification"
        else DummyRegressor(strategy="mean")
    )
    results: dict[str, dict[str, Any]] = {}
    zeros = np.zeros((len(train), 1))
    dummy.fit(zeros, y_train)
    results["dummy"] = {
        "model": type(dummy).__name__ + f"({dummy.strategy})",
        "metrics": _score(task, dummy, np.zeros((len(valid), 1)), y_valid, outputs, "dummy"),
    }
    if len(train) > LINEAR_MAX_ROWS:
        train = train.sample(LINEAR_MAX_ROWS, random_state=seed)
        y_train = train[label].to_numpy()
    linear = _linear(task, train, features, seed)
    converged = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if task == "classification" and len(np.unique(y_train)) < 2:
            linear = None
        else:
            linear.fit(_as_text(train, features), y_train)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    if linear is not None:
        results["linear"] = {
            "model": type(linear.steps[-1][1]).__name__,
            "metrics": _score(task, linear, _as_text(valid, features), y_valid, outputs, "linear"),
            "converged": converged,
        }
    return results


def _score(
    task: str, model: Any, X: Any, y: np.ndarray, outputs: dict[str, Outputs], name: str
) -> dict[str, Any]:
    pred = model.predict(X)
    proba = model.predict_proba(X) if task == "classification" else None
    classes = getattr(model, "classes_", None) if proba is not None else None
    outputs[name] = (pred, proba, classes)
    return dict(clean(compute_metrics(task, y, pred, proba, classes)))


def margins(
    candidate: dict[str, Any], baselines: dict[str, dict[str, Any]], metric: str
) -> dict[str, float | None]:
    """The candidate's margin over each baseline on ``metric`` (positive: the candidate wins)."""
    out: dict[str, float | None] = {}
    mine = candidate.get(metric)
    for name, result in baselines.items():
        theirs = result["metrics"].get(metric)
        out[name] = None if mine is None or theirs is None else better(metric, mine, theirs)
    return out
