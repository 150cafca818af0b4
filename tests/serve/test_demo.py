"""The demo's serving step: a real server asked by every protocol, then rows replayed."""

from __future__ import annotations

from pathlib import Path

from readyml.config import Project
from readyml.serve.demo import serve_demo
from readyml.train import open_project_registry

from .conftest import ROW, train_iris


def test_serve_demo_answers_every_protocol_and_replays_rows(tmp_path: Path) -> None:
    root = train_iris(tmp_path / "iris")
    project = Project.load(root)
    results, replayed = serve_demo(
        project, open_project_registry(project), replay_rows=[ROW, ROW, ROW], id_prefix="t"
    )
    protocols = [protocol for protocol, _, _ in results]
    assert protocols == [
        "simple /predict",
        "MLflow /invocations",
        "V2 JSON tensors",
        "V2 binary tensor",
    ]
    answers = {protocol: answer for protocol, _, answer in results}
    assert answers["simple /predict"]["predictions"] == ["setosa"]
    assert answers["MLflow /invocations"]["predictions"] == ["setosa"]
    assert "outputs" in answers["V2 JSON tensors"] and "outputs" in answers["V2 binary tensor"]
    assert replayed == ["t-000000", "t-000001", "t-000002"]
