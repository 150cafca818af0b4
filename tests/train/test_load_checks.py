"""The load step checks the spec against the data before anything is trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from readyml.config import Project
from readyml.errors import ConfigError, DataError, ReadymlError
from readyml.registry import Registry
from readyml.train import RunResult, open_project_registry, run_project
from readyml.train.features import time_values
from support import IRIS_SPEC, iris_frame, write_project


def _run(root: Path) -> tuple[RunResult, Registry]:
    project = Project.load(root)
    registry = open_project_registry(project)
    return run_project(project, registry=registry), registry


def _load_fails(root: Path, kind: type[ReadymlError], message: str) -> None:
    """The run stops in the load step with ``kind`` and exactly ``message``; nothing is trained."""
    result, registry = _run(root)
    assert {s.name: s.status for s in result.steps} == {"load": "failed"}
    assert isinstance(result.error, kind), result.error
    assert str(result.error) == message
    assert registry.list_models() == []


def _day_frame(days: list[str] | None = None) -> pd.DataFrame:
    frame = iris_frame().sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame["day"] = days or [str(d.date()) for d in pd.date_range("2024-01-01", periods=150)]
    return frame


def test_one_class_label_fails_at_load(tmp_path: Path) -> None:
    write_project(tmp_path, frame=iris_frame().assign(species="a"))
    _load_fails(
        tmp_path,
        DataError,
        "label 'species': classification needs at least 2 classes, found 1 ('a')",
    )


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"metrics": {"primary": "accuracy"}}, "metrics.primary"),
        ({}, "gates.rules[0].metric"),  # IRIS_SPEC's rule is on accuracy
    ],
)
def test_metric_of_the_other_task_fails_at_load(
    tmp_path: Path, change: dict[str, Any], key: str
) -> None:
    # petal_width is a float: the task is inferred as regression.
    write_project(tmp_path, {**IRIS_SPEC, "label": "petal_width", **change})
    _load_fails(
        tmp_path,
        ConfigError,
        f"{key}: expected a regression metric among ['mae', 'rmse', 'r2', 'mape'], "
        "found 'accuracy' (task inferred from label 'petal_width'; set task to override)",
    )


def test_time_column_without_dates_fails_at_load(tmp_path: Path) -> None:
    split = {"method": "time", "time_column": "sepal_length", "cutoff": "2024-04-15"}
    write_project(tmp_path, {**IRIS_SPEC, "split": split})
    _load_fails(
        tmp_path,
        DataError,
        "split.time_column 'sepal_length': expected a date/datetime column, found float64",
    )
    days = ["2024-01-01"] * 149 + ["soon"]
    split = {**split, "time_column": "day"}
    write_project(tmp_path, {**IRIS_SPEC, "split": split}, frame=_day_frame(days))
    _load_fails(
        tmp_path,
        DataError,
        "split.time_column 'day': expected a date/datetime column, found values such as 'soon'",
    )
    # No date format to infer from the first value: pandas warns, readyml says it in one line.
    words = ["north", "south", "east"] * 50
    write_project(tmp_path, {**IRIS_SPEC, "split": split}, frame=_day_frame(words))
    _load_fails(
        tmp_path,
        DataError,
        "split.time_column 'day': expected a date/datetime column, found values such as 'north'",
    )


def test_time_split_on_dates_read_from_a_csv(tmp_path: Path) -> None:
    split = {"method": "time", "time_column": "day", "cutoff": "2024-04-15"}
    spec = {**IRIS_SPEC, "split": split, "gates": {"rules": []}}
    write_project(tmp_path, spec, frame=_day_frame())
    result, _ = _run(tmp_path)
    assert result.status == "succeeded", result.error
    cutoff = pd.Timestamp("2024-04-15")
    assert result.value("train")["day"].max() < cutoff <= result.value("valid")["day"].min()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": ["sepal_length", "petal_lenght"]}, "features: column 'petal_lenght'"),
        ({"exclude": ["nothere"]}, "exclude: column 'nothere'"),
        (
            {"split": {"method": "time", "time_column": "datum", "cutoff": "2024-01-01"}},
            "split.time_column: column 'datum'",
        ),
    ],
)
def test_a_spec_edit_after_a_good_run_is_checked_again(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    write_project(tmp_path)
    assert _run(tmp_path)[0].status == "succeeded"
    spec = {**IRIS_SPEC, **change}
    (tmp_path / "readyml.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    result, _ = _run(tmp_path)
    assert {s.name: s.status for s in result.steps} == {"load": "failed"}
    assert isinstance(result.error, DataError)
    assert str(result.error).startswith(f"{message} not in the data (columns: sepal_length, ")


def test_time_values_parse_date_strings() -> None:
    frame = pd.DataFrame({"day": ["2024-01-02", "2024-01-01", None]}, dtype=object)
    times = time_values(frame, "day")
    assert times.tolist()[:2] == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-01")]
    assert times.isna().tolist() == [False, False, True]


def test_a_numeric_column_made_text_by_stray_strings_is_named_when_the_schema_is_written(
    tmp_path: Path,
) -> None:
    frame = iris_frame()
    lengths = frame["sepal_length"].astype(object)
    lengths[[3, 7]] = ["?", "unknown"]
    write_project(tmp_path, frame=frame.assign(sepal_length=lengths))
    result, _ = _run(tmp_path)
    (validate,) = [s for s in result.steps if s.name == "validate"]
    assert validate.message.endswith(
        "wrote schema.yaml (review and check it in); column 'sepal_length' is typed category "
        "though 148 of 150 values are numbers (not numbers: '?', 'unknown')"
    )


def test_declared_format_reads_a_file_whatever_its_extension(tmp_path: Path) -> None:
    write_project(tmp_path, {**IRIS_SPEC, "data": {"source": "data/iris.txt", "format": "csv"}})
    (tmp_path / "data" / "iris.csv").rename(tmp_path / "data" / "iris.txt")
    result, _ = _run(tmp_path)
    assert result.status == "succeeded", result.error
    assert len(result.value("data")) == 150


def test_declared_format_the_content_contradicts_fails_at_load(tmp_path: Path) -> None:
    write_project(tmp_path, {**IRIS_SPEC, "data": {"source": "data/iris.csv", "format": "parquet"}})
    result, _ = _run(tmp_path)
    assert {s.name: s.status for s in result.steps} == {"load": "failed"}
    assert isinstance(result.error, DataError)
    assert str(result.error).endswith(
        "iris.csv': cannot read it as parquet (data.format: parquet): found no Parquet header "
        "(a CSV file? declare data.format: csv)"
    )


def test_a_declared_feature_type_the_column_contradicts_fails_at_load(tmp_path: Path) -> None:
    features: list[Any] = [{"name": "sepal_length", "type": "float"}, "petal_length"]
    write_project(tmp_path, {**IRIS_SPEC, "features": features})
    assert _run(tmp_path)[0].status == "succeeded"
    features[0] = {"name": "sepal_length", "type": "int"}  # an edit the load step sees again
    spec = {**IRIS_SPEC, "features": features}
    (tmp_path / "readyml.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    result, _ = _run(tmp_path)
    assert {s.name: s.status for s in result.steps} == {"load": "failed"}
    assert isinstance(result.error, DataError)
    assert str(result.error) == (
        "features[sepal_length].type: expected int, found float64 values such as 5.1 (fix the "
        "type, or leave it out to infer it from the data)"
    )
