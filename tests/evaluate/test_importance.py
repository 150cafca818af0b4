"""Feature importance: drop-column refits stay within their time budget."""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression

from readyml.evaluate.importance import feature_importance
from readyml.flavors.sklearn import SklearnModel
from support import iris_frame


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
