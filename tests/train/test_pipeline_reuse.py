"""A run that only reuses cached steps is not another end-to-end run (ML Test Score infra-3)."""

from __future__ import annotations

from pathlib import Path

from readyml.config import Project
from readyml.train import open_project_registry, run_project
from support import write_project


def test_a_run_of_cached_steps_counts_as_the_run_it_reused(tmp_path: Path) -> None:
    project = Project.load(write_project(tmp_path))
    registry = open_project_registry(project)
    first = run_project(project, registry=registry)
    again = run_project(project, registry=registry)
    forced = run_project(project, registry=registry, force=True)
    assert {r.status for r in again.steps} == {"skipped"}
    evidence = {e.run_id: e for e in registry.list_evidence("iris", test_id="infra-3")}
    assert "reused_from_run" not in evidence[first.run_id].details
    assert evidence[again.run_id].details["reused_from_run"] == first.run_id
    assert "reused_from_run" not in evidence[forced.run_id].details
