"""Feature importance: drop-column refits stay within their time budget, and a model of one
feature is not refitted without it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from readyml.config import Project
from readyml.evaluate.importance import (
    feature_cost,
    feature_importance,
    permutation_importance,
)
from readyml.flavors.sklearn import SklearnModel
from readyml.train import open_project_registry, run_project
from support import IRIS_SPEC, iris_frame, write_project


def test_drop_column_refits_beyond_the_budget_are_skipped_and_say_why() -> None:
    frame = iris_frame()
    X, y = frame.drop(columns=["species"]), frame["species"].to_numpy()
    refits: list[str] = []

    def refit(column: str) -> SklearnModel:
        refits.append(column)
        return SklearnModel(estimator=LogisticRegression(max_iter=500)).fit(
            X.drop(columns=[column]), y
        )

    model = SklearnModel(estimator=LogisticRegression(max_iter=500)).fit(X, y)
    within = feature_importance(model, X, y, metric="accuracy", refit=refit)
    assert within["method"] == "permutation + drop-column" and len(refits) == 4
    refits.clear()
    beyond = feature_importance(model, X, y, metric="accuracy", refit=refit, refit_budget_s=1e-9)
    assert beyond["method"] == "permutation" and refits == ["sepal_length"]
    assert beyond["drop_column_skipped"].startswith("4 refits of ")
    assert beyond["drop_column_skipped"].endswith("above importance.drop_column_max_s (1e-09 s)")
    assert all("drop_column" not in f for f in beyond["features"].values())


def test_a_project_of_one_feature_trains_and_says_why_drop_column_was_skipped(
    tmp_path: Path,
) -> None:
    frame = iris_frame()[["petal_length", "species"]]
    project = Project.load(write_project(tmp_path, IRIS_SPEC, frame))
    result = run_project(project, registry=open_project_registry(project))
    assert result.status == "succeeded", result.error
    importance = result.value("metrics")["importance"]
    assert importance["method"] == "permutation"
    assert importance["drop_column_skipped"] == (
        "a single feature: no model can be refitted without it"
    )


def test_a_feature_that_never_helps_is_named_with_its_losses() -> None:
    frame = iris_frame().assign(zeros=0.0)
    X, y = frame[["petal_length", "petal_width", "zeros"]], frame["species"].to_numpy()

    def refit(column: str) -> SklearnModel:
        return SklearnModel(estimator=LogisticRegression(max_iter=500)).fit(
            X.drop(columns=[column]), y
        )

    model = SklearnModel(estimator=LogisticRegression(max_iter=500)).fit(X, y)
    found = feature_importance(model, X, y, metric="accuracy", refit=refit)
    assert found["not_helping"] == ["zeros"]
    assert found["reason"] == (
        "expected every feature to improve accuracy, found one that does not: zeros (loss of "
        "accuracy when shuffled: +0 ± 0; when refitted without it: +0); drop it or find out why"
    )


def test_features_too_costly_to_build_are_named_with_their_time() -> None:
    X = iris_frame().drop(columns=["species"])
    assert "reason" not in feature_cost(X)
    found = feature_cost(X, max_feature_ms=1e-9)
    assert found["too_costly"] == list(X.columns)
    assert found["reason"].startswith(
        "expected each feature's input column to take at most 1e-09 ms per 1,000 rows to "
        "build (importance.max_feature_ms), found 4 slower: sepal_length ("
    )


def test_the_importance_band_is_students_t_over_the_repeats() -> None:
    frame = iris_frame()
    X, y = frame.drop(columns=["species"]), frame["species"].to_numpy()
    model = SklearnModel(estimator=LogisticRegression(max_iter=500)).fit(X, y)
    found = permutation_importance(model, X, y, metric="accuracy", repeats=3)
    petal = found["features"]["petal_width"]
    assert petal["std"] > 0
    # t(0.975, 2) = 4.303, where a normal quantile (1.96) gives a band half as wide.
    expected = 4.302653 * petal["std"] / math.sqrt(3)
    assert petal["high"] - petal["mean"] == pytest.approx(expected, rel=1e-5)
    assert petal["mean"] - petal["low"] == pytest.approx(expected, rel=1e-5)


def test_one_repeat_gives_no_band_so_a_positive_loss_is_uncertain() -> None:
    frame = iris_frame().assign(zeros=0.0)
    X, y = frame[["petal_length", "petal_width", "zeros"]], frame["species"].to_numpy()
    model = SklearnModel(estimator=LogisticRegression(max_iter=500)).fit(X, y)
    found = feature_importance(model, X, y, metric="accuracy", repeats=1)
    petal = found["features"]["petal_length"]
    assert petal["mean"] > 0 and petal["verdict"] == "uncertain"
    assert petal["std"] is None and petal["low"] is None and petal["high"] is None
    assert found["not_helping"] == ["zeros"]
    assert "zeros (loss of accuracy when shuffled: +0 (one repeat: no band))" in found["reason"]
