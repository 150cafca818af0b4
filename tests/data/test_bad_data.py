"""Property tests: bad data gives anomalies or clear errors, never a crash."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from readyml.data import (
    Profile,
    detect_drift,
    infer_schema,
    profile_frame,
    validate_frame,
)
from readyml.errors import DataError

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
columns = st.one_of(
    st.lists(scalars, max_size=30),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=30),
    st.lists(st.one_of(st.none(), st.text(max_size=5)), max_size=30),
    st.lists(st.none(), max_size=30),
    st.lists(st.just("σταθερό"), max_size=30),
)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(min_value=0, max_value=20))
    width = draw(st.integers(min_value=0, max_value=4))
    data = {}
    for i in range(width):
        values = draw(columns)
        values = (values * (n // max(len(values), 1) + 1))[:n] if values else [None] * n
        data[f"c{i}"] = pd.Series(values, dtype=object)
    return pd.DataFrame(data, index=range(n))


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(frames())
def test_profile_and_validate_never_crash(df: pd.DataFrame) -> None:
    prof = profile_frame(df)
    back = Profile.from_json(prof.to_json())
    assert back.n_rows == len(df)
    assert prof.merge(back).n_rows == 2 * len(df)
    report = validate_frame(df, schema=infer_schema(df), reference=prof)
    json.dumps(report.to_dict(), allow_nan=False)
    report.to_table()
    assert all(len(a.examples) <= 5 for a in report.anomalies)


@SETTINGS
@given(frames(), frames())
def test_validate_against_another_frames_schema_never_crashes(
    train: pd.DataFrame, serve: pd.DataFrame
) -> None:
    report = validate_frame(serve, schema=infer_schema(train), reference=profile_frame(train))
    json.dumps(report.to_dict(), allow_nan=False)


@SETTINGS
@given(frames(), frames())
def test_drift_never_crashes(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    for ref, cur in ((reference, current), (profile_frame(reference), current)):
        try:
            report = detect_drift(ref, cur)
        except DataError:
            continue
        json.dumps(report.to_dict(), allow_nan=False)


def test_empty_frame_is_too_few_rows() -> None:
    report = validate_frame(pd.DataFrame())
    assert [a.kind for a in report.anomalies] == ["too_few_rows"]


def test_huge_cardinality_and_unicode_categoricals() -> None:
    n = 100_000
    df = pd.DataFrame({"id": [f"ключ-{i}-🔑" for i in range(n)]})
    schema = infer_schema(df)
    assert schema.features[0].type == "string"
    assert validate_frame(df, schema=schema).ok


def test_zero_row_reference_is_skipped_with_a_reason() -> None:
    ref = pd.DataFrame({"x": pd.Series([], dtype=float)})
    cur = pd.DataFrame({"x": np.arange(10.0)})
    report = detect_drift(ref, cur)
    assert "no finite values" in report.skipped["x"]
    validation = validate_frame(cur, reference=profile_frame(ref))
    assert validation.ok
