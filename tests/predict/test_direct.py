"""Direct probabilities: the same numbers as predict_proba, for the estimators they cover."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression

from readyml.flavors.sklearn import SklearnModel
from readyml.predict import Predictor
from readyml.predict.direct import direct_proba, fits_float32, probe_rows


def _data(classes: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(
        300, 8, n_informative=5, n_classes=classes, n_clusters_per_class=1, random_state=0
    )
    return x, y


ESTIMATORS = {
    "logistic": lambda: LogisticRegression(max_iter=500),
    "boosting": lambda: GradientBoostingClassifier(n_estimators=20, random_state=0),
    "boosting-zero-init": lambda: GradientBoostingClassifier(
        n_estimators=20, init="zero", random_state=0
    ),
    "forest": lambda: RandomForestClassifier(n_estimators=15, random_state=0),
    "extra-trees": lambda: ExtraTreesClassifier(n_estimators=15, random_state=0),
}


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_direct_probabilities_equal_predict_proba(kind: str, classes: int) -> None:
    x, y = _data(classes)
    estimator = ESTIMATORS[kind]().fit(x, y)
    direct = direct_proba(estimator)
    assert direct is not None
    rows = np.vstack([x[:64], probe_rows(x.shape[1])])
    for batch in (rows[:1], rows[:7], rows):
        found = direct(np.ascontiguousarray(batch))
        assert found.shape == (len(batch), classes)
        assert np.abs(found - estimator.predict_proba(batch)).max() <= 1e-12


def _uncovered() -> list[Any]:
    x, y = _data(2)
    custom_init = GradientBoostingClassifier(
        n_estimators=5, init=LogisticRegression(), random_state=0
    ).fit(x, y)
    two_outputs = RandomForestClassifier(n_estimators=3, random_state=0).fit(
        x, np.column_stack([y, 1 - y])
    )
    histogram = HistGradientBoostingClassifier(max_iter=5).fit(x, y)
    return [custom_init, two_outputs, histogram]


def test_estimators_it_does_not_cover_keep_the_public_path() -> None:
    assert [direct_proba(estimator) for estimator in _uncovered()] == [None, None, None]


def test_fits_float32_refuses_what_a_tree_cannot_compare() -> None:
    assert fits_float32(np.array([[0.0, -3e38, 3e38]]))
    assert not fits_float32(np.array([[0.0, 1e39]]))
    assert not fits_float32(np.array([[np.nan, 1.0]]))
    assert not fits_float32(np.array([[-np.inf, 1.0]]))


def _predictor(estimator: Any) -> Predictor:
    x, y = _data(3)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    model = SklearnModel(estimator=estimator).fit(frame, [f"c{v}" for v in y])
    return Predictor(model=model, name="m", version=1, signature=model.signature())


@pytest.mark.parametrize("kind", ["logistic", "forest"])
def test_the_predictor_answers_through_the_direct_path(kind: str) -> None:
    predictor = _predictor(ESTIMATORS[kind]())
    assert predictor._direct is not None
    block = np.random.default_rng(1).normal(size=(40, 8))
    proba = predictor.predict_input(block).proba
    expected = predictor.model.predict_proba(predictor.frame(block))
    assert proba is not None and np.abs(proba - expected).max() <= 1e-12


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_values_past_float32_reach_scikit_learn_and_its_checks() -> None:
    predictor = _predictor(ESTIMATORS["forest"]())
    block = np.zeros((2, 8))
    block[1, 3] = 1e300
    with pytest.raises(ValueError, match="too large"):
        predictor.predict_input(block)


def test_a_number_past_float32_is_named_as_the_requests_fault() -> None:
    predictor = _predictor(ESTIMATORS["forest"]())
    block = np.zeros((2, 8))
    block[1, 3] = -1e300
    error = predictor.beyond_float32(block)
    assert error is not None and error.status_code == 400
    assert error.field == "f3" and error.found == "number -1e+300"
    block[1, 3] = np.inf
    error = predictor.beyond_float32({"f0": np.zeros(2), "f5": block[:, 3]})
    assert error is not None and error.field == "f5" and error.found == "number inf"
    block[1, 3] = np.nan  # nulls are judged by the request's own checks
    assert predictor.beyond_float32(block) is None


def test_large_batches_go_to_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    from readyml.predict import predictor as predictor_module

    predictor = _predictor(ESTIMATORS["logistic"]())
    calls: list[int] = []
    direct = predictor._direct
    assert direct is not None

    def counted(data: np.ndarray) -> np.ndarray:
        calls.append(len(data))
        return direct(data)

    monkeypatch.setattr(predictor, "_direct", counted)
    monkeypatch.setattr(predictor_module, "DIRECT_MAX_ROWS", 10)
    rng = np.random.default_rng(2)
    predictor.predict_input(rng.normal(size=(10, 8)))
    large = predictor.predict_input(rng.normal(size=(11, 8)))
    assert calls == [10] and large.rows == 11


@pytest.mark.parametrize("classes", [2, 3])
def test_onnx_runtime_sums_the_same_trees_as_scikit_learn(classes: int) -> None:
    pytest.importorskip("onnxruntime")
    from readyml.predict.tree_ensemble import boosting_raw_scores

    x, y = _data(classes)
    estimator = GradientBoostingClassifier(n_estimators=30, max_depth=4, random_state=0)
    estimator.fit(x, y)
    raw_scores = boosting_raw_scores(estimator)
    assert raw_scores is not None
    rows = np.vstack([x, probe_rows(x.shape[1])])
    start = estimator._raw_predict_init(rows[:1].astype(np.float32))[0]
    expected = estimator.decision_function(rows).reshape(len(rows), -1)
    assert np.abs(raw_scores(rows) + start - expected).max() <= 1e-12


def test_boosting_batches_take_onnx_runtime_up_to_the_limit_and_scikit_learn_past_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("onnxruntime")
    from readyml.predict import direct as direct_module
    from readyml.predict import tree_ensemble

    compiled_rows: list[int] = []
    built = tree_ensemble.boosting_raw_scores

    def counting(estimator: Any) -> Any:
        raw_scores = built(estimator)
        assert raw_scores is not None

        def counted(data: np.ndarray) -> np.ndarray:
            compiled_rows.append(len(data))
            return raw_scores(data)

        return counted

    monkeypatch.setattr(tree_ensemble, "boosting_raw_scores", counting)
    x, y = _data(2)
    estimator = ESTIMATORS["boosting"]().fit(x, y)
    direct = direct_proba(estimator)
    assert direct is not None
    limit = direct_module.COMPILED_MAX_ROWS
    for rows in (1, limit, limit + 1):
        batch = np.ascontiguousarray(np.resize(x, (rows, x.shape[1])))
        assert np.abs(direct(batch) - estimator.predict_proba(batch)).max() <= 1e-12
    probe = len(probe_rows(x.shape[1]))  # checked against predict_proba at load
    assert compiled_rows == [probe, 1, limit]


@pytest.mark.parametrize("kind", ["boosting", "forest"])
def test_without_onnx_runtime_trees_keep_scikit_learns_path(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    from readyml.predict.tree_ensemble import boosting_raw_scores, forest_proba

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    x, y = _data(2)
    estimator = ESTIMATORS[kind]().fit(x, y)
    compile_trees = boosting_raw_scores if kind == "boosting" else forest_proba
    assert compile_trees(estimator) is None
    direct = direct_proba(estimator)
    assert direct is not None
    assert np.abs(direct(x[:5].copy()) - estimator.predict_proba(x[:5])).max() <= 1e-12


@pytest.mark.parametrize("classes", [2, 3])
def test_onnx_runtime_answers_a_forests_probabilities(classes: int) -> None:
    pytest.importorskip("onnxruntime")
    from readyml.predict.tree_ensemble import forest_proba

    x, y = _data(classes)
    estimator = RandomForestClassifier(n_estimators=25, min_samples_leaf=2, random_state=0)
    estimator.fit(x, y)
    proba = forest_proba(estimator)
    assert proba is not None
    rows = np.vstack([x, probe_rows(x.shape[1])])
    assert np.abs(proba(rows) - estimator.predict_proba(rows)).max() <= 1e-12


def test_a_forests_probabilities_never_pass_one() -> None:
    pytest.importorskip("onnxruntime")
    from sklearn.datasets import load_iris

    from readyml.predict.tree_ensemble import forest_proba

    x, y = load_iris(return_X_y=True)
    estimator = RandomForestClassifier(n_estimators=100, random_state=0).fit(x, y)
    proba = forest_proba(estimator)
    assert proba is not None
    answered = proba(x)
    # Summing fractions already divided by the trees gave 1.0000000000000007 here.
    assert answered.max() == 1.0 and answered.min() >= 0.0
    assert np.array_equal(answered, estimator.predict_proba(x))


def test_a_tree_that_is_one_leaf_is_a_root_every_row_passes() -> None:
    pytest.importorskip("onnxruntime")
    from readyml.predict.tree_ensemble import boosting_raw_scores

    x = np.ones((40, 3))  # nothing to split on: every tree is its root leaf
    y = np.arange(40) % 2
    estimator = GradientBoostingClassifier(n_estimators=3, random_state=0).fit(x, y)
    assert estimator.estimators_[0, 0].tree_.node_count == 1
    raw_scores = boosting_raw_scores(estimator)
    assert raw_scores is not None
    start = estimator._raw_predict_init(x[:1].astype(np.float32))[0]
    expected = estimator.decision_function(x[:2]).reshape(2, 1)
    assert np.abs(raw_scores(x[:2].copy()) + start - expected).max() <= 1e-12


@pytest.mark.parametrize("kind", ["boosting", "forest"])
def test_a_runtime_that_disagrees_leaves_scikit_learns_trees_to_answer(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    from readyml.predict import tree_ensemble

    def single_precision(estimator: Any) -> Any:
        return lambda data: np.full((len(data), 1 if kind == "boosting" else 2), 0.25)

    name = "boosting_raw_scores" if kind == "boosting" else "forest_proba"
    monkeypatch.setattr(tree_ensemble, name, single_precision)
    x, y = _data(2)
    estimator = ESTIMATORS[kind]().fit(x, y)
    direct = direct_proba(estimator)
    assert direct is not None
    batch = np.ascontiguousarray(x[:3])
    assert np.abs(direct(batch) - estimator.predict_proba(batch)).max() <= 1e-12
