"""Tests for readyml.data.schema."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from readyml.data import (
    FeatureSchema,
    Schema,
    infer_schema,
    load_schema,
    mostly_numeric_text,
    profile_file,
    validate_frame,
    write_schema,
)
from readyml.errors import SchemaError


def test_infer_schema_types_ranges_categories_and_nullability(frame: pd.DataFrame) -> None:
    df = frame.assign(temp=frame["temp"].where(frame.index % 10 != 0))
    schema = infer_schema(df, label="rain")
    by_name = {f.name: f for f in schema.features}
    assert schema.label == "rain"
    assert by_name["temp"].type == "float" and by_name["temp"].nullable
    assert by_name["count"].type == "int" and not by_name["count"].nullable
    assert by_name["count"].min == df["count"].min() and by_name["count"].max == df["count"].max()
    assert by_name["city"].type == "category"
    assert by_name["city"].categories == sorted(df["city"].unique())
    assert by_name["rain"].type == "bool"
    assert by_name["day"].type == "datetime"
    assert by_name["note"].type == "string" and by_name["note"].categories is None


def test_a_profile_infers_the_schema_of_its_data(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    frame.to_parquet(path)
    assert infer_schema(profile_file(path), label="rain") == infer_schema(frame, label="rain")


def test_infer_schema_rejects_unknown_label() -> None:
    with pytest.raises(SchemaError, match="label column 'y'"):
        infer_schema(pd.DataFrame({"x": [1]}), label="y")


def test_yaml_round_trip_keeps_unicode_and_meta(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame)
    schema.features[0].description = "Temperatur in °C"
    schema.features[0].meta = {"owner": "weather-team"}
    assert Schema.from_yaml(schema.to_yaml()) == schema
    assert "°C" in schema.to_yaml()


def test_write_schema_keeps_hand_edits_unless_overwrite(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    path = tmp_path / "schema.yaml"
    write_schema(infer_schema(frame), path)
    text = path.read_text(encoding="utf-8")
    text = text.replace("description: ''", "description: hand written", 1)
    path.write_text(text, encoding="utf-8")
    edited = load_schema(path)
    temp = edited.feature("temp")
    city = edited.feature("city")
    assert temp is not None and city is not None
    temp.min, temp.max, city.categories, city.required = -10.0, 40.0, ["Oslo", "Rome"], False
    write_schema(edited, path, overwrite=True)

    merged = write_schema(infer_schema(frame.assign(extra=1.0)), path)
    assert merged.feature("temp") == FeatureSchema(
        name="temp",
        type="float",
        nullable=False,
        min=-10.0,
        max=40.0,
        description="hand written",
    )
    kept = merged.feature("city")
    assert kept is not None and kept.categories == ["Oslo", "Rome"] and not kept.required
    assert merged.names[-1] == "extra"
    assert load_schema(path) == merged

    fresh = write_schema(infer_schema(frame), path, overwrite=True)
    assert fresh.feature("extra") is None
    refreshed = fresh.feature("temp")
    assert refreshed is not None and refreshed.description == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("features: [", "expected YAML, found invalid text at line 1$"),
        ("a: [\n", "expected YAML, found invalid text at line 2$"),
        ("features:\n  - name: a\n   type: int\n", "expected YAML, found invalid text at line 3$"),
        ("description: 2026-13-01", r"expected YAML, found an invalid date \(month must be"),
        ("- 1", "expected a mapping"),
        ("features: 3", "features: expected a list"),
        ("features: [{type: float}]", r"features\[0\].name: required key"),
        ("features: [{name: a, type: flt}]", r"features\[0\].type: expected one of"),
        ("features: [{name: a, type: int, min: x}]", r"features\[0\].min: expected a number"),
        (
            "features: [{name: a, type: float, min: .nan}]",
            r"features\[0\].min: expected a number, found float nan",
        ),
        (
            "features: [{name: a, type: float, categories: [a, b]}]",
            r"features\[0\].categories: expected only on a category or string feature",
        ),
        (
            "features: [{name: a, type: int, min: 3, max: 1}]",
            r"features\[0\].min: expected at most",
        ),
        (
            "features: [{name: a, type: int, nullable: maybe}]",
            r"features\[0\].nullable: expected bool",
        ),
        ("features: [{name: a, type: int, colour: red}]", r"features\[0\].colour: unknown key"),
        ("features: [{name: a, type: int}, {name: a, type: int}]", "appears twice"),
        ("format_version: 2\nfeatures: []", "format_version"),
    ],
)
def test_load_schema_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SchemaError, match=message) as caught:
        load_schema(path)
    assert "\n" not in str(caught.value)


def test_load_schema_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="not found"):
        load_schema(tmp_path / "nope.yaml")


def test_mostly_numeric_text_names_text_columns_of_numbers_and_strays() -> None:
    frame = pd.DataFrame(
        {
            "price": ["1.5", "2", "3", "4", "5", "6", "7", "8", "9", "10", "n/a"],
            "city": ["Oslo", "Rome", "1", "Oslo", "Rome", "Oslo", "Rome", "Oslo", "Rome", "a", "b"],
            "code": [str(i) for i in range(11)],  # all numbers: a category on purpose
        }
    )
    schema = Schema(
        features=[
            FeatureSchema("price", "string"),
            FeatureSchema("city", "string"),
            FeatureSchema("code", "category"),
        ]
    )
    assert mostly_numeric_text(frame, schema) == [
        "column 'price' is typed string though 10 of 11 values are numbers (not numbers: 'n/a')"
    ]


def test_yaml_round_trip_keeps_unicode_line_breaks_in_names_and_categories() -> None:
    """YAML reads a bare NEL (U+0085) or U+2028 as a line break: such text is quoted."""
    schema = Schema([FeatureSchema("a\x85b", "category", categories=["\x85", "x\u2028y", "ø"])])
    assert Schema.from_yaml(schema.to_yaml()) == schema


@pytest.mark.parametrize(
    "values",
    [
        ["\x85"],
        [1, "\x85"],
        [b"x"],
        [b"x", b"y", None] * 100,  # over 256 rows: counted by pandas, not in Python
        [None, pd.Timestamp("2020-01-01", tz="UTC"), pd.Timestamp("2020-01-01", tz="Asia/Tokyo")],
    ],
)
def test_data_passes_the_schema_inferred_from_it_after_a_yaml_round_trip(
    values: list[object],
) -> None:
    frame = pd.DataFrame({"c": pd.Series(values, dtype=object)})
    for part in (frame, frame.iloc[:1], frame.iloc[-1:]):  # also one-row batches
        schema = Schema.from_yaml(infer_schema(part).to_yaml())
        report = validate_frame(part, schema=schema)
        assert report.ok, report.errors
