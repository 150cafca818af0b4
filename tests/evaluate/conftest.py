"""A small synthetic project with a categorical feature, a time column and a sensitive
attribute, run once per module for the evaluation tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from readyml.config import Project
from readyml.registry import Registry
from readyml.train import RunResult, open_project_registry, run_project
from support import write_project

REGIONS = ["north", "south", "east", "west"]


def region_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Two numeric features, a region, a date; the label says whether x1 and x2 share a sign
    (trees learn it, a linear model cannot)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2022-01-01", periods=rows, freq="D"),
            "x1": rng.normal(size=rows),
            "x2": rng.normal(size=rows),
            "region": rng.choice(REGIONS, size=rows),
        }
    )
    frame["label"] = np.where((frame["x1"] > 0) == (frame["x2"] > 0), "yes", "no")
    return frame


def region_spec(**changes: Any) -> dict[str, Any]:
    """A spec over :func:`region_frame` declaring slices, gates, fairness, staleness, tuning."""
    spec: dict[str, Any] = {
        "name": "regions",
        "seed": 3,
        "data": {"source": "data/iris.csv"},
        "label": "label",
        "exclude": ["date"],
        "split": {"method": "random", "test_size": 0.3},
        "model": {
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 20, "n_jobs": 1},
        },
        "metrics": {"primary": "accuracy", "bootstrap": 100},
        "slices": [
            {"name": "north", "column": "region", "values": ["north"]},
            {"name": "high x2", "column": "x2", "min": 1.5},
        ],
        "gates": {
            "rules": [{"metric": "accuracy", "min": 0.7}],
            "champion": {"max_regression": 0.01},
            "beat_baselines": {"margin": 0.0},
            "max_latency_ms": 1000.0,
            "max_size_mb": 100.0,
            "fairness": [{"metric": "accuracy_difference", "max": 0.5}],
        },
        "fairness": {"sensitive": [{"name": "region"}]},
        "staleness": {"time_column": "date", "windows": 2},
        "importance": {"repeats": 2},
        "tuning": {
            "n_trials": 2,
            "cv": 2,
            "in_pipeline": True,
            "space": {"max_depth": {"type": "int", "low": 2, "high": 6}},
        },
    }
    spec.update(changes)
    return spec


@dataclass
class RanProject:
    """A project directory after one pipeline run."""

    root: Path
    project: Project
    registry: Registry
    result: RunResult


def run(root: Path) -> tuple[RunResult, Registry, Project]:
    """Run the pipeline on the project in ``root``."""
    project = Project.load(root)
    registry = open_project_registry(project)
    return run_project(project, registry=registry), registry, project


@pytest.fixture(scope="module")
def ran_regions(tmp_path_factory: pytest.TempPathFactory) -> RanProject:
    """The region project, run once."""
    root = write_project(tmp_path_factory.mktemp("regions"), region_spec(), region_frame())
    result, registry, project = run(root)
    assert result.status == "succeeded", result.error
    return RanProject(root, project, registry, result)
