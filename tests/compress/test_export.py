"""ONNX export: parity with the parent for every supported flavor, and clear refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from readyml.compress import Splits, compare, export_onnx
from readyml.compress.parity import EXPORT_MIN_IDENTICAL, EXPORT_TOLERANCE
from readyml.errors import FlavorError
from readyml.flavors import ModelAdapter, load_model


def _sklearn() -> ModelAdapter:
    from sklearn.linear_model import LogisticRegression

    from readyml.flavors.sklearn import SklearnModel

    return SklearnModel(estimator=LogisticRegression(max_iter=500))


def _xgboost() -> ModelAdapter:
    import xgboost

    from readyml.flavors.xgboost import XGBoostModel

    return XGBoostModel(estimator=xgboost.XGBClassifier(n_estimators=5, max_depth=3))


def _lightgbm() -> ModelAdapter:
    import lightgbm

    from readyml.flavors.lightgbm import LightGBMModel

    return LightGBMModel(estimator=lightgbm.LGBMClassifier(n_estimators=5, verbose=-1))


def _torch() -> ModelAdapter:
    from readyml.flavors.torch import TorchModel

    return TorchModel(factory_params={"hidden": [8]}, epochs=2)


@pytest.mark.parametrize("build", [_sklearn, _xgboost, _lightgbm, _torch])
def test_export_matches_parent_on_validation_rows(
    build: Any, iris_splits: Splits, tmp_path: Path
) -> None:
    parent = build().fit(iris_splits.X_train, iris_splits.y_train)
    exported = export_onnx(parent, tmp_path / "model.onnx")
    parity = compare(
        parent,
        exported,
        iris_splits.X_valid,
        tolerance=EXPORT_TOLERANCE,
        min_identical=EXPORT_MIN_IDENTICAL,
    )
    assert parity.passed, parity
    assert (
        exported.predict(iris_splits.X_valid).tolist()
        == parent.predict(iris_splits.X_valid).tolist()
    )
    saved = load_model(Path(exported.save(tmp_path / "saved")[0]).parent)
    assert saved.predict_proba(iris_splits.X_valid.head(64)).shape == (50, 3)


def test_torch_image_model_exports_with_dynamic_batch(tmp_path: Path) -> None:
    from readyml.flavors.torch import TorchModel

    images = np.random.default_rng(0).random((40, 1, 4, 4)).astype(np.float32)
    labels = np.arange(40) % 2
    parent = TorchModel(factory_params={"hidden": [4]}, epochs=1).fit(images, labels)
    exported = export_onnx(parent, tmp_path / "model.onnx")
    for batch in (1, 7, 40):
        difference = exported.predict_proba(images[:batch]) - parent.predict_proba(images[:batch])
        assert np.abs(difference).max() < EXPORT_TOLERANCE


def test_regression_export_keeps_target_units(iris_splits: Splits, tmp_path: Path) -> None:
    from readyml.flavors.torch import TorchModel

    target = iris_splits.X_train["sepal_length"].to_numpy()
    parent = TorchModel(task="regression", factory_params={"hidden": [4]}, epochs=2)
    parent.fit(iris_splits.X_train.drop(columns="sepal_length"), target)
    frame = iris_splits.X_valid.drop(columns="sepal_length")
    exported = export_onnx(parent, tmp_path / "model.onnx")
    assert np.abs(exported.predict(frame) - parent.predict(frame)).max() < 1e-4


def test_histogram_gradient_boosting_is_refused_by_name(
    iris_splits: Splits, tmp_path: Path
) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from readyml.flavors.sklearn import SklearnModel

    parent = SklearnModel(estimator=HistGradientBoostingClassifier(max_iter=3))
    parent.fit(iris_splits.X_train, iris_splits.y_train)
    with pytest.raises(FlavorError, match="model HistGradientBoostingClassifier: skl2onnx"):
        export_onnx(parent, tmp_path / "model.onnx")


def test_export_of_an_unknown_flavor_names_the_supported_ones(tmp_path: Path) -> None:
    class Stub:
        flavor = "custom"

    with pytest.raises(FlavorError, match="supports"):
        export_onnx(Stub(), tmp_path / "model.onnx")  # type: ignore[arg-type]


def test_parameter_count_includes_a_linear_model_s_coefficients(
    iris_splits: Splits, tmp_path: Path
) -> None:
    from readyml.compress._onnx import parameter_count

    parent = _sklearn().fit(iris_splits.X_train, iris_splits.y_train)
    export_onnx(parent, tmp_path / "model.onnx")
    # 3 classes x (4 measurements + 2 one-hot sites) coefficients and 3 intercepts, at least
    assert parameter_count(tmp_path / "model.onnx") >= 3 * 6 + 3


_EXPORT = """
import sys
from pathlib import Path
from readyml.compress.export import export_onnx
from readyml.flavors import load_model
export_onnx(load_model(Path(sys.argv[1])), Path(sys.argv[2]))
"""


def test_a_repeated_export_writes_the_same_bytes(iris_splits: Splits, tmp_path: Path) -> None:
    """skl2onnx lists opsets in set order, which changes with the process's hash seed."""
    import os
    import subprocess
    import sys

    parent = _sklearn().fit(iris_splits.X_train, iris_splits.y_train)
    parent.save(tmp_path / "parent")
    exported = []
    for seed in ("0", "1", "3"):  # 0 and 1 gave different opset orders before they were sorted
        path = tmp_path / f"seed{seed}.onnx"
        subprocess.run(
            [sys.executable, "-c", _EXPORT, str(tmp_path / "parent"), str(path)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        )
        exported.append(path.read_bytes())
    assert exported[1:] == exported[:-1]


def test_opsets_are_listed_by_domain() -> None:
    import onnx

    from readyml.compress.export import sorted_opsets

    graph = onnx.helper.make_model(
        onnx.helper.make_graph([], "g", [], []),
        opset_imports=[onnx.helper.make_opsetid("ai.onnx.ml", 1), onnx.helper.make_opsetid("", 17)],
    )
    sorted_opsets(graph)
    assert [(o.domain, o.version) for o in graph.opset_import] == [("", 17), ("ai.onnx.ml", 1)]
