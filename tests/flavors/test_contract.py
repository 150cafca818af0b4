"""The contract every flavor adapter must pass, parametrised over the available flavors."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from readyml.errors import FlavorError, NotFittedError
from readyml.flavors import FLAVOR_FILE, ModelAdapter, build_model, load_model
from readyml.flavors._base import sha256_file

from . import helpers
from .conftest import Dataset

ENTRY_POINT = f"{helpers.fit_logistic.__module__}:fit_logistic"
LIBRARIES = {"sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm", "torch": "torch"}


@dataclass(frozen=True)
class Case:
    """One model configuration of the contract suite."""

    id: str
    flavor: str
    estimator: str | None
    dataset: str
    task: str = "classification"
    params: dict[str, Any] = field(default_factory=dict)
    entry_point: str | None = None
    seed: int = 7

    def build(self) -> ModelAdapter:
        return build_model(
            flavor=self.flavor,
            estimator=self.estimator,
            params=dict(self.params),
            entry_point=self.entry_point,
            task=self.task,
            categorical=[],
            numeric=[],
            seed=self.seed,
        )


TORCH_FAST = {"epochs": 8, "batch_size": 32, "lr": 0.01, "hidden": [16]}
CASES = [
    Case(
        "sklearn-random-forest",
        "sklearn",
        "sklearn.ensemble.RandomForestClassifier",
        "breast_cancer",
        params={"n_estimators": 15},
    ),
    Case(
        "sklearn-logistic-strings",
        "sklearn",
        "sklearn.linear_model.LogisticRegression",
        "iris_strings",
        params={"max_iter": 2000},
    ),
    Case(
        "sklearn-forest-strings",
        "sklearn",
        "sklearn.ensemble.RandomForestClassifier",
        "iris_strings",
        params={"n_estimators": 10},
    ),
    Case(
        "sklearn-regressor",
        "sklearn",
        "sklearn.ensemble.RandomForestRegressor",
        "diabetes",
        task="regression",
        params={"n_estimators": 15},
    ),
    Case("sklearn-entry-point", "sklearn", None, "iris_strings", entry_point=ENTRY_POINT),
    Case(
        "xgboost-strings",
        "xgboost",
        "xgboost.XGBClassifier",
        "iris_strings",
        params={"n_estimators": 15, "max_depth": 3},
    ),
    Case("xgboost-binary", "xgboost", None, "breast_cancer", params={"n_estimators": 15}),
    Case(
        "xgboost-regressor",
        "xgboost",
        "xgboost.XGBRegressor",
        "diabetes",
        task="regression",
        params={"n_estimators": 15},
    ),
    Case(
        "lightgbm-strings",
        "lightgbm",
        "lightgbm.LGBMClassifier",
        "iris_strings",
        params={"n_estimators": 15, "min_child_samples": 5},
    ),
    Case("lightgbm-binary", "lightgbm", None, "breast_cancer", params={"n_estimators": 15}),
    Case(
        "lightgbm-regressor",
        "lightgbm",
        None,
        "diabetes",
        task="regression",
        params={"n_estimators": 15},
    ),
    Case("torch-mlp-strings", "torch", None, "iris_strings", params=TORCH_FAST),
    Case(
        "torch-mlp-regressor",
        "torch",
        "readyml.flavors.torch:mlp",
        "diabetes",
        task="regression",
        params=TORCH_FAST,
    ),
]


def _param(case: Case) -> Any:
    library = LIBRARIES[case.flavor]
    missing = importlib.util.find_spec(library) is None
    reason = f"flavor {case.flavor!r}: library {library!r} is not installed"
    return pytest.param(case, id=case.id, marks=pytest.mark.skipif(missing, reason=reason))


@dataclass
class Fitted:
    """A case, its data, and the adapter fitted on it."""

    case: Case
    data: Dataset
    model: ModelAdapter


@pytest.fixture(scope="module", params=[_param(case) for case in CASES])
def fitted(request: pytest.FixtureRequest, datasets: dict[str, Dataset]) -> Fitted:
    case: Case = request.param
    data = datasets[case.dataset]
    model = case.build().fit(data.X_train, data.y_train, X_valid=data.X_valid, y_valid=data.y_valid)
    return Fitted(case, data, model)


def test_adapter_follows_the_protocol(fitted: Fitted) -> None:
    for method in ("fit", "predict", "predict_proba", "save", "signature"):
        assert callable(getattr(fitted.model, method))
    assert isinstance(fitted.model.has_proba, bool)
    assert hasattr(fitted.model, "classes_") == (fitted.case.task == "classification")
    assert fitted.model.flavor == fitted.case.flavor
    assert fitted.model.task == fitted.case.task


def test_predictions_have_one_entry_per_row_in_the_label_space(fitted: Fitted) -> None:
    predictions = fitted.model.predict(fitted.data.X_valid)
    assert predictions.shape == (len(fitted.data.X_valid),)
    if fitted.case.task == "classification":
        assert set(predictions.tolist()) <= set(fitted.data.y_train.tolist())
        assert fitted.model.classes_.tolist() == sorted(set(fitted.data.y_train.tolist()))
        accuracy = np.mean(predictions == fitted.data.y_valid)
        assert accuracy > 0.6
    else:
        assert np.issubdtype(predictions.dtype, np.floating)
        assert np.all(np.isfinite(predictions))


def test_predict_proba_rows_sum_to_one_in_classes_order(fitted: Fitted) -> None:
    model = fitted.model
    if fitted.case.task == "regression":
        assert not model.has_proba
        with pytest.raises(FlavorError):
            model.predict_proba(fitted.data.X_valid)
        return
    assert model.has_proba
    proba = model.predict_proba(fitted.data.X_valid)
    assert proba.shape == (len(fitted.data.X_valid), len(model.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(proba >= 0)
    # The most probable class is the predicted label.
    argmax_labels = model.classes_[np.argmax(proba, axis=1)]
    agreement = np.mean(argmax_labels == model.predict(fitted.data.X_valid))
    assert agreement > 0.97


def test_save_then_load_model_predicts_identically(fitted: Fitted, tmp_path: Path) -> None:
    written = fitted.model.save(tmp_path / "model")
    assert all(path.is_file() and path.parent == tmp_path / "model" for path in written)
    assert tmp_path / "model" / FLAVOR_FILE in written
    loaded = load_model(tmp_path / "model")
    assert type(loaded) is type(fitted.model)
    X = fitted.data.X_valid
    np.testing.assert_array_equal(loaded.predict(X), fitted.model.predict(X))
    if fitted.case.task == "classification":
        np.testing.assert_allclose(
            loaded.predict_proba(X), fitted.model.predict_proba(X), atol=1e-12
        )
        np.testing.assert_array_equal(loaded.classes_, fitted.model.classes_)
    assert loaded.signature() == fitted.model.signature()


def test_signature_lists_the_columns_and_output(fitted: Fitted) -> None:
    signature = fitted.model.signature()
    X = fitted.data.X_train
    assert [entry["name"] for entry in signature["inputs"]] == list(X.columns)
    assert all(entry["dtype"] for entry in signature["inputs"])
    assert signature["output"]["task"] == fitted.case.task
    assert signature["output"]["proba"] == fitted.model.has_proba
    if fitted.case.task == "classification":
        assert signature["output"]["classes"] == fitted.model.classes_.tolist()
    else:
        assert "classes" not in signature["output"]
    json.dumps(signature)
    if fitted.case.dataset == "iris_strings":
        dtypes = {entry["name"]: entry["dtype"] for entry in signature["inputs"]}
        assert dtypes["petal size"] == "string"
        assert dtypes["sepal length (cm)"] == "float64"


def test_same_seed_gives_the_same_predictions(fitted: Fitted) -> None:
    data = fitted.data
    again = fitted.case.build().fit(
        data.X_train, data.y_train, X_valid=data.X_valid, y_valid=data.y_valid
    )
    np.testing.assert_array_equal(again.predict(data.X_valid), fitted.model.predict(data.X_valid))
    if fitted.case.task == "classification":
        np.testing.assert_allclose(
            again.predict_proba(data.X_valid), fitted.model.predict_proba(data.X_valid), atol=1e-6
        )


def test_flavor_json_records_flavor_task_versions_classes_features_and_hashes(
    fitted: Fitted, tmp_path: Path
) -> None:
    fitted.model.save(tmp_path)
    content = json.loads((tmp_path / FLAVOR_FILE).read_text())
    assert content["flavor"] == fitted.case.flavor
    assert content["task"] == fitted.case.task
    assert content["versions"]["python"]
    assert [entry["name"] for entry in content["features"]] == list(fitted.data.X_train.columns)
    if fitted.case.task == "classification":
        assert content["classes"] == fitted.model.classes_.tolist()
    else:
        assert content["classes"] is None
    assert content["files"]
    for name, digest in content["files"].items():
        assert sha256_file(tmp_path / name) == digest
    assert "format" in content


def test_unfitted_adapter_raises_not_fitted(fitted: Fitted) -> None:
    with pytest.raises(NotFittedError, match="fit"):
        fitted.case.build().predict(fitted.data.X_valid)
