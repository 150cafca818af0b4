"""Unit tests of the demo project's feature code (run by `readyml check`)."""

from __future__ import annotations

import pandas as pd
from features import add_features, load, served_features


def test_month_and_range_are_derived() -> None:
    raw = pd.DataFrame(
        {"date": ["2013-02-03", "2013-11-30"], "temp_max": [10.0, 5.5], "temp_min": [2.0, -1.5]}
    )
    out = add_features(raw)
    assert out["month"].tolist() == [2, 11]
    assert out["temp_range"].tolist() == [8.0, 7.0]


def test_load_returns_the_history_with_features() -> None:
    frame = load()
    assert len(frame) == 731
    assert {"month", "temp_range", "weather"} <= set(frame.columns)
    assert frame["temp_range"].ge(0).all()


def test_served_features_recompute_the_range_by_request_id() -> None:
    requests = pd.DataFrame(
        {"request_id": ["a", "b"], "temp_max": [9.0, 1.0], "temp_min": [4.0, -2.0]}
    )
    out = served_features(requests)
    assert out.to_dict(orient="list") == {"request_id": ["a", "b"], "temp_range": [5.0, 3.0]}
