"""The data commands: profile, validate, schema infer (typer's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from readyml.cli.data import app
from readyml.data import Profile, load_schema

runner = CliRunner(env={"COLUMNS": "250"})


@pytest.fixture
def train_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame(
        {
            "x": rng.normal(0, 1, n),
            "age": rng.integers(18, 90, n),
            "city": rng.choice(["Oslo", "Rome"], n),
            "y": rng.integers(0, 2, n),
        }
    )
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def schema_file(tmp_path: Path, train_csv: Path) -> Path:
    path = tmp_path / "schema.yaml"
    result = runner.invoke(app, ["schema", "infer", str(train_csv), "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def corrupted(tmp_path: Path, train_csv: Path) -> Path:
    frame = pd.read_csv(train_csv)
    frame.loc[3, "age"] = 500
    frame.loc[4, "city"] = "Paris"
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path)
    return path


def test_profile_prints_a_table_and_writes_json(tmp_path: Path, train_csv: Path) -> None:
    out = tmp_path / "out" / "profile.json"
    result = runner.invoke(app, ["profile", str(train_csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "city" in result.output and "2000 rows" in result.output
    assert Profile.from_json(out.read_text()).columns["age"].max == 89


def test_profile_json_output_is_a_profile(train_csv: Path) -> None:
    result = runner.invoke(app, ["profile", str(train_csv), "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["format_version"] == 1 and data["n_rows"] == 2000


def test_validate_clean_data_exits_0(train_csv: Path, schema_file: Path) -> None:
    result = runner.invoke(
        app, ["validate", str(train_csv), "--schema", str(schema_file), "--against", str(train_csv)]
    )
    assert result.exit_code == 0, result.output
    assert "no anomalies" in result.output


def test_validate_json_names_each_anomaly_and_exits_1(
    tmp_path: Path, train_csv: Path, schema_file: Path
) -> None:
    bad = corrupted(tmp_path, train_csv)
    result = runner.invoke(
        app, ["validate", str(bad), "--schema", str(schema_file), "--format", "json"]
    )
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    found = {(a["kind"], a["column"]): a for a in data["anomalies"]}
    assert set(found) == {("out_of_range", "age"), ("unseen_categories", "city")}
    for anomaly in data["anomalies"]:
        assert set(anomaly) == {"kind", "column", "severity", "expected", "found", "examples"}
    assert found[("out_of_range", "age")]["examples"] == [3]
    assert found[("unseen_categories", "city")]["severity"] == "error"


def test_validate_a_glob_of_parquet_files_counts_rows_across_them(
    tmp_path: Path, train_csv: Path, schema_file: Path
) -> None:
    frame = pd.read_csv(train_csv)
    frame.loc[1500, "age"] = 500
    parts = tmp_path / "parts"
    parts.mkdir()
    frame.iloc[:1000].to_parquet(parts / "0.parquet", index=False)
    frame.iloc[1000:].to_parquet(parts / "1.parquet", index=False)
    pattern = str(parts / "*.parquet")
    result = runner.invoke(
        app, ["validate", pattern, "--schema", str(schema_file), "--format", "json"]
    )
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["n_rows"] == 2000
    assert [(a["kind"], a["column"], a["examples"]) for a in data["anomalies"]] == [
        ("out_of_range", "age", [1500])
    ]
    profiled = runner.invoke(app, ["profile", pattern, "--format", "json"])
    assert profiled.exit_code == 0, profiled.output
    assert Profile.from_dict(json.loads(profiled.stdout)).columns["age"].max == 500


def test_validate_text_output_shows_the_table(
    tmp_path: Path, train_csv: Path, schema_file: Path
) -> None:
    result = runner.invoke(
        app, ["validate", str(corrupted(tmp_path, train_csv)), "--schema", str(schema_file)]
    )
    assert result.exit_code == 1
    assert "out_of_range" in result.output and "unseen_categories" in result.output


def test_validate_against_a_saved_profile_reports_drift(tmp_path: Path, train_csv: Path) -> None:
    saved = tmp_path / "ref.json"
    assert runner.invoke(app, ["profile", str(train_csv), "--out", str(saved)]).exit_code == 0
    shifted = pd.read_csv(train_csv).assign(x=lambda f: f["x"] + 3)
    path = tmp_path / "shifted.csv"
    shifted.to_csv(path, index=False)
    result = runner.invoke(
        app, ["validate", str(path), "--against", str(saved), "--format", "json"]
    )
    assert result.exit_code == 0  # drift is a warning
    kinds = {
        (a["kind"], a["column"], a["severity"]) for a in json.loads(result.stdout)["anomalies"]
    }
    assert ("distribution_change", "x", "warning") in kinds


def test_validate_against_a_reference_alone_checks_the_schema_inferred_from_it(
    tmp_path: Path, train_csv: Path
) -> None:
    frame = pd.read_csv(train_csv)
    frame["age"] = frame["age"].astype(object)
    frame.loc[0, "age"] = "old"
    frame.loc[1, "x"] = None
    frame.loc[2, "city"] = "Paris"
    frame.loc[3, "x"] = 1e6  # past the reference's range: not an anomaly without a schema
    path = tmp_path / "broken.csv"
    frame.drop(columns=["y"]).to_csv(path, index=False)
    result = runner.invoke(
        app, ["validate", str(path), "--against", str(train_csv), "--format", "json"]
    )
    assert result.exit_code == 1, result.output
    kinds = {(a["kind"], a["column"]) for a in json.loads(result.stdout)["anomalies"]}
    assert {
        ("missing_column", "y"),
        ("type_mismatch", "age"),
        ("nan_or_inf", "x"),
        ("unseen_categories", "city"),
    } <= kinds
    assert not any(kind == "out_of_range" for kind, _ in kinds)


def test_profile_out_to_a_folder_is_one_line_and_leaves_nothing(
    tmp_path: Path, train_csv: Path
) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    result = runner.invoke(app, ["profile", str(train_csv), "--out", str(folder)])
    assert result.exit_code == 2
    assert "expected a file name, found a folder" in result.stderr
    assert list(folder.iterdir()) == [] and not list(tmp_path.glob(".*.tmp"))


def test_validate_finds_duplicates_only_when_asked(tmp_path: Path, train_csv: Path) -> None:
    frame = pd.read_csv(train_csv)
    path = tmp_path / "dup.csv"
    pd.concat([frame, frame.iloc[:2]]).to_csv(path, index=False)
    plain = json.loads(runner.invoke(app, ["validate", str(path), "--format", "json"]).stdout)
    assert plain["anomalies"] == []
    result = runner.invoke(app, ["validate", str(path), "--duplicates", "--format", "json"])
    kinds = [a["kind"] for a in json.loads(result.stdout)["anomalies"]]
    assert kinds == ["duplicate_rows"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "missing.csv"], "not found"),
        (["validate", "{data}", "--schema", "missing.yaml"], "not found"),
        (["validate", "{data}", "--against", "missing.json"], "not found"),
        (["validate", "{data}", "--format", "xml"], "--format"),
        (["profile", "data.txt"], "not found"),
    ],
)
def test_usage_and_file_errors_exit_2_with_one_line(
    train_csv: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(app, [a.replace("{data}", str(train_csv)) for a in args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_profile_json_exits_2(tmp_path: Path, train_csv: Path) -> None:
    bad = tmp_path / "ref.json"
    bad.write_text("{}")
    result = runner.invoke(app, ["validate", str(train_csv), "--against", str(bad)])
    assert result.exit_code == 2 and "format_version" in result.output


def test_schema_infer_keeps_hand_edits_unless_overwrite(tmp_path: Path, train_csv: Path) -> None:
    path = tmp_path / "schema.yaml"
    assert (
        runner.invoke(app, ["schema", "infer", str(train_csv), "--out", str(path)]).exit_code == 0
    )
    data = yaml.safe_load(path.read_text())
    data["features"][1]["max"] = 120
    data["features"][1]["description"] = "age in years"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = runner.invoke(app, ["schema", "infer", str(train_csv), "--out", str(path)])
    assert result.exit_code == 0 and "0 new, 4 kept" in result.output
    assert load_schema(path).feature("age").max == 120  # type: ignore[union-attr]
    again = runner.invoke(
        app, ["schema", "infer", str(train_csv), "--out", str(path), "--overwrite"]
    )
    assert again.exit_code == 0 and "0 new, 4 re-inferred" in again.output
    age = load_schema(path).feature("age")
    assert age is not None and age.max == 89 and age.description == "age in years"


def test_schema_infer_keeps_the_comments_and_annotations_of_a_reviewed_schema(
    tmp_path: Path, train_csv: Path
) -> None:
    path = tmp_path / "schema.yaml"
    infer = ["schema", "infer", str(train_csv), "--out", str(path), "--label", "y"]
    assert runner.invoke(app, infer).exit_code == 0
    text = path.read_text().replace("- name: age\n", "# from the CRM\n- name: age  # years\n")
    text = text.replace("max: 89", "max: 120  # people live long", 1)
    text = text.replace("description: ''", "description: Age\n  meta:\n    owner: crm  # Ana", 2)
    reviewed = "# Reviewed: ask the data team before loosening a range.\n" + text
    path.write_text(reviewed)
    comments = ["# Reviewed:", "# from the CRM", "# years", "# people live long", "# Ana"]

    frame = pd.read_csv(train_csv).assign(extra=1.5)
    frame.loc[0, "age"] = 99
    wider = tmp_path / "wider.csv"
    frame.to_csv(wider, index=False)
    kept = runner.invoke(app, ["schema", "infer", str(wider), "--out", str(path)])
    assert kept.exit_code == 0 and "1 new, 4 kept as written" in kept.output, kept.output
    assert path.read_text().startswith(reviewed)  # what was there stays, byte for byte
    assert load_schema(path).names[-1] == "extra"

    refreshed = runner.invoke(
        app, ["schema", "infer", str(train_csv), "--out", str(path), "--overwrite"]
    )
    assert refreshed.exit_code == 0, refreshed.output
    assert "0 new, 4 re-inferred keeping what was written about them, 1 dropped" in (
        " ".join(refreshed.output.split())
    )
    text = path.read_text()
    assert all(comment in text for comment in comments), text
    schema = load_schema(path)
    age = schema.feature("age")
    assert age is not None and age.max == 89  # re-inferred from the data
    assert (age.description, age.meta) == ("Age", {"owner": "crm"}) and schema.label == "y"
    assert schema.feature("extra") is None


def test_schema_infer_into_a_project_uses_its_label(tmp_path: Path, train_csv: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "readyml.yaml").write_text(
        "name: demo\nlabel: y\ndata:\n  source: data.csv\n"
        "model:\n  flavor: sklearn\n  estimator: sklearn.linear_model.LogisticRegression\n"
    )
    result = runner.invoke(app, ["schema", "infer", str(train_csv), "-p", str(project)])
    assert result.exit_code == 0, result.output
    assert load_schema(project / "schema.yaml").label == "y"


def test_schema_infer_without_a_project_exits_2(tmp_path: Path, train_csv: Path) -> None:
    result = runner.invoke(app, ["schema", "infer", str(train_csv), "-p", str(tmp_path / "none")])
    assert result.exit_code == 2
    bad_label = runner.invoke(
        app, ["schema", "infer", str(train_csv), "--out", str(tmp_path / "s.yaml"), "--label", "z"]
    )
    assert bad_label.exit_code == 2 and "'z'" in bad_label.output


def test_schema_infer_refuses_a_header_only_file_and_negative_categories(
    tmp_path: Path, train_csv: Path
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("x,age,city,y\n")
    out = tmp_path / "s.yaml"
    result = runner.invoke(app, ["schema", "infer", str(empty), "--out", str(out)])
    assert result.exit_code == 2
    assert "expected data rows to infer a schema from, found none" in result.output
    negative = runner.invoke(
        app, ["schema", "infer", str(train_csv), "--out", str(out), "--max-categories", "-3"]
    )
    assert negative.exit_code == 2 and "--max-categories" in negative.output
    assert not out.exists()


def test_profile_table_shows_datetimes_as_iso_and_their_std_as_a_duration(
    tmp_path: Path,
) -> None:
    stamps = pd.Series(pd.to_datetime(pd.Series(["2021-03-01 00:00", "2021-03-03 00:00", None])))
    zoned = pd.date_range("2021-03-01", periods=3, freq="D", tz="Europe/Oslo")
    path = tmp_path / "times.parquet"
    pd.DataFrame({"t": stamps, "z": zoned}).to_parquet(path)
    result = runner.invoke(app, ["profile", str(path)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("t "))
    assert "2021-03-01T00:00:00" in row and "2021-03-02T00:00:00" in row  # min and mean
    assert "1 days 09:56:28" in row  # std of two stamps two days apart: sqrt(2) days
    assert "e+18" not in result.output
    assert "2021-03-01T00:00:00+01:00" in result.output


def test_a_csv_with_repeated_column_names_exits_2_naming_the_column(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("a,b,a\n1,2,3\n")
    result = runner.invoke(app, ["profile", str(path)])
    assert result.exit_code == 2
    assert "expected unique column names, found 'a' repeated" in result.output
    assert "Traceback" not in result.output


def test_profile_shows_names_and_values_with_brackets_as_written(tmp_path: Path) -> None:
    # Rich reads "[/x]" as a closing tag: a column or value like it once crashed the table.
    data = tmp_path / "brackets.csv"
    data.write_text("price[usd],note\n1.5,[/x] odd\n2.5,[bold]b\n3.5,plain\n", encoding="utf-8")
    result = runner.invoke(app, ["profile", str(data)])
    assert result.exit_code == 0, result.output
    assert "price[usd]" in result.output
    assert "[/x] odd" in result.output
    assert "[bold]b" in result.output


def test_profile_marks_top_counts_past_the_sketch_as_least_counts(tmp_path: Path) -> None:
    values = [f"id{i}" for i in range(3000)] + ["a"] * 50 + ["b"] * 20
    path = tmp_path / "many.csv"
    pd.DataFrame({"s": values}).to_csv(path, index=False)
    result = runner.invoke(app, ["profile", str(path)])
    assert result.exit_code == 0, result.output
    assert "a (≥" in result.output and "id1 (" not in result.output


def test_validate_against_a_reference_without_rows_is_one_line(
    tmp_path: Path, train_csv: Path
) -> None:
    header = tmp_path / "header.csv"
    header.write_text(train_csv.read_text().splitlines()[0] + "\n")
    result = runner.invoke(app, ["validate", str(train_csv), "--against", str(header)])
    assert result.exit_code == 2, result.output
    assert "expected a reference with rows, found none" in result.output
