"""Fixtures for compression tests: a small tabular data set and a registry in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from readyml.compress import Splits
from readyml.registry import Registry, open_registry


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """A fresh registry (SQLite + local artifacts)."""
    return open_registry(tmp_path / "workspace")


@pytest.fixture(scope="session")
def iris_splits() -> Splits:
    """Iris with a string label and one categorical column, split 2:1."""
    from sklearn.datasets import load_iris

    frame, target = load_iris(return_X_y=True, as_frame=True)
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    frame["site"] = np.where(np.arange(len(frame)) % 3 == 0, "north", "south")
    labels = np.asarray(["setosa", "versicolor", "virginica"])[target.to_numpy()]
    order = np.random.default_rng(0).permutation(len(frame))
    train, valid = order[:100], order[100:]
    X = frame.reset_index(drop=True)
    return Splits(
        X_train=X.iloc[train].reset_index(drop=True),
        y_train=labels[train],
        X_valid=X.iloc[valid].reset_index(drop=True),
        y_valid=labels[valid],
    )


def frame_of(splits: Splits) -> pd.DataFrame:
    """The training frame (typed, for mypy)."""
    frame: pd.DataFrame = splits.X_train
    return frame
