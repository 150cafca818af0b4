"""Spec review state from git: exact names of uncommitted files, a clean tree passes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from readyml.evaluate.review import review_state


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
    )


def test_modified_file_is_named_exactly_and_a_commit_passes(tmp_path: Path) -> None:
    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("git is not installed")
    spec, schema = tmp_path / "readyml.yaml", tmp_path / "schema.yaml"
    spec.write_text("name: x\n")
    schema.write_text("features: []\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "start")
    assert review_state(tmp_path, [spec, schema], {})["passed"]

    schema.write_text("features: [a]\n")  # " M schema.yaml": the leading space matters
    state = review_state(tmp_path, [spec, schema], {})
    assert not state["passed"] and state["uncommitted"] == ["schema.yaml"]
    assert state["reason"] == "not committed: schema.yaml"
