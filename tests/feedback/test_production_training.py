"""Labelled production examples in the pipeline: blended, weighted, reported apart, in lineage."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from readyml.config import Project
from readyml.feedback.review_import import import_review
from readyml.feedback.review_sets import review_root
from readyml.train import open_project_registry, run_project
from readyml.train.production_data import SOURCE_COLUMN, WEIGHT_COLUMN
from support import IRIS_SPEC, iris_frame, write_project

from .helpers import write_iris_set

ROWS = [*range(0, 50, 2), *range(50, 100, 2), *range(100, 150, 2)]  # 75 rows, each class


def label_set(project: Project, rows: list[int], ts: datetime | None = None) -> str:
    manifest, truth = write_iris_set(project.workspace, rows, ts=ts)
    frame = pd.read_csv(review_root(project.workspace) / manifest.id / "examples.csv")
    frame["label"] = truth["species"].to_numpy()
    path = project.workspace / f"{manifest.id}.csv"
    frame.to_csv(path, index=False)
    assert import_review(project.workspace, path, label="species").kept == len(rows)
    return manifest.id


def with_production(root: Path, production: dict[str, Any]) -> Project:
    spec = {**IRIS_SPEC, "data": {**IRIS_SPEC["data"], "production": production}}
    (root / "readyml.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return Project.load(root)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = write_project(tmp_path)
    project = Project.load(root)
    first = run_project(project, registry=open_project_registry(project))
    assert first.error is None
    registry = open_project_registry(project)
    registry.promote("iris:1", who="tests", reason="champion before production data")
    return project


def test_run_learns_from_production_examples_and_names_them(project: Project) -> None:
    set_id = label_set(project, ROWS)
    project = with_production(project.root, {"weight": 2.0, "window": "30d"})
    registry = open_project_registry(project)
    result = run_project(project, registry=registry)
    assert result.error is None, result.error

    data = result.value("data")
    production = data[data[SOURCE_COLUMN].notna()]
    assert len(production) == len(ROWS) and set(production[WEIGHT_COLUMN]) == {2.0}
    load = next(s for s in result.steps if s.name == "load")
    assert f"+ {len(ROWS)} production examples" in load.message
    profile = result.value("profile")
    assert not any(c["name"].startswith("_readyml_") for c in profile["columns"])

    version = registry.get(f"iris:{result.value('registered')['version']}")
    lineage = version.lineage["production"]
    assert lineage["review_sets"] == [set_id] and lineage["rows"] == len(ROWS)
    assert lineage["datasets"][0]["ref"] == "production:v1"
    assert [c["name"] for c in version.signature["inputs"]] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    window = result.value("metrics")["production_window"]
    assert window["rows"] > 0 and window["champion_version"] == 1
    assert 0.0 <= window["candidate"]["accuracy"] <= 1.0
    assert 0.0 <= window["champion"]["accuracy"] <= 1.0

    again = run_project(project, registry=registry)
    assert next(s for s in again.steps if s.name == "load").status == "skipped"


def test_new_labels_invalidate_the_cache_and_old_examples_age_out(project: Project) -> None:
    label_set(project, ROWS[:30], ts=datetime(2020, 1, 1, tzinfo=UTC))
    project = with_production(project.root, {"max_age": "30d"})
    registry = open_project_registry(project)
    aged = run_project(project, registry=registry)
    assert aged.error is None
    assert aged.value("production")["rows"] == 0
    assert "production_window" in aged.value("metrics")
    assert aged.value("metrics")["production_window"]["rows"] == 0

    label_set(project, ROWS[30:])
    fresh = run_project(project, registry=registry)
    assert next(s for s in fresh.steps if s.name == "load").status != "skipped"
    assert fresh.value("production")["rows"] == len(ROWS) - 30


def test_unknown_dataset_version_is_a_one_line_error(project: Project) -> None:
    label_set(project, ROWS[:10])
    project = with_production(project.root, {"datasets": [1, 7]})
    result = run_project(project, registry=open_project_registry(project))
    assert result.error is not None
    assert "data.production.datasets: expected stored versions [1], found [7]" in str(result.error)


def test_a_dataset_changed_after_a_run_fails_the_next_run_not_the_cache(project: Project) -> None:
    label_set(project, ROWS[:10])
    project = with_production(project.root, {"weight": 2.0})
    registry = open_project_registry(project)
    assert run_project(project, registry=registry).error is None
    path = project.workspace / "production" / "v0001" / "examples.parquet"
    stored = pd.read_parquet(path)
    stored.loc[0, "species"] = "virginica"
    stored.to_parquet(path, index=False)

    result = run_project(project, registry=registry)

    assert result.error is not None
    assert "production:v1: expected sha256" in str(result.error)


def test_a_time_split_trains_on_undated_production_examples(tmp_path: Path) -> None:
    frame = iris_frame().sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame["day"] = [str(d.date()) for d in pd.date_range("2024-01-01", periods=150)]
    split = {"method": "time", "time_column": "day", "cutoff": "2024-04-15"}
    spec = {**IRIS_SPEC, "split": split, "exclude": ["day"]}
    project = Project.load(write_project(tmp_path, spec, frame))
    label_set(project, ROWS)
    spec["data"] = {**IRIS_SPEC["data"], "production": {"weight": 1.0}}
    (tmp_path / "readyml.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), "utf-8")
    project = Project.load(tmp_path)
    result = run_project(project, registry=open_project_registry(project))
    assert result.error is None, result.error
    train, valid = result.value("train"), result.value("valid")
    # The examples have no day: they are learned from, never judged as the later period.
    assert train[SOURCE_COLUMN].notna().sum() == len(ROWS)
    assert valid[SOURCE_COLUMN].isna().all()
    split_step = next(s for s in result.steps if s.name == "split")
    assert split_step.message.endswith(f"({len(ROWS)} undated production examples in training)")
