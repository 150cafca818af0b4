from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from readyml.config import TuningSpec
from readyml.errors import ConfigError
from readyml.evaluate import run_study, write_back_params

SPEC_TEXT = """\
# my project: keep this comment
name: demo
label: y   # the label
model:
  flavor: sklearn
  estimator: sklearn.ensemble.RandomForestClassifier
  params:
    n_estimators: 10   # lost on write-back (inside params)
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
