"""Errors a user can cause name the thing, what was expected, and what was found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio

from readyml.errors import FlavorError
from readyml.flavors import FLAVOR_FILE, build_model, load_model
from readyml.flavors._base import _checksum, write_flavor_file
from readyml.flavors._imports import import_library, import_object
from readyml.flavors.sklearn import SklearnModel

from . import helpers
from .conftest import Dataset


def _build(**overrides: Any) -> Any:
    spec: dict[str, Any] = {
        "flavor": "sklearn",
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 5},
        "entry_point": None,
        "task": "classification",
        "categorical": [],
        "numeric": [],
        "seed": 0,
    }
    spec.update(overrides)
    return build_model(**spec)


@pytest.fixture
def saved(tmp_path: Path, datasets: dict[str, Dataset]) -> Path:
    data = datasets["iris_strings"]
    _build().fit(data.X_train, data.y_train).save(tmp_path / "model")
    return tmp_path / "model"


def test_unknown_flavor_names_the_choices() -> None:
    with pytest.raises(
        FlavorError, match=r"model.flavor: expected one of \[.*'sklearn'.*found 'sklern'"
    ):
        _build(flavor="sklern")


def test_bad_class_path_names_the_module() -> None:
    message = (
        "model.estimator 'sklearn.ensemble.RandomForrestClassifier': "
        "no such class in module 'sklearn.ensemble'"
    )
    with pytest.raises(FlavorError, match=message):
        _build(estimator="sklearn.ensemble.RandomForrestClassifier")


def test_unimportable_module_is_named() -> None:
    with pytest.raises(FlavorError, match=r"cannot import module 'sklearnx.ensemble'"):
        _build(estimator="sklearnx.ensemble.RandomForestClassifier")


def test_a_module_raising_at_import_is_one_flavor_error_naming_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_at_import.py").write_text("import os\nvalue = 1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(FlavorError) as raised:
        _build(estimator=None, entry_point="broken_at_import:fit")
    message = str(raised.value)
    assert message.startswith("model.entry_point 'broken_at_import:fit': cannot import module")
    assert (
        "ZeroDivisionError at " in message and "broken_at_import.py:2: division by zero" in message
    )


def test_an_entry_point_returning_an_unfitted_estimator_is_refused(
    datasets: dict[str, Dataset],
) -> None:
    data = datasets["iris_strings"]
    model = _build(estimator=None, entry_point=f"{helpers.__name__}:unfitted_logistic")
    with pytest.raises(FlavorError, match=r"found an unfitted LogisticRegression"):
        model.fit(data.X_train, data.y_train)


def test_a_duck_typed_entry_point_model_is_not_judged_unfitted(
    datasets: dict[str, Dataset],
) -> None:
    data = datasets["iris_strings"]
    model = _build(estimator=None, entry_point=f"{helpers.__name__}:fit_duck")
    assert len(model.fit(data.X_train, data.y_train).predict(data.X_valid)) == len(data.X_valid)


def test_path_without_module_is_refused() -> None:
    with pytest.raises(FlavorError, match=r"expected a dotted path"):
        import_object("RandomForestClassifier", field="model.estimator")


def test_bad_param_name_suggests_the_right_one() -> None:
    message = (
        r"model.params: RandomForestClassifier has no parameter 'n_estimator' "
        r"\(did you mean 'n_estimators'\?\)"
    )
    with pytest.raises(FlavorError, match=message):
        _build(params={"n_estimator": 10})


def test_bad_param_value_fails_at_fit(datasets: dict[str, Dataset]) -> None:
    data = datasets["iris_strings"]
    model = _build(params={"n_estimators": "many"})
    with pytest.raises(FlavorError, match=r"RandomForestClassifier: fit failed"):
        model.fit(data.X_train, data.y_train)


def test_classifier_for_regression_task_is_refused() -> None:
    with pytest.raises(FlavorError, match=r"expected a regressor, found a classifier"):
        _build(task="regression")


def test_unknown_task_is_refused() -> None:
    with pytest.raises(FlavorError, match=r"model.task: expected one of"):
        _build(task="ranking")


def test_sklearn_without_estimator_or_entry_point_is_refused() -> None:
    with pytest.raises(FlavorError, match=r"expected an estimator class path"):
        _build(estimator=None)


def test_missing_entry_point_function_is_named() -> None:
    with pytest.raises(FlavorError, match=r"no such function in module"):
        _build(estimator=None, entry_point=f"{helpers.__name__}:no_such_function")


def test_declared_column_missing_from_frame(datasets: dict[str, Dataset]) -> None:
    data = datasets["iris_strings"]
    model = _build(categorical=["colour"])
    with pytest.raises(FlavorError, match=r"column 'colour' \(declared categorical\): missing"):
        model.fit(data.X_train, data.y_train)


def test_lightgbm_bad_param_name() -> None:
    pytest.importorskip("lightgbm")
    with pytest.raises(FlavorError, match=r"LGBMClassifier has no parameter 'num_leafs'"):
        _build(flavor="lightgbm", estimator=None, params={"num_leafs": 3})


def test_lightgbm_accepts_core_parameter_aliases() -> None:
    pytest.importorskip("lightgbm")
    _build(
        flavor="lightgbm", estimator=None, params={"min_data_in_leaf": 3, "feature_fraction": 0.9}
    )


def test_xgboost_unused_param_name_fails_at_fit(datasets: dict[str, Dataset]) -> None:
    pytest.importorskip("xgboost")
    data = datasets["iris_strings"]
    model = _build(flavor="xgboost", estimator=None, params={"n_estimator": 3})
    with pytest.raises(FlavorError, match=r"XGBClassifier has no parameter 'n_estimator'"):
        model.fit(data.X_train, data.y_train)


def test_torch_bad_factory_param_name() -> None:
    pytest.importorskip("torch")
    with pytest.raises(FlavorError, match=r"model.params: mlp has no parameter 'hiden'"):
        _build(flavor="torch", estimator=None, params={"hiden": [3]})


def test_torch_factory_must_return_a_module(datasets: dict[str, Dataset]) -> None:
    pytest.importorskip("torch")
    data = datasets["iris_strings"]
    model = _build(flavor="torch", estimator=f"{helpers.__name__}:not_a_module", params={})
    with pytest.raises(FlavorError, match=r"expected a factory returning torch.nn.Module"):
        model.fit(data.X_train, data.y_train)


def test_onnx_cannot_be_built_for_training() -> None:
    pytest.importorskip("onnxruntime")
    with pytest.raises(FlavorError, match=r"flavor 'onnx' cannot be trained"):
        _build(flavor="onnx", estimator=None)


def test_missing_library_names_the_extra() -> None:
    with pytest.raises(FlavorError, match=r"pip install 'readyml\[xgboost\]'"):
        import_library("readyml_no_such_library", flavor="xgboost")


def test_unseen_validation_label_is_named(datasets: dict[str, Dataset]) -> None:
    pytest.importorskip("xgboost")
    data = datasets["iris_strings"]
    model = _build(flavor="xgboost", estimator=None, params={"n_estimators": 2})
    y_valid = data.y_valid.copy()
    y_valid[0] = "daisy"
    with pytest.raises(FlavorError, match=r"y_valid: labels must be among .* found \['daisy'\]"):
        model.fit(data.X_train, data.y_train, X_valid=data.X_valid, y_valid=y_valid)


def test_missing_flavor_json(tmp_path: Path) -> None:
    with pytest.raises(FlavorError, match=f"expected {FLAVOR_FILE}, found none"):
        load_model(tmp_path)


def test_flavor_json_that_is_not_json(saved: Path) -> None:
    (saved / FLAVOR_FILE).write_text("{not json")
    with pytest.raises(FlavorError, match=r"not valid JSON"):
        load_model(saved)


def test_edited_flavor_json_fails_its_checksum(saved: Path) -> None:
    content = json.loads((saved / FLAVOR_FILE).read_text())
    content["classes"] = ["setosa", "versicolor", "daisy"]
    (saved / FLAVOR_FILE).write_text(json.dumps(content))
    with pytest.raises(FlavorError, match=r"does not match its checksum"):
        load_model(saved)


def test_flavor_json_missing_keys(saved: Path) -> None:
    (saved / FLAVOR_FILE).write_text(json.dumps({"flavor": "sklearn"}))
    with pytest.raises(FlavorError, match=r"expected keys"):
        load_model(saved)


def test_unknown_flavor_in_flavor_json(saved: Path) -> None:
    content = json.loads((saved / FLAVOR_FILE).read_text())
    content["flavor"] = "caffe"
    content["checksum"] = _checksum(content)
    (saved / FLAVOR_FILE).write_text(json.dumps(content))
    with pytest.raises(FlavorError, match=r"flavor.json flavor: expected one of .* found 'caffe'"):
        load_model(saved)


def test_changed_model_file_fails_its_sha256(saved: Path) -> None:
    with (saved / "model.skops").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(FlavorError, match=r"model file 'model.skops': sha256 differs"):
        load_model(saved)


def test_skops_file_with_untrusted_type_is_refused(
    tmp_path: Path, datasets: dict[str, Dataset]
) -> None:
    data = datasets["iris_strings"]
    estimator = helpers.MajorityClassifier().fit(data.X_train, data.y_train)
    path = tmp_path / "model.skops"
    sio.dump(estimator, path)
    write_flavor_file(
        tmp_path,
        flavor="sklearn",
        task="classification",
        files=[path],
        features=[{"name": "x", "dtype": "float64"}],
        classes=estimator.classes_,
        libraries=["scikit-learn"],
        extra={"format": "skops"},
    )
    with pytest.raises(FlavorError, match=r"refusing to load types .*MajorityClassifier"):
        load_model(tmp_path)


def test_flavor_json_cannot_switch_a_model_to_pickle(saved: Path) -> None:
    content = json.loads((saved / FLAVOR_FILE).read_text())
    content["format"] = "joblib"
    content["checksum"] = _checksum(content)
    (saved / FLAVOR_FILE).write_text(json.dumps(content))
    with pytest.raises(FlavorError, match=r"pass allow_pickle=True only if you trust"):
        load_model(saved)


def test_untrusted_estimator_needs_allow_pickle_to_save_and_load(
    tmp_path: Path, datasets: dict[str, Dataset]
) -> None:
    data = datasets["iris_strings"]
    entry_point = f"{helpers.__name__}:fit_majority"
    model = _build(estimator=None, entry_point=entry_point).fit(data.X_train, data.y_train)
    with pytest.raises(
        FlavorError, match=r"reviewed allow-list .*MajorityClassifier.*allow_pickle"
    ):
        model.save(tmp_path / "refused")
    assert not (tmp_path / "refused" / "model.skops").exists()

    pickled = _build(estimator=None, entry_point=entry_point, allow_pickle=True)
    pickled.fit(data.X_train, data.y_train).save(tmp_path / "pickled")
    assert json.loads((tmp_path / "pickled" / FLAVOR_FILE).read_text())["format"] == "joblib"
    with pytest.raises(FlavorError, match=r"saved with joblib"):
        load_model(tmp_path / "pickled")
    loaded = load_model(tmp_path / "pickled", allow_pickle=True)
    np.testing.assert_array_equal(loaded.predict(data.X_valid), model.predict(data.X_valid))


def test_hist_gradient_boosting_loads_through_the_reviewed_allow_list(
    tmp_path: Path, datasets: dict[str, Dataset]
) -> None:
    data = datasets["iris_strings"]
    model = _build(
        estimator="sklearn.ensemble.HistGradientBoostingClassifier", params={"max_iter": 5}
    ).fit(data.X_train, data.y_train)
    model.save(tmp_path)
    np.testing.assert_array_equal(
        load_model(tmp_path).predict(data.X_valid), model.predict(data.X_valid)
    )


def test_classifier_without_proba_says_so(datasets: dict[str, Dataset]) -> None:
    data = datasets["iris_strings"]
    model = SklearnModel(estimator=__import__("sklearn.svm").svm.SVC()).fit(
        data.X_train, data.y_train
    )
    assert not model.has_proba
    assert model.signature()["output"]["proba"] is False
    with pytest.raises(FlavorError, match=r"expected a classifier with predict_proba, found none"):
        model.predict_proba(data.X_valid)


def test_trusted_types_let_skops_store_and_load_the_caller_s_own_class(
    tmp_path: Path, datasets: dict[str, Dataset]
) -> None:
    data = datasets["iris_strings"]
    entry_point = f"{helpers.__name__}:fit_majority"
    own = f"{helpers.__name__}.MajorityClassifier"
    refused = _build(estimator=None, entry_point=entry_point).fit(data.X_train, data.y_train)
    with pytest.raises(FlavorError) as info:
        refused.save(tmp_path / "refused")
    assert str(info.value).startswith("model MajorityClassifier: skops can store it only")
    assert f"declare them in readyml.yaml as model.trusted_types: [{own}]" in str(info.value)

    model = _build(estimator=None, entry_point=entry_point, trusted_types=[own])
    model.fit(data.X_train, data.y_train).save(tmp_path / "trusted")
    assert json.loads((tmp_path / "trusted" / FLAVOR_FILE).read_text())["format"] == "skops"
    with pytest.raises(FlavorError, match=r"refusing to load .*model.trusted_types: \["):
        load_model(tmp_path / "trusted")  # the model's own files never vouch for a type
    loaded = load_model(tmp_path / "trusted", trusted_types=[own])
    np.testing.assert_array_equal(loaded.predict(data.X_valid), model.predict(data.X_valid))


@pytest.mark.parametrize(
    ("flavor", "base"), [("xgboost", "xgboost.XGBModel"), ("lightgbm", "lightgbm.LGBMModel")]
)
def test_a_boosting_flavor_with_another_library_s_estimator_is_one_line(
    flavor: str, base: str
) -> None:
    with pytest.raises(FlavorError) as info:
        _build(flavor=flavor, estimator="sklearn.linear_model.LogisticRegression", params={})
    assert str(info.value) == (
        f"model.estimator: flavor '{flavor}' expected a subclass of {base}, found "
        "'sklearn.linear_model.LogisticRegression' (use flavor: sklearn for it, or leave "
        "model.estimator out for the default)"
    )
