"""Production examples blended into training: labels and features keep their source types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from feedback.helpers import write_set
from readyml.config import Project
from readyml.errors import DataError
from readyml.feedback.review_import import import_review
from readyml.feedback.review_sets import review_root
from readyml.train.production_data import SOURCE_COLUMN, _as_type, blend_production
from support import IRIS_SPEC, write_project


def test_boolean_text_is_read_not_cast() -> None:
    values = pd.Series(["False", "True", "false", "TRUE", "0", "1", 0.0, True, np.False_])
    got = _as_type(values, pd.Series([True]), "t")
    assert got.dtype == bool
    assert got.tolist() == [False, True, False, True, False, True, False, True, False]


@pytest.mark.parametrize("bad", ["yes", "", 2])
def test_a_boolean_that_cannot_be_read_is_an_error_naming_it(bad: object) -> None:
    with pytest.raises(DataError) as caught:
        _as_type(pd.Series(["True", bad], dtype=object), pd.Series([True]), "t")
    assert str(caught.value) == (
        f"production data: column 't' expected true, false, 1 or 0, found {bad!r}"
    )


def test_a_boolean_served_as_null_stays_missing() -> None:
    got = _as_type(pd.Series(["True", None, "false"], dtype=object), pd.Series([True]), "t")
    assert got.dtype == "boolean" and got.isna().tolist() == [False, True, False]


def labelled_project(root: Path, source: pd.DataFrame, label: str = "target") -> Project:
    """A project on ``source`` (label ``label``) that trains on production data."""
    spec: dict[str, Any] = {
        **IRIS_SPEC,
        "name": "t",
        "label": label,
        "data": {"source": "data/iris.csv", "production": {"weight": 1.0}},
        "gates": {},
    }
    write_project(root, spec, source)
    return Project.load(root)


def imported(
    project: Project,
    rows: pd.DataFrame,
    classes: list[str],
    labels: list[Any],
    label: str = "target",
) -> None:
    """``rows`` captured as a review set, labelled ``labels`` in its CSV, imported."""
    manifest = write_set(project.workspace, rows, label=label, classes=classes)
    frame = pd.read_csv(review_root(project.workspace) / manifest.id / "examples.csv")
    frame["label"] = pd.Series(labels, dtype=object)
    path = project.root / "filled.csv"
    frame.to_csv(path, index=False)
    result = import_review(project.workspace, path, label=label)
    assert result.rejected == 0, result.problems


@pytest.mark.parametrize(
    ("target", "classes", "labels", "expected"),
    [
        ([True, False], ["False", "True"], ["false", "TRUE", "0", "1"], [False, True, False, True]),
        ([0.0, 1.0], ["0.0", "1.0"], ["1", "1.0", "0", "0.0"], [1.0, 1.0, 0.0, 0.0]),
        ([0, 1], ["0", "1"], ["1.0", "1", "0.0", "0"], [1, 1, 0, 0]),
    ],
)
def test_labels_of_every_class_type_reach_training_as_labelled(
    tmp_path: Path, target: list[Any], classes: list[str], labels: list[str], expected: list[Any]
) -> None:
    source = pd.DataFrame({"x": [0.1, 0.2], "target": target})
    project = labelled_project(tmp_path, source)
    imported(project, pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}), classes, labels)
    blended, summary = blend_production(source, project)
    production = blended[blended[SOURCE_COLUMN].notna()]
    assert summary["rows"] == 4 and blended["target"].dtype == source["target"].dtype
    assert production.sort_values("x")["target"].tolist() == expected


def test_a_label_called_label_is_stored_under_its_own_name(tmp_path: Path) -> None:
    # Datasets written before features were ever renamed call such a label 'label'.
    source = pd.DataFrame({"x": [0.1, 0.2], "label": ["a", "b"]})
    project = labelled_project(tmp_path, source, label="label")
    imported(project, pd.DataFrame({"x": [1.0, 2.0]}), ["a", "b"], ["b", "a"], label="label")
    stored = pd.read_parquet(next((project.workspace / "production").glob("v*/examples.parquet")))
    assert "label" in stored.columns and "feature:label" not in stored.columns
    blended, summary = blend_production(source, project)
    assert summary["rows"] == 2
    assert blended[blended[SOURCE_COLUMN].notna()].sort_values("x")["label"].tolist() == ["b", "a"]
