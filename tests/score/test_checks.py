"""``readyml check``: every automated check records evidence that moves the score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from readyml.cli.score import app
from readyml.config import Project
from readyml.data import load_schema, write_schema
from readyml.errors import ConfigError
from readyml.registry import Registry
from readyml.score import score_project
from readyml.score.checks import CHECKS, run_checks
from readyml.score.project_tests import feature_modules, model_modules
from readyml.train import open_project_registry, run_project
from readyml.train.steps import fit_model
from support import write_project

FEATURES_PY = '''"""Feature code of the test project."""


def petal_ratio(length: float, width: float) -> float:
    return length / width if width else 0.0
'''
TEST_FEATURES_PY = """from features import petal_ratio


def test_petal_ratio() -> None:
    assert petal_ratio(4.0, 2.0) == 2.0
    assert petal_ratio(1.0, 0.0) == 0.0
"""


@pytest.fixture(autouse=True)
def _fast_pytest_subprocesses(monkeypatch: pytest.MonkeyPatch) -> None:
    # The project's tests need no plugins; loading every installed one costs seconds a run.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture(scope="module")
def project_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An iris project, trained once, with feature code, its tests and schema meta."""
    root = write_project(tmp_path_factory.mktemp("checks"))
    (root / "features.py").write_text(FEATURES_PY)
    (root / "tests").mkdir()
    (root / "tests" / "test_features.py").write_text(TEST_FEATURES_PY)
    project = Project.load(root)
    registry = open_project_registry(project)
    assert run_project(project, registry=registry).error is None
    registry.store.close()
    schema = load_schema(root / "schema.yaml")
    for feature in schema.features:
        feature.meta = {"owner": "iris-team"}
        feature.description = f"{feature.name} in cm"
    write_schema(schema, root / "schema.yaml", overwrite=True)
    return root


@pytest.fixture
def project(project_root: Path) -> Project:
    return Project.load(project_root)


@pytest.fixture
def project_registry(project: Project) -> Registry:
    return open_project_registry(project)


def test_every_check_passes_on_a_ready_project(
    project: Project, project_registry: Registry
) -> None:
    results = run_checks(project, project_registry, runner=run_project, fit=fit_model)
    by_id = {r.test_id: r for r in results}
    assert list(by_id) == list(CHECKS)
    failing = {r.test_id: r.summary for r in results if not r.passed}
    # model-2 needs several served versions with feedback labels: honestly not there yet.
    assert set(failing) == {"model-2"}, failing
    assert failing["model-2"].startswith("not enough versions: 0 of 3")
    assert by_id["data-6"].details["in_signature"] is True
    assert by_id["data-7"].details["run"]["tests"] == 1
    assert "save/load round trip predicts identically" in by_id["infra-2"].details["spec"]["checks"]
    assert by_id["infra-3"].details["steps"][:4] == ["load", "privacy", "profile", "validate"]
    evidence = project_registry.list_evidence(project="iris")
    recorded = {e.test_id for e in evidence if e.run_id and e.run_id.startswith("check-")}
    assert recorded == set(CHECKS)
    # Probes train in a copy: the project's own registry still has one version.
    assert [v.version for v in project_registry.list_versions("iris")] == [1]


def test_running_checks_twice_turns_half_points_into_full_points(
    project: Project, project_registry: Registry
) -> None:
    project_registry.store.delete_evidence("iris")
    only = ["data-4", "data-7", "infra-5"]
    run_checks(project, project_registry, only=only)
    once = score_project(project, project_registry)
    assert [once.test(t).points for t in only] == [0.5, 0.5, 0.5]
    run_checks(project, project_registry, only=only)
    twice = score_project(project, project_registry)
    assert [twice.test(t).points for t in only] == [1.0, 1.0, 1.0]


def test_modules_are_detected(project: Project) -> None:
    assert feature_modules(project) == ["features"]
    assert model_modules(project) == []


def test_failing_feature_tests_fail_data_7(
    project_root: Path, project: Project, project_registry: Registry
) -> None:
    test_file = project_root / "tests" / "test_features.py"
    original = test_file.read_text()
    test_file.write_text(original.replace("== 2.0", "== 3.0"))
    try:
        (result,) = run_checks(project, project_registry, only=["data-7"])
    finally:
        test_file.write_text(original)
    assert not result.passed
    assert result.details["run"]["failures"] == 1
    assert "1 failed" in result.summary


def test_untested_feature_module_fails_data_7(tmp_path: Path, registry: Registry) -> None:
    root = write_project(tmp_path)
    (root / "features.py").write_text(FEATURES_PY)
    (result,) = run_checks(Project.load(root), registry, only=["data-7"])
    assert not result.passed
    assert "no test under tests/ imports ['features']" in result.summary


def test_infra_5_without_a_version_says_to_run_first(tmp_path: Path, registry: Registry) -> None:
    (result,) = run_checks(Project.load(write_project(tmp_path)), registry, only=["infra-5"])
    assert not result.passed
    assert "run 'readyml run' first" in result.summary


def test_unknown_check_is_refused(project: Project, project_registry: Registry) -> None:
    with pytest.raises(ConfigError, match="--only: expected some of data-4"):
        run_checks(project, project_registry, only=["data-9"])
    with pytest.raises(ConfigError, match=r"--skip: expected some of data-4.*found 'model-9'"):
        run_checks(project, project_registry, skip=["model-9"])


def test_skipped_checks_do_not_run(tmp_path: Path, registry: Registry) -> None:
    project = Project.load(write_project(tmp_path))
    results = run_checks(project, registry, only=["infra-5", "data-4"], skip=["infra-5"])
    assert [r.test_id for r in results] == ["data-4"]


def test_cli_check_exits_1_when_a_check_fails(project_root: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "check",
            "-p",
            str(project_root),
            "--only",
            "model-2",
            "--only",
            "data-4",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 1
    assert [r["passed"] for r in json.loads(result.stdout)] == [True, False]
