"""Tests for readyml.data.profile."""

from __future__ import annotations

import base64
import datetime
import json
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from readyml.cli.data import app
from readyml.data import Profile, profile_frame
from readyml.data._sketches import EXACT_VALUES_LIMIT
from readyml.errors import DataError

RANK_ERROR = 0.02  # KLL k=200 single-sided rank error is ~1.3 %; allow a margin


def test_profile_counts_missing_nan_and_infinities() -> None:
    df = pd.DataFrame({"x": [1.0, np.nan, np.inf, -np.inf, 3.0, None]})
    col = profile_frame(df).columns["x"]
    assert (col.count, col.missing, col.nan, col.posinf, col.neginf) == (6, 2, 2, 1, 1)
    assert (col.min, col.max, col.mean, col.n_values) == (1.0, 3.0, 2.0, 2)
    assert col.std == pytest.approx(math.sqrt(2.0))


def test_profile_of_text_has_top_values_and_lengths(frame: pd.DataFrame) -> None:
    col = profile_frame(frame).columns["city"]
    top = dict(col.top())
    assert top == frame["city"].value_counts().to_dict()
    assert col.distinct == 4
    assert col.length_min == 2 and col.length_max == 6
    assert col.length_mean == pytest.approx(frame["city"].str.len().mean())


def test_profile_types(frame: pd.DataFrame) -> None:
    types = {n: c.type for n, c in profile_frame(frame).columns.items()}
    assert types == {
        "temp": "float",
        "count": "int",
        "city": "string",
        "rain": "bool",
        "day": "datetime",
        "note": "string",
    }


def test_quantiles_and_histogram_are_within_sketch_error() -> None:
    x = np.random.default_rng(1).normal(size=50_000)
    col = profile_frame(pd.DataFrame({"x": x})).columns["x"]
    for rank, value in zip([0.1, 0.5, 0.9], col.quantiles([0.1, 0.5, 0.9]) or [], strict=True):
        assert abs(np.mean(x <= value) - rank) < RANK_ERROR
    hist = col.histogram()
    assert hist is not None
    expected, _ = np.histogram(x, bins=np.asarray(hist[0]))
    assert np.max(np.abs(np.asarray(hist[1]) - expected)) / len(x) < 2 * RANK_ERROR
    assert sum(hist[1]) == pytest.approx(len(x), abs=10)


def test_merge_equals_whole_frame_profile(frame: pd.DataFrame) -> None:
    whole = profile_frame(frame)
    parts = [frame.iloc[:700], frame.iloc[700:701], frame.iloc[701:]]
    merged = profile_frame(parts[0]).merge(profile_frame(parts[1])).merge(profile_frame(parts[2]))
    assert merged.n_rows == whole.n_rows
    for name, w in whole.columns.items():
        m = merged.columns[name]
        assert (m.type, m.count, m.missing, m.n_values) == (w.type, w.count, w.missing, w.n_values)
        assert (m.min, m.max) == (w.min, w.max)
        if w.mean is not None:
            assert m.mean == pytest.approx(w.mean, rel=1e-12)
            assert m.std == pytest.approx(w.std, rel=1e-9)
        assert m.distinct == pytest.approx(w.distinct, rel=0.05)
        if not w.numeric:
            assert m.top(4) == w.top(4) or name == "note"
    exact = frame["temp"].to_numpy()
    for value, rank in zip(
        merged.columns["temp"].quantiles() or [],
        [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99],
        strict=True,
    ):
        assert abs(np.mean(exact <= value) - rank) < RANK_ERROR


def test_merge_with_a_column_absent_on_one_side_counts_it_missing() -> None:
    merged = profile_frame(pd.DataFrame({"a": [1, 2]})).merge(
        profile_frame(pd.DataFrame({"a": [3], "b": ["x"]}))
    )
    assert merged.columns["b"].count == 3 and merged.columns["b"].missing == 2
    assert merged.columns["a"].max == 3


def test_merge_of_int_and_float_chunks_is_float() -> None:
    merged = profile_frame(pd.DataFrame({"a": [1, 2]})).merge(
        profile_frame(pd.DataFrame({"a": [1.5, None]}))
    )
    assert merged.columns["a"].type == "float"


def test_merge_of_numbers_with_labels_raises() -> None:
    with pytest.raises(DataError, match="cannot merge"):
        profile_frame(pd.DataFrame({"a": [1, 2]})).merge(profile_frame(pd.DataFrame({"a": ["x"]})))


def test_distinct_counts_of_high_cardinality_columns_use_sampling() -> None:
    n = 200_000
    df = pd.DataFrame({"x": np.arange(n, dtype=np.float64), "s": [f"id{i}" for i in range(n)]})
    prof = profile_frame(df)
    for name in ("x", "s"):
        assert prof.columns[name].hll_exact is None
        assert prof.columns[name].distinct == pytest.approx(n, rel=0.1)
    halves = profile_frame(df.iloc[: n // 2]).merge(profile_frame(df.iloc[n // 2 :]))
    assert halves.columns["s"].distinct == pytest.approx(n, rel=0.1)


def test_json_round_trip_keeps_state_and_version(frame: pd.DataFrame) -> None:
    prof = profile_frame(frame)
    text = prof.to_json()
    data = json.loads(text)
    assert data["format_version"] == 1
    back = Profile.from_json(text)
    for name, col in prof.columns.items():
        again = back.columns[name]
        before, after = col.to_dict(), again.to_dict()
        before.pop("sketches"), after.pop("sketches")
        assert after == before
    assert back.merge(prof).columns["temp"].count == 2 * len(frame)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "expected JSON"),
        ('{"format_version": 99}', "format_version"),
        ('{"format_version": 1, "n_rows": 1, "columns": [{"name": "a"}]}', "expected key"),
    ],
)
def test_from_json_rejects_bad_input(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        Profile.from_json(text)


def test_profile_frame_rejects_bad_arguments() -> None:
    with pytest.raises(DataError, match="expected a pandas DataFrame"):
        profile_frame([1, 2])
    with pytest.raises(DataError, match="'z' not found"):
        profile_frame(pd.DataFrame({"a": [1]}), columns=["z"])
    with pytest.raises(DataError, match="repeated"):
        profile_frame(pd.DataFrame([[1, 2]], columns=["a", "a"]))


def test_distinct_estimate_is_never_above_the_number_of_values() -> None:
    days = pd.DataFrame({"day": pd.date_range("2012-01-01", periods=1461, freq="D")})
    column = profile_frame(days).columns["day"]
    assert column.hll_exact.get_estimate() > 1461  # HyperLogLog overestimates this one
    assert column.distinct == 1461


@pytest.mark.parametrize(
    "values",
    [
        [1e308, -1e308],
        [1e308, 5e307, -1e308, 1.0],
        [1e200, -1e200, 3.0],
        [1.7e308, 1.7e308, 1.7e308],
    ],
)
def test_std_of_values_near_the_float_limit_is_finite_and_exact(values: list[float]) -> None:
    """The sum of squared deviations overflows: it is held scaled, so std stays exact."""
    scaled = [math.ldexp(v, -1024) for v in values]  # exact: a power of two
    expected = math.ldexp(statistics.stdev(scaled), 1024)  # exact fractions
    col = profile_frame(pd.DataFrame({"x": values})).columns["x"]
    assert col.std == pytest.approx(expected, rel=1e-12)
    back = Profile.from_json(profile_frame(pd.DataFrame({"x": values})).to_json())
    assert back.columns["x"].std == pytest.approx(expected, rel=1e-12)
    halves = [pd.DataFrame({"x": values[:1]}), pd.DataFrame({"x": values[1:]})]
    merged = profile_frame(halves[0]).merge(profile_frame(halves[1])).columns["x"]
    assert merged.std == pytest.approx(expected, rel=1e-12)


def test_std_of_a_long_column_of_huge_values_is_exact() -> None:
    values = np.full(300_000, 1e308)
    values[::2] = -1e308
    expected = math.ldexp(float(np.std(np.ldexp(values, -1024), ddof=1)), 1024)
    assert profile_frame(pd.DataFrame({"x": values})).columns["x"].std == pytest.approx(
        expected, rel=1e-9
    )


def test_a_std_beyond_the_largest_float_is_capped_so_json_stays_valid() -> None:
    prof = profile_frame(pd.DataFrame({"x": [1.7e308, -1.7e308]}))
    assert prof.columns["x"].std == sys.float_info.max
    json.loads(prof.to_json())


def test_datetimes_past_2262_and_object_dates_with_nulls_are_profiled() -> None:
    far = pd.Series(["3000-01-01", "1500-01-01", None]).astype("datetime64[s]")
    col = profile_frame(pd.DataFrame({"t": far})).columns["t"]
    epoch = pd.Timestamp("1970-01-01")
    expected_max = (pd.Timestamp("3000-01-01") - epoch).total_seconds() * 1e9
    assert (col.max, col.missing) == (expected_max, 1)
    assert col.min is not None and col.min < 0
    dates = pd.Series([None, datetime.date(2000, 1, 1)], dtype=object)
    col = profile_frame(pd.DataFrame({"d": dates})).columns["d"]
    assert (col.type, col.missing, col.min) == ("datetime", 1, pd.Timestamp("2000-01-01").value)


def test_a_time_zone_is_kept_through_merge_and_json() -> None:
    stamps = pd.date_range("2021-03-01", periods=3, freq="h", tz="Europe/Oslo")
    prof = profile_frame(pd.DataFrame({"t": stamps}))
    col = Profile.from_json(prof.merge(prof).to_json()).columns["t"]
    assert (col.timezone, col.min) == ("Europe/Oslo", stamps[0].value)


def test_top_values_past_the_sketch_capacity_are_proven_and_not_overstated() -> None:
    """Past ~768 distinct values only values proven frequent are listed, at their lower bound."""
    ids = [f"id{i}" for i in range(3000)]
    col = profile_frame(pd.DataFrame({"s": ids + ["a"] * 50 + ["b"] * 20})).columns["s"]
    assert col.frequency_error > 0
    top = col.top()
    assert [v for v, _ in top] == ["a", "b"]
    assert all(col.frequency_error < c <= {"a": 50, "b": 20}[v] for v, c in top)
    assert profile_frame(pd.DataFrame({"u": ids})).columns["u"].top() == []
    few = profile_frame(pd.DataFrame({"s": ["x"] * 7 + ["y"] * 3})).columns["s"]
    assert (few.top(), few.frequency_error) == ([("x", 7), ("y", 3)], 0)


def test_top_values_of_datetimes_are_iso_8601_in_the_column_time_zone() -> None:
    naive = pd.Series(
        pd.to_datetime(["2020-01-01", "2020-01-01", "2021-05-03T10:00:00.25"], format="ISO8601")
    )
    col = profile_frame(pd.DataFrame({"d": naive})).columns["d"]
    assert col.top() == [("2020-01-01T00:00:00", 2), ("2021-05-03T10:00:00.250000", 1)]
    oslo = pd.Series(pd.date_range("2021-03-01", periods=2, freq="h", tz="Europe/Oslo"))
    col = Profile.from_json(profile_frame(pd.DataFrame({"t": oslo})).to_json()).columns["t"]
    assert col.top() == [("2021-03-01T00:00:00+01:00", 1), ("2021-03-01T01:00:00+01:00", 1)]
    col.timezone = "Nowhere/Unknown"  # a zone this machine lacks: UTC, said so
    assert col.top(1) == [("2021-02-28T23:00:00+00:00", 1)]


def _kll_damaged(offset: int, value: bytes) -> str:
    """A KLL sketch of several levels with ``value`` written at byte ``offset``."""
    x = np.random.default_rng(0).normal(size=5000)
    text = profile_frame(pd.DataFrame({"x": x})).to_dict()["columns"][0]["sketches"]["kll"]
    blob = bytearray(base64.b64decode(text))
    blob[offset : offset + len(value)] = value
    return base64.b64encode(bytes(blob)).decode()


def _hll_damaged(offset: int, value: bytes) -> str:
    """A merged profile's HLL sketch (4-bit registers) with ``value`` written at ``offset``."""
    prof = profile_frame(pd.DataFrame({"x": np.arange(5000.0)}))
    text = prof.merge(prof).to_dict()["columns"][0]["sketches"]["hll_exact"]
    blob = bytearray(base64.b64decode(text))
    blob[offset : offset + len(value)] = value
    return base64.b64encode(bytes(blob)).decode()


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        final: Any = int(last) if last.isdigit() else last
        if value is KeyError:
            del target[final]
        else:
            target[final] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("columns", [[1]]), r"^profile: columns\[0\]: expected an object, found a list$"),
        (_set("columns", {"x": 1}), "^profile: columns: expected a list, found an object$"),
        (_set("n_rows", "x"), '^profile: n_rows: expected a whole number >= 0, found "x"$'),
        (_set("n_rows", KeyError), "^profile: expected key 'n_rows', not found$"),
        (_set("columns.0.name", 5), "^profile column: name: expected text, found 5$"),
        (_set("columns.0.type", "text"), "^profile column 'x': type: expected one of float, "),
        (_set("columns.0.count", -1), "'x': count: expected a whole number >= 0, found -1$"),
        (_set("columns.0.count", 2.5), "'x': count: expected a whole number >= 0, found 2.5$"),
        (_set("columns.0.min", "low"), "'x': min: expected a finite number, found \"low\"$"),
        (_set("columns.0.min", 99.0), r"'x': min: expected at most max \(\S+\), found 99$"),
        (_set("columns.0.m2", float("nan")), "'x': m2: expected a finite number >= 0, found nan$"),
        (_set("columns.0.integral", "yes"), "'x': integral: expected true or false, found \"yes\""),
        (
            _set("columns.0.kll_level", 10**9),
            r"'x': kll_level: expected a whole number in \[0, 63\]",
        ),
        (_set("columns.0.timezone", 1), "'x': timezone: expected text, found 1$"),
        (_set("columns.0.sketches", []), "'x': sketches: expected an object, found a list$"),
        (_set("columns.0.sketches.hll_exact", KeyError), "'x': sketches: expected key 'hll_exact'"),
        (_set("columns.0.sketches.kll", "AAAA"), "'x': sketches.kll: expected a serialized kll "),
        (_set("columns.0.sketches.kll", "not base64!"), "'x': sketches.kll: expected a serialized"),
        (_set("columns.0.sketches.kll", 7), "'x': sketches.kll: expected base64 text, found 7$"),
        (_set("columns.0.sketches.kll", None), "'x': sketches.kll: expected a sketch for a float"),
        (_set("columns.0.sketches.hll_sampled", None), "'x': sketches.hll_sampled: expected a "),
        (_set("columns.0.sketches.frequent", "AgEHDAMMAAg="), "'x': sketches.frequent: expected "),
        # DataSketches reads these unchecked: a crash on use, or merges that run for ages
        (
            _set("columns.0.sketches.kll", _kll_damaged(27, b"\xd6")),
            "level boundaries out of order",
        ),
        (_set("columns.0.sketches.kll", _kll_damaged(15, b"\x7f")), "item count does not match"),
        (_set("columns.0.sketches.hll_exact", _hll_damaged(100, b"\xff")), "without their exc"),
        (_set("columns.0.sketches.hll_exact", _hll_damaged(3, b"\xc3")), "lg_k 195 outside"),
        (_set("columns.1", {}), "^profile column: expected key 'name', not found$"),
        (_set("columns.1.name", "x"), "^profile: expected unique column names, found 'x' twice$"),
    ],
)
def test_from_dict_names_the_malformed_field(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = profile_frame(pd.DataFrame({"x": [1.0, 2.0, 3.0], "s": ["a", "b", "a"]})).to_dict()
    change(data)
    with pytest.raises(DataError, match=message) as caught:
        Profile.from_dict(data)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("data", [[1], None, "profile"])
def test_from_dict_rejects_what_is_not_an_object(data: Any) -> None:
    with pytest.raises(DataError, match=r"^profile: expected an object, found "):
        Profile.from_dict(data)


def test_validate_against_a_damaged_profile_is_a_one_line_usage_error(tmp_path: Path) -> None:
    data = profile_frame(pd.DataFrame({"x": [1.0, 2.0, 3.0]})).to_dict()
    data["columns"][0]["sketches"]["kll"] = "AAAA"
    (tmp_path / "ref.json").write_text(json.dumps(data), encoding="utf-8")
    pd.DataFrame({"x": [1.0, 2.0]}).to_csv(tmp_path / "new.csv", index=False)
    result = CliRunner().invoke(
        app, ["validate", str(tmp_path / "new.csv"), "--against", str(tmp_path / "ref.json")]
    )
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "sketches.kll: expected a serialized kll sketch" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_exact_values_are_kept_in_memory_merged_and_never_serialized() -> None:
    x = np.array([3.0, np.nan, -1.0, np.inf, 2.0, -np.inf, 3.0])
    source = x.copy()
    prof = profile_frame(pd.DataFrame({"x": source, "s": list("abcdefg")}))
    col = prof.columns["x"]
    assert col.exact_values is not None and col.exact_values.tolist() == [3.0, -1.0, 2.0, 3.0]
    assert not col.exact_values.flags.writeable and prof.columns["s"].exact_values is None
    source[0] = 99.0  # a copy, not a view of the caller's data
    assert col.exact_values[0] == 3.0
    # not in the stored format, which reads as before: sketches only
    assert "exact_values" not in json.dumps(prof.to_dict())
    assert Profile.from_json(prof.to_json()).columns["x"].exact_values is None
    # merging keeps them while both sides have them, in order, up to the limit
    ints = profile_frame(pd.DataFrame({"x": [5, 6]}))
    assert _exact(prof.merge(ints)) == [3.0, -1.0, 2.0, 3.0, 5.0, 6.0]
    only_nan = profile_frame(pd.DataFrame({"x": [np.nan]}))
    assert _exact(only_nan.merge(prof)) == [3.0, -1.0, 2.0, 3.0]
    absent = profile_frame(pd.DataFrame({"y": [1.0]}))
    assert _exact(absent.merge(prof)) == [3.0, -1.0, 2.0, 3.0]
    assert _exact(prof.merge(Profile.from_json(prof.to_json()))) is None
    half = profile_frame(pd.DataFrame({"x": np.arange(EXACT_VALUES_LIMIT // 2, dtype=float)}))
    assert len(_exact(half.merge(half)) or []) == EXACT_VALUES_LIMIT
    assert _exact(half.merge(half).merge(ints)) is None


def _exact(prof: Profile) -> list[float] | None:
    """Column ``x``'s exact values as a list (``None`` when the profile has none)."""
    values = prof.columns["x"].exact_values
    return None if values is None else values.tolist()
