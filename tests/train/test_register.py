"""The register step: the same model is never registered twice, and its status follows a
gate that blesses it after the rules changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from readyml.config import Project
from readyml.train import open_project_registry, run_project
from support import IRIS_SPEC, write_project


def _spec(minimum: float) -> dict[str, Any]:
    return IRIS_SPEC | {"gates": {"rules": [{"metric": "accuracy", "min": minimum}]}}


# A rule no model meets (a perfectly sure and right model): the gate vetoes whatever it trains.
STRICT = IRIS_SPEC | {"gates": {"rules": [{"metric": "log_loss", "max": 0.0}]}}


def test_a_vetoed_model_blessed_after_a_rule_is_fixed_can_become_champion(
    tmp_path: Path,
) -> None:
    write_project(tmp_path, STRICT)  # a typo: no model has a log loss of 0
    project = Project.load(tmp_path)
    registry = open_project_registry(project)
    vetoed = run_project(project, registry=registry)
    assert vetoed.value("gate")["decision"] == "vetoed"
    assert registry.get("iris:1").status == "vetoed"

    write_project(tmp_path, _spec(0.5))
    project = Project.load(tmp_path)
    blessed = run_project(project, registry=registry)
    assert blessed.value("registered") == {"name": "iris", "version": 1, "new": False}
    version = registry.get("iris:1")
    assert version.status == "blessed"
    assert version.gate is not None and version.gate["decision"] == "blessed"
    # Both of the gate's decisions are in the trail, the veto with its failed check.
    trail = registry.status_history("iris", 1)
    assert [(e.from_status, e.to_status, e.who, e.gate_decision) for e in trail] == [
        (None, "vetoed", None, "vetoed"),
        ("vetoed", "blessed", None, "blessed"),
    ]
    assert "failed: log_loss = " in trail[0].reason
    registry.promote("iris:1", who="tests", reason="the rule is fixed")
    assert registry.get("iris@champion").version == 1


def test_a_veto_of_a_blessed_model_leaves_its_status(tmp_path: Path) -> None:
    write_project(tmp_path, _spec(0.5))
    project = Project.load(tmp_path)
    registry = open_project_registry(project)
    run_project(project, registry=registry)
    registry.promote("iris:1", who="tests", reason="serve it")
    write_project(tmp_path, STRICT)
    again = run_project(Project.load(tmp_path), registry=registry)
    assert again.value("gate")["decision"] == "vetoed"
    assert registry.get("iris:1").status == "blessed"
    assert registry.get("iris@champion").version == 1
    assert [e.to_status for e in registry.status_history("iris")] == ["blessed"]
