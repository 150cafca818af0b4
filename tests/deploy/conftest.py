"""A trained, registered iris project shared by the deployment tests (trained once)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from readyml.config import Project
from readyml.registry import CHAMPION
from readyml.train import open_project_registry, run_project
from support import write_project


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An iris project whose first version is registered and ``champion``."""
    root = write_project(tmp_path_factory.mktemp("deploy-project"))
    project = Project.load(root)
    registry = open_project_registry(project)
    result = run_project(project, registry=registry)
    assert result.status == "succeeded", result.error
    registry.set_alias("iris", CHAMPION, 1, who="test", reason="deploy tests")
    registry.store.close()
    yield root


# The champion's number in ``renumbered_project``: not 1, so that renumbering would show.
RENUMBERED_VERSION = 3


@pytest.fixture(scope="session")
def renumbered_project(trained_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``trained_project`` whose champion is version 3 (version 1's files again)."""
    root = tmp_path_factory.mktemp("renumbered") / "project"
    shutil.copytree(trained_project, root)
    registry = open_project_registry(Project.load(root))
    try:
        first = registry.get("iris:1")
        files = registry.download(first, tmp_path_factory.mktemp("renumbered-files"))
        for _ in range(RENUMBERED_VERSION - 1):
            registry.register(
                "iris",
                files={a.name: files / a.name for a in first.artifacts},
                model_fingerprint=first.model_fingerprint,
                lineage=first.lineage,
                metrics=first.metrics,
                signature=first.signature,
                input_example=first.input_example,
                status=first.status,
                gate=first.gate,
                run_id=first.run_id,
            )
        registry.set_alias("iris", CHAMPION, RENUMBERED_VERSION, who="test", reason="renumbered")
    finally:
        registry.store.close()
    return root


Tool = Callable[..., "subprocess.CompletedProcess[str]"]


def _run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a console script of the virtual environment, or skip when it is missing."""
    beside = Path(sys.executable).parent / name
    binary = str(beside) if beside.exists() else shutil.which(name)
    if binary is None:
        pytest.skip(f"{name} is not installed: pip install -e '.[dev]'")
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False)


@pytest.fixture
def run_tool() -> Tool:
    """:func:`_run_tool`: run a console script (hadolint, kubernetes-validate) or skip."""
    return _run_tool
