from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from readyml.cli.evaluate import app
from readyml.config import Project, TuningSpec, parse_spec
from readyml.errors import ConfigError
from readyml.evaluate import run_study, write_back_params
from readyml.train import open_project_registry
from readyml.train.evaluation_steps import tune_project
from support import IRIS_SPEC, iris_frame, write_project

SPEC_TEXT = """\
# my project: keep this comment
name: demo
label: y   # the label
model:
  flavor: sklearn
  estimator: sklearn.ensemble.RandomForestClassifier
  params:
    n_estimators: 10   # tuned: 10 to 500
    # n_jobs: 1 keeps CI on one core
    n_jobs: 1

# gates stay as written
gates:
  rules: []
"""


def test_study_records_every_trial_and_finds_the_best() -> None:
    spec = TuningSpec.model_validate(
        {
            "n_trials": 12,
            "space": {
                "x": {"type": "float", "low": -2.0, "high": 2.0},
                "kind": {"type": "categorical", "choices": ["a", "b"]},
            },
        }
    )
    result = run_study(
        spec,
        metric="mae",
        objective=lambda p: abs(p["x"] - 1.0) + (0.5 if p["kind"] == "a" else 0.0),
        seed=0,
    )
    assert result.direction == "minimize" and len(result.trials) == 12
    assert result.best_value == min(t["value"] for t in result.trials)
    assert all(t["state"] == "complete" for t in result.trials)


def test_empty_space_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"tuning\.space"):
        run_study(TuningSpec(), metric="accuracy", objective=lambda p: 0.0)


def test_write_back_changes_only_model_params(tmp_path: Path) -> None:
    path = tmp_path / "readyml.yaml"
    path.write_text(SPEC_TEXT, encoding="utf-8")
    merged = write_back_params(path, {"n_estimators": 50, "max_depth": 4})
    text = path.read_text(encoding="utf-8")
    assert merged == {"n_estimators": 50, "n_jobs": 1, "max_depth": 4}
    assert "# my project: keep this comment" in text and "# gates stay as written" in text
    assert "label: y   # the label" in text
    assert "n_estimators: 50   # tuned: 10 to 500" in text  # a comment inside params stays
    assert "    # n_jobs: 1 keeps CI on one core\n    n_jobs: 1\n    max_depth: 4\n" in text
    loaded = yaml.safe_load(text)
    assert loaded["model"]["params"] == merged and loaded["gates"] == {"rules": []}


def test_write_back_adds_a_missing_params_mapping(tmp_path: Path) -> None:
    path = tmp_path / "readyml.yaml"
    path.write_text("name: d\nmodel:\n  estimator: a.B\nlabel: y\n", encoding="utf-8")
    write_back_params(path, {"alpha": 0.5})
    assert yaml.safe_load(path.read_text()) == {
        "name": "d",
        "model": {"estimator": "a.B", "params": {"alpha": 0.5}},
        "label": "y",
    }


def test_write_back_keeps_an_inline_comment_and_the_lines_after_params(tmp_path: Path) -> None:
    path = tmp_path / "readyml.yaml"
    text = "model:\n  params:\n    alpha: 1.0  # L2\n\n  # the estimator\n  estimator: a.B\n"
    path.write_text(text, encoding="utf-8")
    write_back_params(path, {"tol": 0.001})
    assert path.read_text() == (
        "model:\n  params:\n    alpha: 1.0  # L2\n    tol: 0.001\n\n  # the estimator\n"
        "  estimator: a.B\n"
    )


def test_write_back_replaces_a_null_or_flow_params(tmp_path: Path) -> None:
    path = tmp_path / "readyml.yaml"
    for params in ("params:", "params: {}", "params: {alpha: 1.0, fit_intercept: yes}"):
        path.write_text(f"name: d\nmodel:\n  estimator: a.B\n  {params}\n", encoding="utf-8")
        write_back_params(path, {"alpha": 1e-05})
        assert yaml.safe_load(path.read_text())["model"]["params"]["alpha"] == 1e-05


def test_write_back_refuses_a_model_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "readyml.yaml"
    path.write_text("name: d\nmodel: a.B\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="set them by hand"):
        write_back_params(path, {"alpha": 0.5})
    assert path.read_text() == "name: d\nmodel: a.B\n"


def _tree_project(root: Path, max_depth: int, low: int, high: int) -> Project:
    """Iris with a decision tree of ``max_depth``, tuned over max_depth ``low``..``high``."""
    spec: dict[str, Any] = {
        **IRIS_SPEC,
        "model": {
            "estimator": "sklearn.tree.DecisionTreeClassifier",
            "params": {"max_depth": max_depth, "random_state": 0},
        },
        "tuning": {
            "n_trials": 2,
            "cv": 3,
            "space": {"max_depth": {"type": "int", "low": low, "high": high}},
        },
    }
    return Project.load(write_project(root, spec))


def test_write_back_keeps_params_that_score_better_than_the_best_trial(tmp_path: Path) -> None:
    project = _tree_project(tmp_path, max_depth=4, low=1, high=1)  # stumps: never better
    before = project.spec_path.read_text(encoding="utf-8")
    registry = open_project_registry(project)
    study = tune_project(project, registry=registry, train=iris_frame(), write_back=True)
    assert study["best_value"] < study["current_value"]
    assert not study["wrote_back"] and "does not beat" in study["not_written"]
    assert project.spec_path.read_text(encoding="utf-8") == before


def test_write_back_writes_params_that_beat_the_current_ones(tmp_path: Path) -> None:
    project = _tree_project(tmp_path, max_depth=1, low=3, high=5)
    registry = open_project_registry(project)
    study = tune_project(project, registry=registry, train=iris_frame(), write_back=True)
    assert study["best_value"] > study["current_value"]
    assert study["wrote_back"] and study["not_written"] is None
    written = yaml.safe_load(project.spec_path.read_text(encoding="utf-8"))
    assert written["model"]["params"]["max_depth"] == study["best_params"]["max_depth"]


def test_log_scaled_range_must_start_above_zero() -> None:
    space = {"min_samples_leaf": {"type": "float", "low": 0, "high": 1, "log": True}}
    with pytest.raises(ConfigError) as raised:
        parse_spec({**IRIS_SPEC, "tuning": {"space": space}})
    assert str(raised.value) == (
        "readyml.yaml: tuning.space.min_samples_leaf: a log-scaled float parameter needs "
        "low > 0, found low=0"
    )
    space = {"n_estimators": {"type": "int", "low": 0, "high": 9, "log": True}}
    with pytest.raises(ConfigError, match=r"tuning\.space\.n_estimators: .* needs low >= 1"):
        parse_spec({**IRIS_SPEC, "tuning": {"space": space}})


@pytest.mark.parametrize(
    ("dimension", "message"),
    [
        ({"type": "int", "low": 1, "high": 8, "step": 0.5}, "step must be a whole number >= 1"),
        ({"type": "float", "low": 0.1, "high": 0.9, "step": 0}, "step must be a number > 0"),
        ({"type": "float", "low": 0.1, "high": 0.9, "log": True, "step": 0.1}, "takes no step"),
    ],
)
def test_a_step_optuna_would_truncate_or_ignore_is_refused(
    dimension: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=rf"tuning\.space\.p: .*{message}"):
        parse_spec({**IRIS_SPEC, "tuning": {"space": {"p": dimension}}})


def test_a_log_scaled_int_may_step_by_one() -> None:
    space = {"n": {"type": "int", "low": 1, "high": 64, "log": True, "step": 1}}
    assert parse_spec({**IRIS_SPEC, "tuning": {"space": space}}).tuning is not None


def test_a_tuning_metric_the_task_does_not_compute_is_refused(tmp_path: Path) -> None:
    spec = {
        **IRIS_SPEC,
        "tuning": {"metric": "aucc", "space": {"C": {"type": "float", "low": 0.1, "high": 1.0}}},
    }
    project = Project.load(write_project(tmp_path, spec))
    registry = open_project_registry(project)
    with pytest.raises(
        ConfigError, match=r"tuning\.metric: expected a classification metric .* found 'aucc'"
    ):
        tune_project(project, registry=registry, train=iris_frame())


def test_a_failed_trial_is_not_logged_by_optuna() -> None:
    records: list[logging.LogRecord] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Recorder()
    logging.getLogger("optuna").addHandler(handler)

    def fail(params: dict[str, Any]) -> float:
        raise ConfigError("model.params: unknown parameter 'n_estimatorz'")

    spec = TuningSpec.model_validate({"space": {"x": {"type": "int", "low": 1, "high": 2}}})
    try:
        with pytest.raises(ConfigError, match="n_estimatorz"):
            run_study(spec, metric="accuracy", objective=fail)
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("n", [0, -1])
def test_fewer_than_one_trial_is_refused(n: int, tmp_path: Path) -> None:
    spec = TuningSpec.model_validate({"space": {"x": {"type": "int", "low": 1, "high": 2}}})
    with pytest.raises(ConfigError, match="n_trials: expected at least 1"):
        run_study(spec, metric="accuracy", objective=lambda p: 0.0, n_trials=n)
    root = write_project(tmp_path)
    result = CliRunner().invoke(app, ["tune", "-p", str(root), "--n-trials", str(n)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: --n-trials: expected a number of trials of at least 1, found {n}"
    )
    assert not (root / ".readyml").exists()  # refused before the pipeline ran
