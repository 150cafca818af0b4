"""Feature code of the readyml demo project: load the weather history and derive features.

readyml calls ``load`` (named in readyml.yaml as ``features:load``); the unit tests in
``tests/test_features.py`` check the derived columns (ML Test Score data-7).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
HISTORY = HERE / "data" / "weather_2012_2013.csv"


def add_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Derive calendar and temperature features from the raw daily measurements."""
    out = frame.copy()
    dates = pd.to_datetime(out["date"])
    out["date"] = dates
    out["month"] = dates.dt.month.astype("int64")
    out["temp_range"] = out["temp_max"] - out["temp_min"]
    return out


def load() -> pd.DataFrame:
    """The training data: 2012–2013 with derived features."""
    return add_features(pd.read_csv(HISTORY))
