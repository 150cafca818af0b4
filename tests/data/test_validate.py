"""Tests for readyml.data.validate: every anomaly kind, report formats, severities."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from rich.table import Table

from readyml.data import (
    ValidationOptions,
    infer_schema,
    profile_frame,
    raise_for_errors,
    validate_frame,
)
from readyml.data.validate import KINDS
from readyml.errors import AnomalyError, ConfigError


def kinds(report: object) -> dict[tuple[str, str | None], object]:
    return {(a.kind, a.column): a for a in report.anomalies}  # type: ignore[attr-defined]


def test_clean_data_has_no_anomalies(train: pd.DataFrame) -> None:
    report = validate_frame(train, schema=infer_schema(train), reference=profile_frame(train))
    assert report.anomalies == [] and report.ok
    raise_for_errors(report)


def test_every_anomaly_kind_is_found(train: pd.DataFrame) -> None:
    schema = infer_schema(train)
    bad = train.copy()
    bad["x"] = bad["x"] + 5.0
    bad.loc[3, "x"] = np.inf
    bad.loc[4, "x"] = np.nan
    bad["city"] = bad["city"].where(bad.index % 7 != 0, "Paris")
    bad["age"] = bad["age"].astype(object)
    bad.loc[9, "age"] = "old"
    bad["flat"] = 1
    bad["blank"] = None
    bad = pd.concat([bad, bad.iloc[[0]]], ignore_index=True)
    extra = schema.features[0].__class__(name="z", type="float")
    schema.features.append(extra)
    schema.feature("age").max = 80  # type: ignore[union-attr]
    opts = ValidationOptions(min_rows=10_000, check_duplicates=True)
    report = validate_frame(bad, schema=schema, reference=profile_frame(train), options=opts)
    found = kinds(report)
    expected = {
        ("too_few_rows", None),
        ("missing_column", "z"),
        ("unexpected_column", "flat"),
        ("unexpected_column", "blank"),
        ("nan_or_inf", "x"),
        ("out_of_range", "x"),
        ("type_mismatch", "age"),
        ("unseen_categories", "city"),
        ("constant_column", "flat"),
        ("too_many_nulls", "blank"),
        ("duplicate_rows", None),
        ("distribution_change", "x"),
    }
    assert expected <= set(found)
    assert {k for k, _ in found} == set(KINDS)
    assert found[("type_mismatch", "age")].examples == [9]  # type: ignore[attr-defined]
    inf = [a for a in report.anomalies if a.kind == "nan_or_inf" and "inf" in a.found]
    assert inf[0].examples == [3]
    assert found[("duplicate_rows", None)].examples == [len(bad) - 1]  # type: ignore[attr-defined]
    assert found[("unseen_categories", "city")].examples == [0, 7, 14, 21, 28]  # type: ignore[attr-defined]
    assert not report.ok
    with pytest.raises(AnomalyError):
        raise_for_errors(report)


def test_problem_names_the_first_error_and_counts_the_others(train: pd.DataFrame) -> None:
    schema = infer_schema(train)
    assert validate_frame(train, schema=schema).problem == ""
    bad = train.assign(x=train["x"].where(train.index != 0, np.inf))
    bad.loc[[5, 8], "age"] = [200, 1]
    report = validate_frame(bad, schema=schema)
    expected = "column 'x': nan_or_inf: expected finite values, found 1 +inf, 0 -inf"
    assert report.problem == f"{expected} (and 1 more error)"
    with pytest.raises(AnomalyError) as raised:
        raise_for_errors(report)
    assert str(raised.value) == report.problem


def test_out_of_range_int_examples(train: pd.DataFrame) -> None:
    schema = infer_schema(train)
    bad = train.copy()
    bad.loc[[5, 8], "age"] = [200, 1]
    report = validate_frame(bad, schema=schema)
    anomaly = kinds(report)[("out_of_range", "age")]
    assert anomaly.severity == "error" and anomaly.examples == [5, 8]  # type: ignore[attr-defined]
    assert "[18, 89]" in anomaly.expected  # type: ignore[attr-defined]


def test_out_of_range_shows_the_digits_that_tell_a_value_from_its_bound() -> None:
    schema = infer_schema(pd.DataFrame({"x": [0.6, 1.0]}))
    feature = schema.feature("x")
    assert feature is not None
    feature.max = None  # bounded below only
    report = validate_frame(pd.DataFrame({"x": [0.5999999999999996, 3.0]}), schema=schema)
    anomaly = kinds(report)[("out_of_range", "x")]
    assert anomaly.expected == "values in [0.6, inf]"  # type: ignore[attr-defined]
    assert anomaly.found == "1 of 2 rows outside (min 0.5999999999999996, max 3)"  # type: ignore[attr-defined]
    # Only the bound that is passed gets the extra digits.
    schema = infer_schema(pd.DataFrame({"x": [0.6, 18.900000000000002]}))
    report = validate_frame(pd.DataFrame({"x": [0.5999999999999996, 18.9]}), schema=schema)
    anomaly = kinds(report)[("out_of_range", "x")]
    assert anomaly.expected == "values in [0.6, 18.9]"  # type: ignore[attr-defined]
    assert anomaly.found == "1 of 2 rows outside (min 0.5999999999999996, max 18.9)"  # type: ignore[attr-defined]


def test_int_column_with_nulls_is_not_a_type_mismatch(train: pd.DataFrame) -> None:
    schema = infer_schema(train)
    schema.feature("age").nullable = True  # type: ignore[union-attr]
    bad = train.assign(age=train["age"].astype(float).where(train.index != 2))
    assert ("type_mismatch", "age") not in kinds(validate_frame(bad, schema=schema))


def test_non_nullable_nulls_are_errors_and_null_share_is_a_warning(train: pd.DataFrame) -> None:
    schema = infer_schema(train)
    bad = train.assign(city=train["city"].where(train.index != 1))
    anomaly = kinds(validate_frame(bad, schema=schema))[("too_many_nulls", "city")]
    assert anomaly.severity == "error" and anomaly.examples == [1]  # type: ignore[attr-defined]
    half = train.assign(x=train["x"].where(train.index % 4 == 0))
    warning = kinds(validate_frame(half))[("too_many_nulls", "x")]
    assert warning.severity == "warning"  # type: ignore[attr-defined]


def test_severities_can_be_overridden(train: pd.DataFrame) -> None:
    opts = ValidationOptions(check_duplicates=True, severities={"duplicate_rows": "error"})
    report = validate_frame(pd.concat([train, train.iloc[:1]]), options=opts)
    assert kinds(report)[("duplicate_rows", None)].severity == "error"  # type: ignore[attr-defined]
    assert not report.ok


def test_optional_missing_column_is_a_warning(train: pd.DataFrame) -> None:
    schema = infer_schema(train)
    schema.feature("city").required = False  # type: ignore[union-attr]
    report = validate_frame(train.drop(columns="city"), schema=schema)
    assert kinds(report)[("missing_column", "city")].severity == "warning"  # type: ignore[attr-defined]
    assert report.ok


def test_report_json_and_table(train: pd.DataFrame) -> None:
    bad = train.assign(x=train["x"].where(train.index != 0, np.inf))
    report = validate_frame(bad)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["n_rows"] == len(train)
    assert data["anomalies"][0] == {
        "kind": "nan_or_inf",
        "column": "x",
        "severity": "error",
        "expected": "finite values",
        "found": "1 +inf, 0 -inf",
        "examples": [0],
    }
    table = report.to_table()
    assert isinstance(table, Table) and table.row_count == 1
    console = Console(record=True, width=160)
    console.print(table)
    assert "nan_or_inf" in console.export_text()


def test_a_schema_inferred_from_mixed_values_accepts_them() -> None:
    df = pd.DataFrame({"code": [1, "a", 2, "b"] * 5})  # an object column of ints and text
    schema = infer_schema(df)
    assert schema.features[0].type == "category"
    assert validate_frame(df, schema=schema).anomalies == []


@pytest.mark.parametrize(
    ("severities", "message"),
    [({"out_of_rang": "error"}, "'out_of_rang'"), ({"out_of_range": "fatal"}, "'fatal'")],
)
def test_severities_must_name_a_kind_and_a_level(severities: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ValidationOptions(severities=severities)  # type: ignore[arg-type]
