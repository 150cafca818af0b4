"""Small real data sets (bundled with scikit-learn) shared by the flavor tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris


@dataclass(frozen=True)
class Dataset:
    """A train/validation split of a frame and its labels."""

    X_train: pd.DataFrame
    y_train: npt.NDArray[Any]
    X_valid: pd.DataFrame
    y_valid: npt.NDArray[Any]


def _split(X: pd.DataFrame, y: npt.NDArray[Any]) -> Dataset:
    order = np.random.default_rng(0).permutation(len(X))
    cut = int(len(X) * 0.8)
    train, valid = order[:cut], order[cut:]
    return Dataset(
        X.iloc[train].reset_index(drop=True),
        y[train],
        X.iloc[valid].reset_index(drop=True),
        y[valid],
    )


def iris_strings() -> Dataset:
    """Iris with a string categorical column (petal size) and string labels."""
    bunch = load_iris(as_frame=True)
    X = bunch.data.drop(columns=["petal length (cm)"])
    length = bunch.data["petal length (cm)"]
    X["petal size"] = pd.Series(
        np.where(length < 2.5, "small", np.where(length < 4.9, "medium", "large")), dtype="str"
    )
    y = np.asarray(bunch.target_names)[bunch.target.to_numpy()].astype(object)
    return _split(X, y)


def breast_cancer() -> Dataset:
    """Binary classification, 30 numeric columns, integer labels."""
    bunch = load_breast_cancer(as_frame=True)
    return _split(bunch.data, bunch.target.to_numpy())


def diabetes() -> Dataset:
    """Regression, 10 numeric columns."""
    bunch = load_diabetes(as_frame=True)
    return _split(bunch.data, bunch.target.to_numpy())


DATASETS = {"iris_strings": iris_strings, "breast_cancer": breast_cancer, "diabetes": diabetes}


@pytest.fixture(scope="session")
def datasets() -> dict[str, Dataset]:
    """Every data set, loaded once."""
    return {name: load() for name, load in DATASETS.items()}
