"""Entry points, factories and an unreviewed estimator used by the flavor tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def fit_logistic(
    X: pd.DataFrame, y: npt.NDArray[Any], params: dict[str, Any], seed: int
) -> Pipeline:
    """A user entry point: one-hot the string columns, scale the rest, logistic regression."""
    categorical = [name for name in X.columns if not pd.api.types.is_numeric_dtype(X[name])]
    numeric = [name for name in X.columns if name not in categorical]
    preprocess = ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            ),
            ("numeric", StandardScaler(), numeric),
        ]
    )
    model = LogisticRegression(C=float(params.get("C", 1.0)), random_state=seed, max_iter=1000)
    return Pipeline([("preprocess", preprocess), ("model", model)]).fit(X, y)


class MajorityClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A custom estimator class: not on the reviewed skops allow-list."""

    def fit(self, X: pd.DataFrame, y: npt.NDArray[Any]) -> MajorityClassifier:
        values, counts = np.unique(np.asarray(y), return_counts=True)
        self.classes_ = values
        self.majority_ = values[np.argmax(counts)]
        return self

    def predict(self, X: pd.DataFrame) -> npt.NDArray[Any]:
        return np.full(len(X), self.majority_)


def fit_majority(
    X: pd.DataFrame, y: npt.NDArray[Any], params: dict[str, Any], seed: int
) -> MajorityClassifier:
    """An entry point returning an estimator of a class skops does not trust."""
    return MajorityClassifier().fit(X, y)


def unfitted_logistic(
    X: pd.DataFrame, y: npt.NDArray[Any], params: dict[str, Any], seed: int
) -> LogisticRegression:
    """An entry point that forgets to fit."""
    return LogisticRegression()


class DuckMajority:
    """A model with fit/predict that is no scikit-learn estimator (and sets no ``*_``)."""

    def fit(self, X: pd.DataFrame, y: npt.NDArray[Any]) -> DuckMajority:
        values, counts = np.unique(np.asarray(y), return_counts=True)
        self.majority = values[np.argmax(counts)]
        return self

    def predict(self, X: pd.DataFrame) -> npt.NDArray[Any]:
        return np.full(len(X), self.majority)


def fit_duck(X: pd.DataFrame, y: npt.NDArray[Any], params: dict[str, Any], seed: int) -> Any:
    """An entry point returning a fitted duck-typed model."""
    return DuckMajority().fit(X, y)


def small_cnn(n_inputs: int, n_outputs: int, *, channels: int = 4) -> Any:
    """A tiny CNN for 8x8 one-channel images (sklearn digits)."""
    from torch import nn

    side = round(n_inputs**0.5)
    return nn.Sequential(
        nn.Conv2d(1, channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channels * side * side, n_outputs),
    )


def not_a_module(n_inputs: int, n_outputs: int) -> str:
    """A factory that returns the wrong thing."""
    return "not a module"
