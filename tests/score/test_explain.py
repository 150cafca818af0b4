"""Infra 5: step-by-step computation of one prediction."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from readyml.cli.score import app
from readyml.config import Project
from readyml.errors import ConfigError
from readyml.registry import Registry
from readyml.score.explain import (
    OWN_KEY,
    ExplainStep,
    Explanation,
    explain_prediction,
    record_explanation,
)
from readyml.score.rubric import rubric_test
from readyml.score.scoring import score_test
from readyml.train import open_project_registry, run_project
from support import IRIS_SPEC, write_project

Trained = Callable[[str], tuple[Project, Registry]]
EXAMPLE = {"sepal_length": 6.1, "sepal_width": 2.8, "petal_length": 4.7, "petal_width": 1.2}


LINEAR = "sklearn.linear_model.LogisticRegression"
TREE = "sklearn.tree.DecisionTreeClassifier"
FOREST = "sklearn.ensemble.RandomForestClassifier"


@pytest.fixture(scope="module")
def trained_projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One trained iris project per estimator, shared by the tests of this module."""
    roots = {}
    for estimator in (LINEAR, TREE, FOREST):
        params = {"n_estimators": 20} if estimator == FOREST else {}
        spec = {
            **IRIS_SPEC,
            "model": {"flavor": "sklearn", "estimator": estimator, "params": params},
        }
        root = write_project(tmp_path_factory.mktemp("explain"), spec)
        project = Project.load(root)
        registry = open_project_registry(project)
        assert run_project(project, registry=registry).error is None
        registry.store.close()
        roots[estimator] = root
    return roots


@pytest.fixture
def trained(trained_projects: dict[str, Path]) -> Callable[[str], tuple[Project, Registry]]:
    def load(estimator: str) -> tuple[Project, Registry]:
        project = Project.load(trained_projects[estimator])
        return project, open_project_registry(project)

    return load


def test_linear_model_contributions_add_up_to_the_decision_function(trained: Trained) -> None:
    _, registry = trained(LINEAR)
    explanation = explain_prediction(registry, "iris", EXAMPLE)
    assert explanation.consistent
    names = [s.name for s in explanation.steps]
    assert names == [
        "input",
        "preprocess: ColumnTransformer",
        "contributions: coef × value",
        "prediction",
    ]
    contributions = explanation.steps[2].values
    parts = [v for k, v in contributions.items() if k not in ("= sum", OWN_KEY)]
    assert sum(parts) == pytest.approx(contributions["= sum"])
    assert explanation.steps[-1].values["prediction"] == explanation.prediction


@pytest.mark.parametrize("estimator", [TREE, FOREST])
def test_tree_contributions_follow_decision_paths(trained: Trained, estimator: str) -> None:
    _, registry = trained(estimator)
    explanation = explain_prediction(registry, "iris:1", EXAMPLE)
    assert explanation.consistent
    path = next(s for s in explanation.steps if s.kind == "path")
    assert path.values and all("→ node" in v for v in path.values.values())
    label = explanation.prediction
    probability = explanation.steps[-1].values[f"P({label})"]
    assert explanation.steps[-2].values["= sum"] == pytest.approx(probability)
    assert explanation.steps[-2].values[OWN_KEY] == pytest.approx(probability)


def test_default_example_is_the_versions_input_example(trained: Trained) -> None:
    project, registry = trained(LINEAR)
    explanation = explain_prediction(registry, "iris")
    assert set(explanation.example) == set(EXAMPLE)
    record_explanation(registry, project.spec.name, explanation)
    evidence = registry.list_evidence(project="iris", test_id="infra-5")[-1]
    assert evidence.passed and evidence.model_name == "iris" and evidence.version == 1
    assert "reason" not in evidence.details


def test_a_trace_that_does_not_reproduce_the_prediction_is_failing_evidence_with_a_reason(
    registry: Registry,
) -> None:
    contributions = ExplainStep(
        "contributions: decision paths",
        "contributions",
        {"bias (mean of root values)": 0.33, "petal_width": 0.4, "= sum": 0.73, OWN_KEY: 0.81},
        "probability of class 'versicolor'; 20 tree(s)",
    )
    output = ExplainStep(
        "prediction", "output", {"prediction": "versicolor", "P(versicolor)": 0.81}
    )
    explanation = Explanation(
        "iris:1", "sklearn", EXAMPLE, [contributions, output], np.str_("versicolor"), False
    )
    record_explanation(registry, "iris", explanation)
    (evidence,) = registry.list_evidence(project="iris", test_id="infra-5")
    assert not evidence.passed
    assert evidence.details["reason"] == (
        "trace of iris:1: expected the step-by-step computation to reproduce the prediction "
        "'versicolor' (P=0.81), found contributions summing to 0.73 where the model's own "
        "value is 0.81 (probability of class 'versicolor'; 20 tree(s))"
    )
    score = score_test(rubric_test("infra-5"), [evidence], now=datetime.now(UTC))
    assert score.reason == f"the latest automated run failed: {evidence.details['reason']}"
    layers = Explanation("net:2", "torch", EXAMPLE, [], np.float32(2.5), False)
    assert layers.problem == (
        "trace of net:2: expected the step-by-step computation to reproduce the prediction "
        "2.5, found a different output from the traced steps"
    )
    assert Explanation("net:2", "torch", EXAMPLE, consistent=True).problem == ""


def test_missing_column_names_what_is_expected(trained: Trained) -> None:
    _, registry = trained(LINEAR)
    with pytest.raises(ConfigError, match=r"lacks column\(s\) \['petal_width'\]"):
        explain_prediction(
            registry, "iris", {k: v for k, v in EXAMPLE.items() if k != "petal_width"}
        )


def test_cli_explain_prints_steps_and_records_evidence(trained_projects: dict[str, Path]) -> None:
    tmp_path = trained_projects[TREE]
    result = CliRunner().invoke(
        app, ["explain", "iris:1", "-p", str(tmp_path), "--example", json.dumps(EXAMPLE)]
    )
    assert result.exit_code == 0, result.stdout
    assert "decision path of tree 0" in result.stdout
    assert "the step-by-step trace matches predict()" in result.stdout
    result = CliRunner().invoke(app, ["explain", "iris", "-p", str(tmp_path), "--format", "json"])
    assert json.loads(result.stdout)["consistent"] is True
    result = CliRunner().invoke(app, ["explain", "iris", "-p", str(tmp_path), "--example", "[1"])
    assert result.exit_code == 2 and "--example: expected a JSON object" in result.stderr
    # A trace asked for by hand is manual evidence: it is not run again and again.
    registry = open_project_registry(Project.load(tmp_path))
    evidence = registry.list_evidence(project="iris", test_id="infra-5")
    assert evidence and not any(e.automated for e in evidence)


@pytest.mark.parametrize(
    ("value", "found"), [("abc", "string 'abc'"), ([1, 2], "an array"), ({"a": 1}, "an object")]
)
def test_a_value_the_model_cannot_take_names_the_feature(
    trained: Trained, value: object, found: str
) -> None:
    _, registry = trained(FOREST)
    with pytest.raises(ConfigError) as caught:
        explain_prediction(registry, "iris", {**EXAMPLE, "petal_width": value})
    assert str(caught.value) == (
        f"explain iris: feature 'petal_width': expected a number, found {found}"
    )


def test_cli_explain_prints_a_plain_prediction_and_rejects_a_binary_example_file(
    trained_projects: dict[str, Path], tmp_path: Path
) -> None:
    root = trained_projects[LINEAR]
    result = CliRunner().invoke(app, ["explain", "iris", "-p", str(root)])
    assert result.exit_code == 0, result.stdout
    assert "np." not in result.stdout
    binary = tmp_path / "example.json"
    binary.write_bytes(b"\xff\xfe{")
    result = CliRunner().invoke(
        app, ["explain", "iris", "-p", str(root), "--example", f"@{binary}"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: --example: cannot read {str(binary)!r}")


@pytest.mark.parametrize("value", [1e308, float("inf")])
def test_a_value_too_large_is_one_error_without_warnings(trained: Trained, value: float) -> None:
    _, registry = trained(FOREST)
    with warnings.catch_warnings(), pytest.raises(ConfigError) as caught:
        warnings.simplefilter("error")  # a warning that escapes would be a second stderr line
        explain_prediction(registry, "iris", {**EXAMPLE, "petal_width": value})
    assert str(caught.value).startswith(
        "explain iris: expected values the model accepts, found an example it cannot take ("
    )


def test_an_onnx_export_is_traced_through_the_version_it_was_made_from(
    trained_projects: dict[str, Path], tmp_path: Path
) -> None:
    from readyml.cli import app as cli
    from readyml.flavors import load_model
    from readyml.score.explain import explain_model

    root = tmp_path / "project"
    shutil.copytree(trained_projects[LINEAR], root)
    compressed = CliRunner().invoke(
        cli, ["compress", "iris:1", "--format", "onnx", "-p", str(root)]
    )
    assert compressed.exit_code == 0, compressed.output
    registry = open_project_registry(Project.load(root))
    explanation = explain_prediction(registry, "iris:2", EXAMPLE)
    assert explanation.flavor == "onnx" and explanation.consistent, explanation.problem
    assert explanation.steps[1].note.startswith("onnx export of iris:1, traced through it")
    # Without the version it was made from, there is nothing to trace: no point for it.
    onnx = load_model(registry.download(registry.get("iris:2"), tmp_path / "onnx"))
    steps, _, ok = explain_model(onnx, EXAMPLE)
    untraced = Explanation("iris:2", "onnx", EXAMPLE, steps, "versicolor", ok)
    assert not ok and untraced.problem == (
        "trace of iris:2: expected a step-by-step trace of the prediction, found none "
        "(step-by-step tracing is not available for onnx)"
    )
