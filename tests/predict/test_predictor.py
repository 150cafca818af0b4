"""The Predictor: loading a registered version (native and ONNX), signature checks, layouts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from readyml.errors import FlavorError
from readyml.flavors.sklearn import SklearnModel
from readyml.predict import InvalidInput, NonFiniteOutput, Predictor
from readyml.registry import Registry, open_registry
from readyml.serve.infra_validation import PROBE_TENSORS, InfraValidator

ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture(scope="module")
def registry_with_iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from serve.conftest import train_iris

    root = train_iris(tmp_path_factory.mktemp("iris-predict"))
    return root / ".readyml"


@pytest.mark.parametrize("runtime", ["native", "onnx"])
def test_load_and_predict_agree_across_runtimes(registry_with_iris: Path, runtime: str) -> None:
    registry = open_registry(registry_with_iris)
    predictor = Predictor.load(registry, "iris@champion", runtime=runtime)  # type: ignore[arg-type]
    part, rows = predictor.from_records([ROW, ROW | {"petal_length": 5.5, "petal_width": 2.1}])
    prediction = predictor.predict_parts([part, part])
    assert rows == 2 and prediction.rows == 4
    assert prediction.labels_list[:2] == ["setosa", "virginica"]
    assert prediction.proba is not None
    assert np.allclose(prediction.proba.sum(axis=1), 1.0)
    assert predictor.metadata()["runtime"] == runtime


def test_fast_path_matches_the_full_pipeline(registry_with_iris: Path) -> None:
    predictor = Predictor.load(open_registry(registry_with_iris), "iris:1")
    block = np.random.default_rng(0).uniform(0, 8, size=(50, 4))
    fast = predictor.predict_input(block).proba
    full = predictor.model.predict_proba(predictor.frame(block))
    assert fast is not None and np.allclose(fast, full)


def _mixed_predictor() -> Predictor:
    frame = pd.DataFrame(
        {
            "size": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "count": [1, 2, 3, 4, 5, 6],
            "city": ["a", "b", "a", "b", "a", "b"],
        }
    )
    model = SklearnModel(estimator=LogisticRegression()).fit(frame, ["x", "x", "x", "y", "y", "y"])
    return Predictor(model=model, name="mixed", version=1, signature=model.signature())


def test_mixed_features_are_checked_per_column() -> None:
    predictor = _mixed_predictor()
    assert predictor.layout == "mixed"
    part, _ = predictor.from_records([{"size": 5.0, "count": 5, "city": "a"}])
    assert predictor.predict_parts([part]).labels_list == ["y"]
    with pytest.raises(InvalidInput, match="feature 'count': expected an integer"):
        predictor.from_records([{"size": 5.0, "count": 5.5, "city": "a"}])
    with pytest.raises(InvalidInput, match="feature 'city': expected a string"):
        predictor.from_columns({"size": [1.0], "count": [1], "city": [3]})
    with pytest.raises(InvalidInput, match="expected 1 values"):
        predictor.from_columns({"size": [1.0], "count": [1, 2], "city": ["a"]})


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"sepal_length": 1.0}, "feature 'sepal_width': expected a number, found no such field"),
        (ROW | {"sepal_width": "3"}, "feature 'sepal_width': expected a number, found string"),
        (ROW | {"sepal_width": None}, "found null"),
        (ROW | {"sepal_width": False}, "found boolean false"),
    ],
)
def test_numeric_records_name_the_bad_field(
    registry_with_iris: Path, record: dict[str, object], message: str
) -> None:
    predictor = Predictor.load(open_registry(registry_with_iris), "iris:1")
    with pytest.raises(InvalidInput, match=message):
        predictor.from_records([ROW, record])


def test_a_2d_tensor_must_have_one_column_per_feature(registry_with_iris: Path) -> None:
    predictor = Predictor.load(open_registry(registry_with_iris), "iris:1")
    with pytest.raises(InvalidInput, match=r"expected shape \[N, 4\]"):
        predictor.from_tensor(np.zeros((2, 3)))
    _, rows = predictor.from_tensor(np.ones((2, 4), dtype=np.float32))
    assert rows == 2


def _registered_torch_model(tmp_path: Path) -> Registry:
    torch_flavor = pytest.importorskip("readyml.flavors.torch")
    frame = pd.DataFrame(
        np.random.default_rng(0).normal(size=(120, 4)), columns=[f"x{i}" for i in range(4)]
    )
    labels = np.where(frame["x0"] > 0, "up", "down")
    model = torch_flavor.TorchModel(epochs=2, seed=1).fit(frame, labels)
    files = model.save(tmp_path / "model")
    registry = open_registry(tmp_path / ".readyml")
    registry.register(
        "mlp",
        files={path.name: path for path in files},
        model_fingerprint="fp",
        signature=model.signature(),
    )
    return registry


def test_load_places_a_torch_model_and_refuses_a_missing_gpu(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    registry = _registered_torch_model(tmp_path)
    on_cpu = Predictor.load(registry, "mlp:1", device="cpu")
    auto = Predictor.load(registry, "mlp:1", device="auto")
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert str(next(auto.model.module_.parameters()).device) == expected  # type: ignore[attr-defined]
    row = {"x0": 0.5, "x1": -1.0, "x2": 0.1, "x3": 2.0}
    first = on_cpu.predict_parts([on_cpu.from_records([row])[0]])
    second = auto.predict_parts([auto.from_records([row])[0]])
    assert first.labels_list == second.labels_list
    assert first.proba is not None and second.proba is not None
    np.testing.assert_allclose(first.proba, second.proba, atol=1e-5)
    if not torch.cuda.is_available():
        with pytest.raises(FlavorError, match="expected one of 0 CUDA device"):
            Predictor.load(registry, "mlp:1", device="cuda")


class _TensorModel:
    task = "regression"


@pytest.mark.parametrize(
    ("rows", "found"),
    [
        ([[1.0, "a"]], "found text"),
        ([[1.0, 2.0], [3.0]], "found ragged rows"),
        ([[1e300, 1.0]], r"expected numbers within float32's range .* found number 1e\+300"),
    ],
)
def test_tensor_rows_that_are_not_numbers_of_one_shape_are_refused(
    rows: list[list[object]], found: str
) -> None:
    signature = {"inputs": [{"name": "x", "dtype": "float32", "shape": [None, 2]}], "output": {}}
    predictor = Predictor(model=_TensorModel(), name="t", version=1, signature=signature)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=found):
        predictor.from_rows(rows)


@pytest.mark.parametrize("runtime", ["native", "onnx"])
def test_served_numbers_past_float32_are_refused_by_every_runtime(
    registry_with_iris: Path, runtime: str
) -> None:
    # ONNX Runtime answers such numbers where scikit-learn raises: serving refuses both alike.
    predictor = Predictor.load(open_registry(registry_with_iris), "iris@champion", runtime=runtime)  # type: ignore[arg-type]
    good, _ = predictor.from_records([ROW])
    for value in (1e39, -np.inf):
        bad = np.array([[value, 3.5, 1.4, 0.2]])
        with pytest.raises(InvalidInput, match="sepal_length: expected a finite number within"):
            predictor.serve_parts([good, bad])
    assert predictor.serve_parts([good]).labels_list == ["setosa"]


class _SoftmaxModel:
    """A tensor classifier whose probabilities overflow to NaN past exp's range."""

    task = "classification"

    def predict_proba(self, data: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            scores = np.exp(data.astype(np.float64))
            proba: np.ndarray = scores / scores.sum(axis=1, keepdims=True)
            return proba


def _softmax_predictor() -> Predictor:
    signature = {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 2]}],
        "output": {"task": "classification", "classes": ["a", "b"], "proba": True},
    }
    return Predictor(model=_SoftmaxModel(), name="t", version=1, signature=signature)  # type: ignore[arg-type]


def test_served_tensors_refuse_nan_in_and_nan_out() -> None:
    predictor = _softmax_predictor()
    good, _ = predictor.from_tensor(np.array([[0.0, 1.0]], dtype=np.float32))
    nan_in, _ = predictor.from_tensor(np.array([[np.nan, 1.0]], dtype=np.float32))
    overflow, _ = predictor.from_tensor(np.array([[1000.0, 1000.0]], dtype=np.float32))
    with pytest.raises(InvalidInput, match=r"input: expected finite numbers .* found NaN"):
        predictor.serve_parts([good, nan_in])
    with pytest.raises(NonFiniteOutput, match="NaN or infinity in 1 of 2 row") as raised:
        predictor.serve_parts([good, overflow])
    assert raised.value.rows == 1 and raised.value.status_code == 422
    assert predictor.serve_parts([good]).labels_list == ["b"]
    # Offline prediction keeps answering what the model answers.
    assert predictor.predict_parts([overflow]).rows == 1


def test_infra_validation_replays_a_tensor_model_from_its_signature() -> None:
    predictor = _softmax_predictor()
    version = SimpleNamespace(input_example=[])
    report, loaded = InfraValidator().run(
        "t:1",
        load=lambda ref: predictor,
        version=version,  # type: ignore[arg-type]
    )
    assert report.passed and loaded is predictor, report.reason
    assert report.details["replayed_rows"] == PROBE_TENSORS


def test_a_served_nan_reaches_the_model_as_offline_prediction_does(
    registry_with_iris: Path,
) -> None:
    # serve_parts passes its float32 check on to the fast path; a NaN must not ride along
    # into the direct functions (they would answer NaN probabilities: a 422, not the model's
    # own verdict).
    predictor = Predictor.load(open_registry(registry_with_iris), "iris@champion")
    good, _ = predictor.from_records([ROW])
    nan_row = np.array([[np.nan, 3.5, 1.4, 0.2]])
    try:
        offline: object = predictor.predict_parts([good, nan_row]).labels_list
    except Exception as exc:  # whatever the model says, serving must say too
        offline = type(exc)
    try:
        served: object = predictor.serve_parts([good, nan_row]).labels_list
    except Exception as exc:
        served = type(exc)
    assert served == offline
    assert predictor.serve_parts([good]).labels_list == ["setosa"]
