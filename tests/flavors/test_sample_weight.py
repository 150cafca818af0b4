"""Per-row sample weights in every flavor: all ones are no weights, weights count rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier

from readyml.errors import FlavorError
from readyml.flavors._base import check_sample_weight
from readyml.flavors.sklearn import SklearnModel

from . import helpers

ROWS = 120


def _frame(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two numbers and a string column; overlapping string labels so weights matter."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "x1": rng.normal(size=ROWS),
            "x2": rng.normal(size=ROWS),
            "color": pd.Series(rng.choice(["red", "green", "blue"], size=ROWS), dtype="str"),
        }
    )
    score = X["x1"] + 0.5 * (X["color"] == "red") + rng.normal(scale=1.0, size=ROWS)
    y = np.where(score > 0, "yes", "no").astype(object)
    return X, y


def _integer_weights() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 4, size=ROWS).astype(np.float64)


def _duplicated(X: pd.DataFrame, y: np.ndarray, weights: np.ndarray) -> tuple[Any, Any]:
    repeats = weights.astype(int)
    return X.loc[X.index.repeat(repeats)].reset_index(drop=True), np.repeat(y, repeats)


def _torch_model(**settings: Any) -> Any:
    from readyml.flavors.torch import TorchModel

    return TorchModel(
        factory_params={"hidden": [8]}, **{"epochs": 15, "batch_size": 32, **settings}
    )


def _xgboost_model() -> Any:
    xgboost = pytest.importorskip("xgboost")
    from readyml.flavors.xgboost import XGBoostModel

    return XGBoostModel(estimator=xgboost.XGBClassifier(n_estimators=10, max_depth=2))


def _lightgbm_model() -> Any:
    lightgbm = pytest.importorskip("lightgbm")
    from readyml.flavors.lightgbm import LightGBMModel

    estimator = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1, deterministic=True)
    return LightGBMModel(estimator=estimator)


def _torch_classifier() -> Any:
    pytest.importorskip("torch")
    return _torch_model()


def _sklearn_logistic() -> SklearnModel:
    return SklearnModel(estimator=LogisticRegression(max_iter=1000))


FLAVORS = {
    "sklearn": _sklearn_logistic,
    "xgboost": _xgboost_model,
    "lightgbm": _lightgbm_model,
    "torch": _torch_classifier,
}


# -- (a) all ones are exactly no weights -------------------------------------------------


@pytest.mark.parametrize("flavor", sorted(FLAVORS))
def test_all_ones_weights_predict_exactly_as_no_weights(flavor: str) -> None:
    X, y = _frame()
    plain = FLAVORS[flavor]().fit(X, y)
    ones = FLAVORS[flavor]().fit(X, y, sample_weight=np.ones(ROWS))
    np.testing.assert_array_equal(ones.predict_proba(X), plain.predict_proba(X))
    np.testing.assert_array_equal(ones.predict(X), plain.predict(X))


def test_all_ones_weights_are_no_weights() -> None:
    assert check_sample_weight([1, 1.0, 1], 3) is None
    assert check_sample_weight(None, 3) is None
    np.testing.assert_array_equal(check_sample_weight([0, 2, 1], 3), [0.0, 2.0, 1.0])


# -- (b) integer weights count rows ------------------------------------------------------


def test_sklearn_tree_integer_weights_equal_duplicated_rows() -> None:
    X, y = _frame()
    weights = _integer_weights()
    tree = DecisionTreeClassifier(max_depth=4, random_state=0)
    weighted = SklearnModel(estimator=tree).fit(X, y, sample_weight=weights)
    duplicated = SklearnModel(estimator=tree).fit(*_duplicated(X, y, weights))
    np.testing.assert_array_equal(weighted.predict_proba(X), duplicated.predict_proba(X))
    plain = SklearnModel(estimator=tree).fit(X, y)
    assert not np.array_equal(weighted.predict_proba(X), plain.predict_proba(X))


def test_sklearn_logistic_integer_weights_equal_duplicated_rows() -> None:
    X, y = _frame()
    weights = _integer_weights()
    weighted = _sklearn_logistic().fit(X, y, sample_weight=weights)
    duplicated = _sklearn_logistic().fit(*_duplicated(X, y, weights))
    np.testing.assert_allclose(
        weighted.predict_proba(X), duplicated.predict_proba(X), rtol=0, atol=1e-4
    )


def test_sklearn_weights_reach_the_last_step_of_a_user_pipeline() -> None:
    X, y = _frame()
    weights = _integer_weights()

    def pipeline() -> Pipeline:
        tree = DecisionTreeClassifier(max_depth=4, random_state=0)
        return Pipeline([("identity", FunctionTransformer()), ("tree", tree)])

    # Behind the preprocessing pipeline: fit(..., model__tree__sample_weight=...).
    weighted = SklearnModel(estimator=pipeline()).fit(X, y, sample_weight=weights)
    duplicated = SklearnModel(estimator=pipeline()).fit(*_duplicated(X, y, weights))
    np.testing.assert_array_equal(weighted.predict_proba(X), duplicated.predict_proba(X))


@pytest.mark.parametrize("flavor", sorted(FLAVORS))
def test_heavy_weights_on_one_class_raise_its_probability(flavor: str) -> None:
    X, y = _frame()
    weights = np.where(y == "yes", 10.0, 1.0)
    plain = FLAVORS[flavor]().fit(X, y)
    weighted = FLAVORS[flavor]().fit(X, y, sample_weight=weights)
    column = list(plain.classes_).index("yes")
    assert weighted.predict_proba(X)[:, column].mean() > plain.predict_proba(X)[:, column].mean()


def test_torch_regression_weights_pull_predictions_toward_heavy_rows() -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"noise": rng.normal(size=ROWS)})
    y = np.tile([0.0, 1.0], ROWS // 2)
    weights = np.where(y == 1.0, 9.0, 1.0)
    settings = {"task": "regression", "validation_fraction": 0.0, "lr": 0.01}
    plain = _torch_model(**settings).fit(X, y)
    weighted = _torch_model(**settings).fit(X, y, sample_weight=weights)
    # The weighted mean target is 0.9, the unweighted one 0.5.
    assert weighted.predict(X).mean() > plain.predict(X).mean() + 0.2


def test_torch_validation_loss_stays_unweighted() -> None:
    pytest.importorskip("torch")
    X, y = _frame()
    X_valid, y_valid = _frame(seed=1)
    weights = np.where(y == "yes", 10.0, 1.0)
    model = _torch_model(epochs=2, patience=10).fit(
        X, y, X_valid=X_valid, y_valid=y_valid, sample_weight=weights
    )
    outputs = model._forward(model.module_, model._inputs(X_valid))
    import torch

    loss = torch.nn.CrossEntropyLoss()(
        torch.from_numpy(outputs), torch.from_numpy(model._targets(y_valid, field="y_valid"))
    )
    assert model.history_[-1]["valid_loss"] == pytest.approx(float(loss.item()))


# -- (c) bad weights ---------------------------------------------------------------------

BAD_WEIGHTS = {
    "wrong length": (np.ones(ROWS - 1), r"expected 120 values \(one per row of X\), found 119"),
    "negative": (np.r_[-1.0, np.ones(ROWS - 1)], r"expected non-negative values, found 1"),
    "nan": (np.r_[np.nan, np.ones(ROWS - 1)], r"expected finite values, found 1 NaN"),
    "infinite": (np.r_[np.inf, np.ones(ROWS - 1)], r"expected finite values, found 1"),
    "all zero": (np.zeros(ROWS), r"expected at least one positive value, found all 120 zero"),
    "two-dimensional": (np.ones((ROWS, 1)), r"expected a one-dimensional array"),
    "not numbers": (["a"] * ROWS, r"expected numbers"),
}


@pytest.mark.parametrize("flavor", sorted(FLAVORS))
@pytest.mark.parametrize("case", sorted(BAD_WEIGHTS))
def test_bad_weights_are_a_flavor_error(flavor: str, case: str) -> None:
    X, y = _frame()
    weights, message = BAD_WEIGHTS[case]
    with pytest.raises(FlavorError, match=r"^sample_weight: " + message):
        FLAVORS[flavor]().fit(X, y, sample_weight=weights)


def test_torch_split_leaving_only_zero_weights_is_a_flavor_error() -> None:
    pytest.importorskip("torch")
    X, y = _frame()
    order = np.random.default_rng(0).permutation(ROWS)  # the split TorchModel(seed=0) makes
    weights = np.zeros(ROWS)
    weights[order[0]] = 1.0  # the only positive weight lands in the validation rows
    with pytest.raises(FlavorError, match="only zeros after the validation split"):
        _torch_model(validation_fraction=0.1).fit(X, y, sample_weight=weights)


def test_onnx_accepts_the_keyword_and_still_cannot_be_trained() -> None:
    from readyml.flavors.onnx import OnnxModel

    X, y = _frame()
    with pytest.raises(FlavorError, match="flavor 'onnx' cannot be trained"):
        OnnxModel(path=Path("model.onnx")).fit(X, y, sample_weight=np.ones(ROWS))


# -- (d) estimators and entry points without weights -------------------------------------


def test_sklearn_estimator_without_sample_weight_is_a_flavor_error() -> None:
    X, y = _frame()
    model = SklearnModel(estimator=KNeighborsClassifier())
    with pytest.raises(
        FlavorError, match=r"model KNeighborsClassifier: does not accept sample weights"
    ):
        model.fit(X, y, sample_weight=_integer_weights())
    assert model.fit(X, y).predict(X).shape == (ROWS,)
    assert model.fit(X, y, sample_weight=np.ones(ROWS)).predict(X).shape == (ROWS,)


def test_sklearn_entry_point_refuses_weights_but_accepts_all_ones() -> None:
    X, y = _frame()
    model = SklearnModel(entry_point=f"{helpers.fit_logistic.__module__}:fit_logistic")
    with pytest.raises(FlavorError, match=r"entry points do not take sample weights"):
        model.fit(X, y, sample_weight=_integer_weights())
    assert model.fit(X, y, sample_weight=np.ones(ROWS)).predict(X).shape == (ROWS,)
