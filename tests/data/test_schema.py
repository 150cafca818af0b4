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
    refresh_schema,
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


REVIEWED = """\
# Reviewed by the data team: ask before loosening a range.
format_version: 1
label: rain
features:
# the sensor's reading
- name: temp  # degrees Celsius
  type: float
  nullable: false
  min: -10.0
  max: 40.0   # tightened by hand
  required: true
  description: Temperature
  meta:
    owner: weather-team  # ask Ana
- name: count
  type: int
  nullable: false
  min: 0
  max: 999
  required: true
  description: ''
- name: city
  type: category
  nullable: false
  categories: [Oslo, Rome]  # the cities we serve
  required: false
  description: 'Where it was measured'
"""
COMMENTS = (
    "# Reviewed by the data team: ask before loosening a range.",
    "# the sensor's reading",
    "# degrees Celsius",
    "# tightened by hand",
    "# ask Ana",
    "# the cities we serve",
)


def test_write_schema_keeps_the_files_comments_and_layout(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(REVIEWED, encoding="utf-8")
    merged = write_schema(infer_schema(frame, label="rain"), path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith(REVIEWED)  # features already there: as written, byte for byte
    assert merged.names == ["temp", "count", "city", "rain", "day", "note"]
    assert load_schema(path) == merged
    temp = merged.feature("temp")
    assert temp is not None and (temp.min, temp.max, temp.meta) == (
        -10.0,
        40.0,
        {"owner": "weather-team"},
    )
    assert write_schema(infer_schema(frame, label="rain"), path) == merged
    assert path.read_text(encoding="utf-8") == text  # nothing new: the same file


def test_write_schema_keeps_a_files_own_indentation(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    indented = "format_version: 1\nlabel: null\nfeatures:\n  - name: a  # kept\n    type: int\n"
    path.write_text(indented, encoding="utf-8")
    write_schema(Schema([FeatureSchema(name="b", type="float", meta={"owner": "o"})]), path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith(indented) and "\n  - name: b\n" in text
    assert "\n    meta:\n      owner: o\n" in text


def test_write_schema_overwrite_edits_the_file_in_place(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(REVIEWED, encoding="utf-8")
    old = load_schema(path)
    temp, _count, city = old.features
    wanted = Schema(
        features=[
            FeatureSchema(name="extra", type="string"),
            city,
            FeatureSchema(**{**temp.to_dict(), "max": 45.5, "description": "Air temperature"}),
        ],  # count goes, extra comes first, city before temp
        label="rain",
    )
    assert write_schema(wanted, path, overwrite=True) == wanted
    text = path.read_text(encoding="utf-8")
    assert load_schema(path) == wanted
    assert all(comment in text for comment in COMMENTS)
    assert "name: count" not in text and "max: 45.5   # tightened by hand" in text
    assert text.index("name: extra") < text.index("name: city") < text.index("name: temp")


def test_refresh_schema_updates_statistics_and_keeps_what_people_wrote(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(REVIEWED, encoding="utf-8")
    data = frame.drop(columns=["count"]).assign(city=frame["city"].astype(str))
    fresh = refresh_schema(load_schema(path), infer_schema(data, label="rain"))
    written = write_schema(fresh, path, overwrite=True)
    assert written == fresh == load_schema(path)
    assert written.names == ["temp", "city", "rain", "day", "note"]  # count left the data
    temp, city = written.feature("temp"), written.feature("city")
    assert temp is not None and city is not None
    assert (temp.min, temp.max) == (frame["temp"].min(), frame["temp"].max())
    assert (temp.description, temp.meta) == ("Temperature", {"owner": "weather-team"})
    assert city.categories == sorted(frame["city"].unique()) and not city.required
    assert city.description == "Where it was measured"
    text = path.read_text(encoding="utf-8")
    assert all(comment in text for comment in COMMENTS)


@pytest.mark.parametrize(
    "value",
    ["yes", "y", "on", "No", "01", "0o17", "0x1F", "12:30", "1e3", "1_000", "null", "~", "",
     " x", "a: b", "#c", "- x", "'q'", '"d"', "é 東京", "a\x85b", "x\u2028y", "two\nlines",
     "2026-01-01", "1.0", ".inf", "<<", "="],
)  # fmt: skip
def test_values_added_to_an_edited_file_read_back_as_given(tmp_path: Path, value: str) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(REVIEWED, encoding="utf-8")
    added = Schema(
        features=[
            FeatureSchema(name=value or "blank", type="category", categories=[value, "b"]),
            FeatureSchema(name="tiny", type="float", min=1e-05, max=1e20, description=value),
        ],
        label=None,
    )
    merged = write_schema(added, path)
    assert load_schema(path) == merged and merged.features[-2:] == added.features
    assert path.read_text(encoding="utf-8").startswith(REVIEWED)


def test_write_schema_refuses_to_edit_a_file_it_cannot_keep_and_overwrite_replaces_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(REVIEWED.replace("label: rain\n", "label: rain\nlabel: snow\n"))
    schema = Schema(features=[FeatureSchema(name="x", type="int")])
    with pytest.raises(SchemaError, match=r"cannot edit it in place .*duplicate key"):
        write_schema(schema, path)
    assert write_schema(schema, path, overwrite=True) == schema == load_schema(path)


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


def test_write_schema_keeps_a_long_line_and_a_flow_list_as_written(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    long = "Air temperature at two metres, in degrees Celsius, as the station reports it hourly"
    written = (
        "format_version: 1\nlabel: null\nfeatures:\n"
        f"- name: temp\n  type: float\n  description: {long}\n  max: 40.0\n"
    )
    path.write_text(written, encoding="utf-8")
    (temp,) = load_schema(path).features
    write_schema(Schema([FeatureSchema(**{**temp.to_dict(), "max": 45.0})]), path, overwrite=True)
    assert path.read_text(encoding="utf-8") == written.replace("max: 40.0", "max: 45.0")
