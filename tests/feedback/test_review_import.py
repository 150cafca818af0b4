"""``readyml review import``: bad rows reported one by one, good rows kept as a dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from readyml.cli import app
from readyml.config import Project
from readyml.errors import DataError
from readyml.feedback.production import list_datasets, load_production, read_dataset
from readyml.feedback.review_import import import_review
from readyml.feedback.review_sets import captured_ids, review_root
from support import write_project

from .helpers import FEATURES, write_iris_set, write_set

BINARY: dict[str, Any] = {"label": "target", "classes": ["0.0", "1.0"]}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project.load(write_project(tmp_path))


def filled(project: Project, set_id: str, labels: list[object]) -> pd.DataFrame:
    frame = pd.read_csv(review_root(project.workspace) / set_id / "examples.csv")
    frame["label"] = pd.Series(labels, dtype=object)
    return frame


def test_good_rows_are_kept_and_each_bad_row_is_reported(project: Project, tmp_path: Path) -> None:
    manifest, truth = write_iris_set(project.workspace, [0, 1, 2, 50, 51, 100])
    frame = filled(project, manifest.id, ["setosa", None, "rose", "versicolor", "x", "y"])
    ids = frame["example_id"].tolist()
    ids[4] = "req-999:0"  # an id no review set holds
    ids[5] = ids[3]  # a duplicate of row 4
    frame["example_id"] = ids
    lengths = frame["sepal_length"].tolist()
    lengths[0] = 99.0  # an edited feature: the captured value is stored
    frame["sepal_length"] = lengths
    path = tmp_path / "filled.csv"
    frame.to_csv(path, index=False)

    result = import_review(project.workspace, path, label="species")

    assert (result.rows, result.kept, result.blank, result.rejected) == (6, 2, 1, 3)
    assert result.problems[0].startswith("row 3: label: expected one of setosa, versicolor")
    assert (
        result.problems[1]
        == "row 5: example_id: expected an id from a review set, found 'req-999:0'"
    )
    assert result.problems[2] == "row 6: example_id 'req-50:0': duplicate of row 4"
    dataset = result.dataset
    assert dataset is not None and dataset.version == 1 and dataset.review_sets == [manifest.id]
    stored = read_dataset(project.workspace, dataset).set_index("example_id")
    assert stored.loc["req-0:0", "species"] == "setosa"
    assert stored.loc["req-50:0", "species"] == "versicolor"
    assert stored["sepal_length"]["req-0:0"] == truth["sepal_length"].iloc[0]
    assert {"request_id", "model", "version", "ts", "reason", "review_set"} <= set(stored.columns)
    assert set(FEATURES) <= set(stored.columns) and "prediction" not in stored.columns


def test_jsonl_import_and_relabelling_make_a_new_version(project: Project, tmp_path: Path) -> None:
    manifest, _ = write_iris_set(project.workspace, [0, 50])
    first = filled(project, manifest.id, ["setosa", "virginica"])
    path = tmp_path / "first.jsonl"
    first.to_json(path, orient="records", lines=True)
    assert import_review(project.workspace, path, label="species").kept == 2
    second = filled(project, manifest.id, [None, "versicolor"])
    second.to_csv(tmp_path / "second.csv", index=False)
    assert import_review(project.workspace, tmp_path / "second.csv", label="species").kept == 1

    datasets = list_datasets(project.workspace)
    assert [d.version for d in datasets] == [1, 2]
    assert datasets[0].fingerprint != datasets[1].fingerprint
    latest = load_production(project.workspace, datasets).set_index("example_id")
    assert latest.loc["req-50:0", "species"] == "versicolor"  # the newest label wins
    assert len(latest) == 2


def test_a_json_array_is_read_and_a_line_that_is_not_an_object_is_named(
    project: Project, tmp_path: Path
) -> None:
    manifest, _ = write_iris_set(project.workspace, [0, 50])
    path = tmp_path / "filled.json"
    filled(project, manifest.id, ["setosa", "versicolor"]).to_json(path, orient="records")
    assert import_review(project.workspace, path, label="species").kept == 2
    table = tmp_path / "filled.parquet"
    filled(project, manifest.id, ["setosa", "virginica"]).to_parquet(table)
    assert import_review(project.workspace, table, label="species").kept == 2
    (tmp_path / "filled.xlsx").write_bytes(b"PK")
    with pytest.raises(
        DataError, match=r"expected \.csv, \.jsonl, \.json or \.parquet, found \.xlsx"
    ):
        import_review(project.workspace, tmp_path / "filled.xlsx", label="species")
    lines = tmp_path / "bad.jsonl"
    lines.write_text('{"example_id": "req-0:0", "label": "setosa"}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"bad\.jsonl: line 2: expected a JSON object .*found list"):
        import_review(project.workspace, lines, label="species")


def test_regression_labels_must_be_finite_numbers(project: Project, tmp_path: Path) -> None:
    manifest, _ = write_iris_set(project.workspace, [0, 1, 2], task="regression")
    frame = filled(project, manifest.id, ["1.5", "abc", "inf"])
    frame.to_csv(tmp_path / "f.csv", index=False)
    result = import_review(project.workspace, tmp_path / "f.csv", label="species")
    assert (result.kept, result.rejected) == (1, 2)
    assert "expected a number, found 'abc'" in result.problems[0]
    assert "expected a finite number" in result.problems[1]


def test_a_changed_dataset_file_is_refused(project: Project, tmp_path: Path) -> None:
    manifest, _ = write_iris_set(project.workspace, [0])
    filled(project, manifest.id, ["setosa"]).to_csv(tmp_path / "f.csv", index=False)
    dataset = import_review(project.workspace, tmp_path / "f.csv", label="species").dataset
    assert dataset is not None
    path = project.workspace / "production" / "v0001" / "examples.parquet"
    pd.DataFrame({"example_id": ["x"]}).to_parquet(path)
    with pytest.raises(DataError, match="the file changed after it was stored"):
        read_dataset(project.workspace, dataset)


def test_cli_exit_codes(project: Project, tmp_path: Path) -> None:
    manifest, _ = write_iris_set(project.workspace, [0, 1])
    filled(project, manifest.id, ["setosa", "rose"]).to_csv(tmp_path / "f.csv", index=False)
    runner = CliRunner()
    base = ["review", "import", "-p", str(project.root)]
    partly = runner.invoke(app, [*base, str(tmp_path / "f.csv"), "--format", "json"])
    assert partly.exit_code == 1, partly.output
    assert json.loads(partly.stdout)["kept"] == 1
    missing = runner.invoke(app, [*base, str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2
    assert "review file: expected a file" in missing.output
    listed = runner.invoke(app, ["review", "list", "-p", str(project.root), "--format", "json"])
    assert listed.exit_code == 0
    document = json.loads(listed.stdout)
    assert [d["version"] for d in document["datasets"]] == [1]
    assert document["review_sets"][0]["id"] == manifest.id


@pytest.mark.parametrize("text", ["{", "[]", '{"id": "x"}'])
def test_a_damaged_manifest_is_one_line_naming_the_set_or_dataset(
    project: Project, tmp_path: Path, text: str
) -> None:
    manifest, _ = write_iris_set(project.workspace, [0])
    filled(project, manifest.id, ["setosa"]).to_csv(tmp_path / "f.csv", index=False)
    assert import_review(project.workspace, tmp_path / "f.csv", label="species").kept == 1
    runner = CliRunner()
    listing = ["review", "list", "-p", str(project.root)]
    dataset = project.workspace / "production" / "v0001" / "manifest.json"
    good = dataset.read_text()
    dataset.write_text(text)
    damaged = runner.invoke(app, listing)
    assert damaged.exit_code == 2, damaged.output
    assert "production dataset v0001: expected a manifest.json" in damaged.output
    dataset.write_text(good)
    (review_root(project.workspace) / manifest.id / "manifest.json").write_text(text)
    damaged = runner.invoke(app, listing)
    assert damaged.exit_code == 2, damaged.output
    assert f"review set {manifest.id}: expected a manifest.json" in damaged.output


def test_numeric_classes_compare_as_numbers_and_store_the_class(
    project: Project, tmp_path: Path
) -> None:
    manifest = write_set(project.workspace, pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}), **BINARY)
    path = tmp_path / "filled.jsonl"
    labels: list[object] = [1, 1.0, "1", " 0.0 "]
    path.write_text(
        "".join(
            json.dumps({"example_id": f"req-{i}:0", "label": label}) + "\n"
            for i, label in enumerate(labels)
        )
    )
    result = import_review(project.workspace, path, label="target")
    assert (result.kept, result.rejected) == (4, 0), result.problems
    assert result.dataset is not None and manifest.classes == ["0.0", "1.0"]
    stored = read_dataset(project.workspace, result.dataset)
    assert stored["target"].tolist() == ["1.0", "1.0", "1.0", "0.0"]
    path.write_text(json.dumps({"example_id": "req-0:0", "label": 2}) + "\n")
    refused = import_review(project.workspace, path, label="target")
    assert refused.problems == ["row 1: label: expected one of 0.0, 1.0, found 2"]


def test_importing_the_same_labels_again_writes_no_version(
    project: Project, tmp_path: Path
) -> None:
    manifest, _ = write_iris_set(project.workspace, [0, 50])
    path = tmp_path / "filled.csv"
    filled(project, manifest.id, ["setosa", "versicolor"]).to_csv(path, index=False)
    assert import_review(project.workspace, path, label="species").dataset is not None
    again = import_review(project.workspace, path, label="species")
    assert [d.version for d in list_datasets(project.workspace)] == [1]
    assert again.dataset is None and (again.kept, again.unchanged) == (2, 2)
    assert again.note.startswith("nothing new: every kept label is stored already")
    runner = CliRunner()
    cli = runner.invoke(
        app, ["review", "import", str(path), "-p", str(project.root), "--format", "json"]
    )
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["note"] == again.note
    filled(project, manifest.id, ["setosa", "virginica"]).to_csv(path, index=False)
    relabelled = import_review(project.workspace, path, label="species")
    assert relabelled.dataset is not None and relabelled.unchanged == 1
    assert [d.version for d in list_datasets(project.workspace)] == [1, 2]


def test_features_come_from_the_captured_copy_not_the_files_a_reviewer_edits(
    project: Project, tmp_path: Path
) -> None:
    manifest, truth = write_iris_set(project.workspace, [0, 50])
    folder = review_root(project.workspace) / manifest.id
    lines = (folder / "examples.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["sepal_length"], first["label"] = 99.0, "setosa"  # the README's file, edited
    lines[0] = json.dumps(first)
    (folder / "examples.jsonl").write_text("\n".join(lines) + "\n")
    result = import_review(project.workspace, folder / "examples.jsonl", label="species")
    assert result.dataset is not None and result.kept == 1
    stored = read_dataset(project.workspace, result.dataset).set_index("example_id")
    assert stored.loc["req-0:0", "sepal_length"] == truth["sepal_length"].iloc[0]
    assert "captured.parquet" in (folder / "README.md").read_text()


def test_a_changed_captured_copy_rejects_its_rows_only(project: Project, tmp_path: Path) -> None:
    changed, _ = write_iris_set(project.workspace, [0])
    intact, _ = write_iris_set(project.workspace, [50])
    copy = review_root(project.workspace) / changed.id / "captured.parquet"
    frame = pd.read_parquet(copy)
    frame["sepal_length"] = 99.0
    frame.to_parquet(copy)
    both = pd.concat([filled(project, changed.id, ["setosa"]), filled(project, intact.id, ["x"])])
    both["label"] = ["setosa", "versicolor"]
    both.to_csv(tmp_path / "both.csv", index=False)
    result = import_review(project.workspace, tmp_path / "both.csv", label="species")
    assert (result.kept, result.rejected) == (1, 1)
    assert result.problems[0].startswith(
        f"row 1: review set {changed.id}: expected captured.parquet with sha256 "
    )
    assert result.problems[0].endswith("(changed after capture)")
    assert result.dataset is not None and result.dataset.review_sets == [intact.id]


def test_a_malformed_line_is_one_line_naming_file_and_line_and_blocks_no_other_set(
    project: Project, tmp_path: Path
) -> None:
    broken, _ = write_iris_set(project.workspace, [0])
    other, _ = write_iris_set(project.workspace, [50])
    jsonl = review_root(project.workspace) / broken.id / "examples.jsonl"
    jsonl.write_text(jsonl.read_text() + '{"example_id": "req-0:0", "label": \n')
    runner = CliRunner()
    bad = runner.invoke(app, ["review", "import", str(jsonl), "-p", str(project.root)])
    assert bad.exit_code == 2, bad.output
    assert bad.stderr.strip().splitlines() == [
        "error: review file examples.jsonl: line 2: expected a JSON object with example_id "
        "and label, found invalid JSON (Expecting value)"
    ]
    filled(project, other.id, ["versicolor"]).to_csv(tmp_path / "other.csv", index=False)
    good = runner.invoke(
        app, ["review", "import", str(tmp_path / "other.csv"), "-p", str(project.root)]
    )
    assert good.exit_code == 0, good.output
    assert captured_ids(project.workspace) == {"req-0:0", "req-50:0"}
