"""A run that does not finish normally is recorded failed: interrupted, crashed or killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

import readyml
from readyml.config import Project
from readyml.registry import Registry, RunOwner
from readyml.registry._owner import this_host
from readyml.train import Pipeline, RunContext, StepResult, open_project_registry
from readyml.train.pipeline import Kind
from readyml.train.progress import SilentReporter
from readyml.types import JSON
from support import IRIS_SPEC, ended_process_owner, write_project

SRC = Path(readyml.__file__).resolve().parents[1]
# Seconds to wait for the child to reach its hanging step before giving up.
READY_TIMEOUT_S = 120.0
# A loader that hangs (and says so) while the file "hang" is beside it.
HANGING_LOADER = """\
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent


def load():
    if (HERE / "hang").exists():
        (HERE / "loading").touch()
        time.sleep(600)
    return pd.read_csv(HERE / "data" / "iris.csv")
"""


class Fine:
    """A step that succeeds at once."""

    name: ClassVar[str] = "fine"
    version: ClassVar[int] = 1
    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[dict[str, Kind]] = {}
    cacheable: ClassVar[bool] = False

    def params(self, ctx: RunContext) -> JSON:
        return {}

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        return StepResult({}, "ok")


class Raising(Fine):
    """A step that raises what it was given."""

    name: ClassVar[str] = "boom"

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        raise self.exc


class BrokenReporter(SilentReporter):
    """A reporter that fails when the second step starts: a bug outside any step."""

    def step_started(self, name: str) -> None:
        if name == "boom":
            raise RuntimeError("the reporter broke")


def _project(root: Path) -> tuple[Project, Registry]:
    write_project(root)
    project = Project.load(root)
    return project, open_project_registry(project)


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (KeyboardInterrupt(), "interrupted (KeyboardInterrupt) during step 'boom'"),
        (SystemExit(3), "interrupted (SystemExit: 3) during step 'boom'"),
    ],
)
def test_an_interrupted_step_fails_the_step_and_the_run_and_is_raised_again(
    tmp_path: Path, exc: BaseException, error: str
) -> None:
    project, registry = _project(tmp_path)
    with pytest.raises(type(exc)) as raised:
        Pipeline([Fine(), Raising(exc)]).run(project, registry=registry, reporter=SilentReporter())
    assert raised.value is exc
    [run] = registry.store.list_runs("iris")
    assert (run.status, run.error) == ("failed", error)
    assert run.ended_at is not None and run.duration_s is not None
    steps = registry.store.steps_for_run(run.id)
    assert [(s.name, s.status, s.error) for s in steps] == [
        ("fine", "succeeded", None),
        ("boom", "failed", error),
    ]
    assert steps[1].input_fingerprint  # recorded like any step


def test_an_unexpected_exception_outside_the_steps_fails_the_run(tmp_path: Path) -> None:
    project, registry = _project(tmp_path)
    with pytest.raises(RuntimeError, match="the reporter broke"):
        Pipeline([Fine(), Raising(KeyboardInterrupt())]).run(
            project, registry=registry, reporter=BrokenReporter()
        )
    [run] = registry.store.list_runs("iris")
    assert run.status == "failed"
    assert run.error == "crashed (RuntimeError: the reporter broke) during step 'boom'"
    assert [s.name for s in registry.store.steps_for_run(run.id)] == ["fine"]


def test_an_error_of_a_step_still_ends_the_run_without_raising(tmp_path: Path) -> None:
    project, registry = _project(tmp_path)
    result = Pipeline([Raising(ValueError("bad value"))]).run(
        project, registry=registry, reporter=SilentReporter()
    )
    assert result.status == "failed"
    assert registry.store.get_run(result.run_id).error == (
        "step 'boom' failed: ValueError: bad value"
    )


def test_the_next_run_settles_a_run_whose_process_ended(tmp_path: Path) -> None:
    project, registry = _project(tmp_path)
    owner = ended_process_owner()
    abandoned = registry.store.start_run("iris", {}, {}, owner=owner)
    other_host = registry.store.start_run(
        "iris", {}, {}, owner=RunOwner(host=f"not-{this_host()}", pid=owner.pid, start_ticks=None)
    )
    root = Path(registry.artifacts.root)
    stale, fresh = root / "cache" / ".data.parquet.stale.tmp", root / ".value.json.fresh.tmp"
    for path in (stale, fresh):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    hours_ago = time.time() - timedelta(hours=2).total_seconds()
    os.utime(stale, (hours_ago, hours_ago))

    result = Pipeline([Fine()]).run(project, registry=registry, reporter=SilentReporter())

    assert result.status == "succeeded"
    settled = registry.store.get_run(abandoned.id)
    assert (settled.status, settled.error) == (
        "failed",
        f"abandoned: process {owner.pid} on host {owner.host} ended without finishing "
        "the run (killed?)",
    )
    assert registry.store.get_run(other_host.id).status == "running"
    assert not stale.exists() and fresh.exists()  # a live writer may still own the fresh one


# -- a real `readyml run`, signalled -----------------------------------------------


def _hanging_project(root: Path) -> Path:
    write_project(root, {**IRIS_SPEC, "data": {"source": "hang_loader:load"}})
    (root / "hang_loader.py").write_text(HANGING_LOADER)
    (root / "hang").touch()
    return root


def _start_hanging_run(root: Path, store_url: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["READYML_STORE_URL"] = store_url
    with (root / "child.log").open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "readyml", "run", "-p", str(root), "--format", "json"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not (root / "loading").exists():
        if child.poll() is not None:
            pytest.fail(
                f"readyml run exited ({child.returncode}): {(root / 'child.log').read_text()}"
            )
        if time.monotonic() > deadline:
            child.kill()
            child.wait()
            pytest.fail(f"readyml run did not reach its load step within {READY_TIMEOUT_S} s")
        time.sleep(0.05)
    return child


def _registry(root: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("READYML_STORE_URL", store_url)
    return open_project_registry(Project.load(root))


@pytest.mark.slow
def test_a_run_killed_with_sigkill_is_settled_abandoned_when_runs_are_listed(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _hanging_project(tmp_path / "project")
    child = _start_hanging_run(root, store_url)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    registry = _registry(root, store_url, monkeypatch)
    [run] = registry.store.list_runs("iris")
    assert run.status == "failed"
    assert run.error == (
        f"abandoned: process {child.pid} on host {this_host()} ended without finishing "
        "the run (killed?)"
    )
    assert registry.store.steps_for_run(run.id) == []  # the load step never ended


@pytest.mark.slow
def test_sigterm_to_readyml_run_fails_the_run_as_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = f"sqlite:///{tmp_path / 'readyml.db'}"
    root = _hanging_project(tmp_path / "project")
    child = _start_hanging_run(root, store_url)
    child.send_signal(signal.SIGTERM)
    assert child.wait() == 128 + signal.SIGTERM
    registry = _registry(root, store_url, monkeypatch)
    [run] = registry.store.list_runs("iris")
    error = "interrupted (Terminated: SIGTERM) during step 'load'"
    assert (run.status, run.error) == ("failed", error)
    steps = registry.store.steps_for_run(run.id)
    assert [(s.name, s.status, s.error) for s in steps] == [("load", "failed", error)]
