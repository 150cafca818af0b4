"""A project's own estimator class, vouched for by model.trusted_types, is stored with skops
and loaded again wherever the project is known: the cache, the champion, evaluation."""

from __future__ import annotations

from pathlib import Path

import yaml

from readyml.config import Project
from readyml.errors import FlavorError
from readyml.registry import Registry
from readyml.train import RunResult, open_project_registry, run_project
from readyml.train.evaluation_steps import evaluate_version
from support import IRIS_SPEC, write_project

CLASSIFIER = """
from sklearn.linear_model import LogisticRegression


class OwnClassifier(LogisticRegression):
    pass
"""
MODEL = {"estimator": "ownclf:OwnClassifier", "params": {"max_iter": 500}}


def _run(root: Path) -> tuple[RunResult, Registry, Project]:
    project = Project.load(root)
    registry = open_project_registry(project)
    return run_project(project, registry=registry), registry, project


def _write(root: Path, **model: object) -> None:
    write_project(root, {**IRIS_SPEC, "model": {**MODEL, **model}, "gates": {}})
    (root / "ownclf.py").write_text(CLASSIFIER, encoding="utf-8")


def test_without_trusted_types_the_error_names_the_key(tmp_path: Path) -> None:
    _write(tmp_path)
    result, _, _ = _run(tmp_path)
    assert isinstance(result.error, FlavorError)
    message = str(result.error)
    assert message.startswith("model OwnClassifier: skops can store it only with types outside")
    assert "model.trusted_types: [ownclf.OwnClassifier]" in message
    train = next(s for s in result.steps if s.name == "train")
    assert train.status == "failed" and "fitted" not in train.message


def test_trusted_types_carry_the_model_through_cache_champion_and_evaluation(
    tmp_path: Path,
) -> None:
    _write(tmp_path, trusted_types=["ownclf:OwnClassifier"])
    first, registry, _ = _run(tmp_path)
    assert first.status == "succeeded", first.error
    registry.promote("iris:1", who="test", reason="first")
    again, _, _ = _run(tmp_path)  # the model is read back from the step cache
    assert again.status == "succeeded", again.error
    assert {s.name: s.status for s in again.steps}["train"] == "skipped"

    spec = yaml.safe_load((tmp_path / "readyml.yaml").read_text(encoding="utf-8"))
    (tmp_path / "readyml.yaml").write_text(yaml.safe_dump({**spec, "seed": 11}), encoding="utf-8")
    third, registry, project = _run(tmp_path)
    assert third.status == "succeeded", third.error
    assert "champion_rows" in third.value("gate")  # the champion was loaded and compared

    _, _, report = evaluate_version(
        project,
        "iris:1",
        registry=registry,
        train=third.value("train"),
        valid=third.value("valid"),
        out=tmp_path / "report",
    )
    assert report["model"] == "iris:1"


def test_trusted_types_reach_batch_prediction_monitoring_and_explanations(tmp_path: Path) -> None:
    """Every path that loads a project's model passes the project's trusted types."""
    from readyml.monitor.inputs import load_reference
    from readyml.predict.batch import load_predictor
    from readyml.score.explain import explain_prediction

    _write(tmp_path, trusted_types=["ownclf:OwnClassifier"])
    result, registry, project = _run(tmp_path)
    assert result.status == "succeeded", result.error
    predictor = load_predictor(tmp_path, "iris:1")
    assert "OwnClassifier" in repr(getattr(predictor.model, "model_", None))
    reference = load_reference(project, registry, registry.get("iris:1"))
    assert reference.valid_pred is not None  # the version predicted its validation split
    explained = explain_prediction(registry, "iris:1", trusted_types=project.trusted_types())
    assert explained.consistent
