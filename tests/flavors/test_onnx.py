"""The ONNX flavor matches scikit-learn on graphs converted with skl2onnx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from readyml.errors import FlavorError
from readyml.flavors import FLAVOR_FILE, load_model
from readyml.flavors.onnx import OnnxModel

from .conftest import Dataset

skl2onnx = pytest.importorskip("skl2onnx")
pytest.importorskip("onnxruntime")
from skl2onnx.common.data_types import FloatTensorType, StringTensorType  # noqa: E402


def _write(model: Any, initial_types: list[Any], path: Path, *, zipmap: bool = False) -> Path:
    options = {id(model): {"zipmap": zipmap}} if hasattr(model, "predict_proba") else None
    onx = skl2onnx.convert_sklearn(
        model, initial_types=initial_types, options=options, target_opset=17
    )
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.fixture
def numeric_pipeline(datasets: dict[str, Dataset]) -> tuple[Pipeline, Dataset]:
    data = datasets["iris_strings"]
    X = data.X_train.select_dtypes("number")
    model = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=1000))])
    return model.fit(X, data.y_train), data


def test_single_input_graph_matches_sklearn(
    numeric_pipeline: tuple[Pipeline, Dataset], tmp_path: Path
) -> None:
    model, data = numeric_pipeline
    path = _write(model, [("input", FloatTensorType([None, 3]))], tmp_path / "lr.onnx")
    onnx_model = OnnxModel(path=path)
    X = data.X_valid  # the string column is left out: one graph input takes the numerics
    expected = model.predict(X.select_dtypes("number"))
    np.testing.assert_array_equal(onnx_model.predict(X), expected)
    np.testing.assert_allclose(
        onnx_model.predict_proba(X), model.predict_proba(X.select_dtypes("number")), atol=1e-5
    )
    assert onnx_model.classes_.tolist() == model.classes_.tolist()
    assert onnx_model.has_proba


def test_zipmap_output_is_turned_into_a_matrix(
    numeric_pipeline: tuple[Pipeline, Dataset], tmp_path: Path
) -> None:
    model, data = numeric_pipeline
    path = _write(model, [("input", FloatTensorType([None, 3]))], tmp_path / "z.onnx", zipmap=True)
    X = data.X_valid.select_dtypes("number")
    np.testing.assert_allclose(
        OnnxModel(path=path).predict_proba(X), model.predict_proba(X), atol=1e-5
    )


def test_one_input_per_column_graph_with_strings_matches_sklearn(
    datasets: dict[str, Dataset], tmp_path: Path
) -> None:
    data = datasets["iris_strings"]
    numeric = [name for name in data.X_train.columns if name != "petal size"]
    model = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), ["petal size"]),
                        ("numeric", StandardScaler(), numeric),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=1000)),
        ]
    ).fit(data.X_train, data.y_train)
    initial_types = [
        (name, StringTensorType([None, 1]) if name == "petal size" else FloatTensorType([None, 1]))
        for name in data.X_train.columns
    ]
    path = _write(model, initial_types, tmp_path / "columns.onnx")
    onnx_model = OnnxModel(path=path)
    np.testing.assert_array_equal(onnx_model.predict(data.X_valid), model.predict(data.X_valid))
    np.testing.assert_allclose(
        onnx_model.predict_proba(data.X_valid), model.predict_proba(data.X_valid), atol=1e-5
    )
    signature = onnx_model.signature()
    assert len(signature["inputs"]) == len(data.X_train.columns)
    assert signature["output"]["classes"] == model.classes_.tolist()

    saved = onnx_model.save(tmp_path / "saved")
    assert tmp_path / "saved" / FLAVOR_FILE in saved
    loaded = load_model(tmp_path / "saved")
    np.testing.assert_array_equal(loaded.predict(data.X_valid), model.predict(data.X_valid))

    with pytest.raises(FlavorError, match="column 'petal_size': required by the ONNX graph"):
        onnx_model.predict(data.X_valid.drop(columns=["petal size"]))


def test_regression_graph_matches_sklearn(datasets: dict[str, Dataset], tmp_path: Path) -> None:
    data = datasets["diabetes"]
    model = LinearRegression().fit(data.X_train, data.y_train)
    path = _write(model, [("input", FloatTensorType([None, 10]))], tmp_path / "reg.onnx")
    onnx_model = OnnxModel(path=path, task="regression")
    predictions = onnx_model.predict(data.X_valid)
    assert predictions.shape == (len(data.X_valid),)
    np.testing.assert_allclose(predictions, model.predict(data.X_valid), rtol=1e-4)
    assert not onnx_model.has_proba


def test_onnx_model_cannot_be_trained(datasets: dict[str, Dataset]) -> None:
    data = datasets["iris_strings"]
    with pytest.raises(FlavorError, match="flavor 'onnx' cannot be trained"):
        OnnxModel(path=Path("model.onnx")).fit(data.X_train, data.y_train)


def test_unreadable_graph_is_a_flavor_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not a graph")
    with pytest.raises(FlavorError, match="ONNX Runtime cannot load it"):
        OnnxModel(path=path).open()


def test_probabilities_rounded_below_zero_are_not_read_as_scores(tmp_path: Path) -> None:
    # A binary forest's graph gives [1 - p, p] in float32: p = 1 leaves -1.2e-07, not a logit.
    import onnx
    from onnx import TensorProto, helper

    one = onnx.numpy_helper.from_array(np.ones((1, 1), dtype=np.float32), "one")
    graph = helper.make_graph(
        [
            helper.make_node("Sub", ["one", "p"], ["q"]),
            helper.make_node("Concat", ["q", "p"], ["probabilities"], axis=1),
        ],
        "binary",
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[one],
    )
    path = tmp_path / "binary.onnx"
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    )
    onnx_model = OnnxModel(path=path, classes=["no", "yes"])
    X = pd.DataFrame({"p": np.asarray([1.0000001, 0.25], dtype=np.float32)})

    proba = onnx_model.predict_proba(X)

    np.testing.assert_allclose(proba, [[0.0, 1.0], [0.75, 0.25]], atol=1e-6)
    assert proba.min() >= 0.0
