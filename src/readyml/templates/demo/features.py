"""Feature code of the readyml demo project: load the weather history and derive features.

readyml calls ``load`` (named in readyml.yaml as ``features:load``); the unit tests in
``tests/test_features.py`` check the derived columns (ML Test Score data-7).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
HISTORY = HERE / "data" / "weather_2012_2013.csv"


def temperature_range(frame: pd.DataFrame) -> pd.Series:
    """The day's temperature range, from its highest and lowest temperature."""
    return frame["temp_max"] - frame["temp_min"]


def add_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Derive calendar and temperature features from the raw daily measurements."""
    out = frame.copy()
    dates = pd.to_datetime(out["date"])
    out["date"] = dates
    out["month"] = dates.dt.month.astype("int64")
    out["temp_range"] = temperature_range(out)
    return out


def served_features(requests: pd.DataFrame) -> pd.DataFrame:
    """The training code path's features for logged requests, keyed by ``request_id``.

    readyml's monitor (``monitoring.skew.offline_features``) compares them with what the
    server was sent (ML Test Score monitor-3). The logged raw temperatures give
    ``temp_range`` again; ``month`` needs the date, which requests do not carry.
    """
    return pd.DataFrame(
        {"request_id": requests["request_id"], "temp_range": temperature_range(requests)}
    )


def load() -> pd.DataFrame:
    """The training data: 2012–2013 with derived features."""
    return add_features(pd.read_csv(HISTORY))
