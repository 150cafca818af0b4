"""Fixtures for the data package tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def frame() -> pd.DataFrame:
    """A small mixed frame: floats, ints, categories, booleans, dates and text."""
    rng = np.random.default_rng(7)
    n = 2000
    return pd.DataFrame(
        {
            "temp": rng.normal(15.0, 5.0, n),
            "count": rng.integers(0, 1000, n),
            "city": rng.choice(["Oslo", "Rome", "Zürich", "東京"], n),
            "rain": rng.random(n) < 0.3,
            "day": pd.date_range("2020-01-01", periods=n, freq="h"),
            "note": [f"note {i}" for i in range(n)],
        }
    )


@pytest.fixture
def train() -> pd.DataFrame:
    """Training-like data: a float, an int and a two-category column, 3,000 rows."""
    rng = np.random.default_rng(0)
    n = 3000
    return pd.DataFrame(
        {
            "x": rng.normal(0, 1, n),
            "age": rng.integers(18, 90, n),
            "city": rng.choice(["Oslo", "Rome"], n),
        }
    )
