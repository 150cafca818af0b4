"""``readyml compress`` on a real project run: exit codes, table, report files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from readyml.cli.compress import app
from readyml.config import SPEC_FILE, Project
from readyml.train import open_project_registry, run_project


def _project(directory: Path, **extra: Any) -> str:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame.columns = ["a", "b", "c", "d", "species"]
    frame["species"] = frame["species"].map({0: "x", 1: "y", 2: "z"})
    frame["grade"] = frame["species"].map({"x": "p", "y": "q", "z": "r"})
    (directory / "data").mkdir(parents=True)
    frame.to_csv(directory / "data" / "iris.csv", index=False)
    spec = {
        "name": "iris",
        "seed": 0,
        "data": {"source": "data/iris.csv"},
        "label": "species",
        "split": {"method": "random", "test_size": 0.3, "stratify": True},
        "model": {
            "flavor": "sklearn",
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 500},
        },
        "exclude": ["grade"],
        **extra,
    }
    (directory / SPEC_FILE).write_text(yaml.safe_dump(spec), encoding="utf-8")
    project = Project.load(directory)
    result = run_project(project, registry=open_project_registry(project))
    assert result.error is None
    registered = result.value("registered")
    return f"{registered['name']}:{registered['version']}"


def test_compress_command_exports_and_writes_the_report(tmp_path: Path) -> None:
    ref = _project(tmp_path)
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app, [ref, "--format", "onnx", "-p", str(tmp_path), "--out", str(out), "--output", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    assert [row["method"] for row in rows] == ["parent", "onnx"]
    assert rows[1]["gate"]["decision"] == "blessed"
    assert (out / "compression.html").is_file()


def test_compress_command_without_a_method_exits_2(tmp_path: Path) -> None:
    ref = _project(tmp_path)
    result = CliRunner().invoke(app, [ref, "-p", str(tmp_path)])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--max-loss", "-1"], "--max-loss: expected a loss of 0 or more, found -1.0"),
        (["--max-slice-loss", "-0.5"], "--max-slice-loss: expected a loss of 0 or more"),
        (["--output", "yaml"], "--output: expected 'text' or 'json', found 'yaml'"),
    ],
)
def test_bad_option_values_are_one_line_before_any_work(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    ref = _project(tmp_path)
    registry = open_project_registry(Project.load(tmp_path))
    before = registry.list_versions(ref.split(":")[0])
    result = CliRunner().invoke(app, [ref, "--format", "onnx", *arguments, "-p", str(tmp_path)])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert registry.list_versions(ref.split(":")[0]) == before


def test_torch_int8_of_a_scikit_learn_model_exits_2_naming_the_flavor(tmp_path: Path) -> None:
    ref = _project(tmp_path)
    result = CliRunner().invoke(app, [ref, "--quantize", "torch-int8", "-p", str(tmp_path)])
    assert result.exit_code == 2
    assert "expected a torch model, found flavor 'sklearn'" in " ".join(result.output.split())


def test_a_second_compression_of_a_parent_keeps_the_first_report(tmp_path: Path) -> None:
    ref = _project(tmp_path)
    for to_format in ("onnx", "ort"):
        result = CliRunner().invoke(app, [ref, "--format", to_format, "-p", str(tmp_path)])
        assert result.exit_code == 0, result.output
    reports = tmp_path / ".readyml" / "reports"
    # iris:1's first compression made iris:2 (ONNX); its second found iris:2 again and made
    # iris:3 (ORT).
    assert sorted(p.name for p in reports.glob("compress-*")) == [
        "compress-iris-v1-to-v2",
        "compress-iris-v1-to-v3",
    ]
    second = json.loads((reports / "compress-iris-v1-to-v3" / "compression.json").read_text())
    assert [row["method"] for row in second["rows"]] == ["parent", "onnx", "ort"]
    assert [row["ref"] for row in second["rows"]] == ["iris:1", "iris:2", "iris:3"]


def test_an_out_that_is_a_file_exits_2_before_anything_is_registered(tmp_path: Path) -> None:
    ref = _project(tmp_path)
    taken = tmp_path / "taken"
    taken.write_text("mine")
    result = CliRunner().invoke(
        app, [ref, "--format", "onnx", "-p", str(tmp_path), "--out", str(taken)]
    )
    assert result.exit_code == 2
    assert "--out: expected a folder, found a file" in result.output
    registry = open_project_registry(Project.load(tmp_path))
    assert [v.version for v in registry.list_versions("iris")] == [1]


def test_a_label_renamed_since_the_run_exits_2_naming_it(tmp_path: Path) -> None:
    ref = _project(tmp_path)
    spec = tmp_path / SPEC_FILE
    spec.write_text(spec.read_text().replace("label: species", "label: kind"))
    result = CliRunner().invoke(app, [ref, "--format", "onnx", "-p", str(tmp_path)])
    assert result.exit_code == 2
    assert "expected label 'species' (its run's), found 'kind' in readyml.yaml" in result.output


def test_a_label_changed_to_another_column_since_the_run_exits_2_naming_both(
    tmp_path: Path,
) -> None:
    ref = _project(tmp_path)
    spec = tmp_path / SPEC_FILE
    text = spec.read_text().replace("label: species", "label: grade")
    spec.write_text(text.replace("- grade", "- species"))
    result = CliRunner().invoke(app, [ref, "--format", "onnx", "-p", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "iris:1: expected label 'species' (its run's), found 'grade' in readyml.yaml" in lines[0]
    registry = open_project_registry(Project.load(tmp_path))
    assert [v.version for v in registry.list_versions("iris")] == [1]


def test_a_repeat_exits_as_the_registry_holds_the_version(tmp_path: Path) -> None:
    ref = _project(tmp_path, gates={"rules": [{"metric": "accuracy", "max": 0.1}]})
    runner = CliRunner()
    first = runner.invoke(app, [ref, "--format", "onnx", "-p", str(tmp_path)])
    assert first.exit_code == 1, first.output  # vetoed by the project's rule
    report = tmp_path / ".readyml" / "reports" / "compress-iris-v1-to-v2" / "compression.json"
    written = report.read_text()
    spec = tmp_path / SPEC_FILE
    spec.write_text(yaml.safe_dump({**yaml.safe_load(spec.read_text()), "gates": {}}))
    again = runner.invoke(app, [ref, "--format", "onnx", "-p", str(tmp_path), "--output", "json"])
    assert again.exit_code == 1, again.output
    rows = json.loads(again.output)["rows"]
    assert (rows[1]["ref"], rows[1]["gate"]["decision"]) == ("iris:2", "vetoed")
    assert open_project_registry(Project.load(tmp_path)).get("iris:2").status == "vetoed"
    assert report.read_text() == written


def test_an_onnx_version_converts_to_ort_but_is_not_exported_again(tmp_path: Path) -> None:
    ref = _project(tmp_path)
    runner = CliRunner()
    exported = runner.invoke(app, [ref, "--format", "onnx", "-p", str(tmp_path)])
    assert exported.exit_code == 0, exported.output
    again = runner.invoke(app, ["iris:2", "--format", "onnx", "-p", str(tmp_path)])
    assert again.exit_code == 2
    assert "--format onnx: expected a version that is not ONNX yet, found iris:2" in again.output
    ort = runner.invoke(app, ["iris:2", "--format", "ort", "-p", str(tmp_path), "--output", "json"])
    assert ort.exit_code == 0, ort.output
    rows = json.loads(ort.output)["rows"]
    assert [(row["method"], row["ref"]) for row in rows] == [
        ("parent", "iris:2"),
        ("ort", "iris:3"),
    ]
    registry = open_project_registry(Project.load(tmp_path))
    assert registry.get("iris:3").parent_version == 2
