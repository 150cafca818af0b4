"""runtime: auto: the parity-checked ONNX export runs when its recorded latency is lower."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from readyml.compress import Methods, Splits, compress_version, export_onnx
from readyml.compress.demo import register_trained
from readyml.errors import FlavorError
from readyml.flavors import load_model
from readyml.flavors.sklearn import SklearnModel
from readyml.predict import Predictor, choose_runtime
from readyml.registry import ModelVersion, Registry, open_registry
from readyml.types import VersionStatus

ROW = {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5}


@pytest.fixture(scope="module")
def splits() -> Splits:
    from sklearn.datasets import load_iris

    frame, target = load_iris(return_X_y=True, as_frame=True)
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    labels = np.asarray(["setosa", "versicolor", "virginica"])[target.to_numpy()]
    order = np.random.default_rng(0).permutation(len(frame))
    X: pd.DataFrame = frame.iloc[order].reset_index(drop=True)
    y = labels[order]
    return Splits(X.iloc[:100], y[:100], X.iloc[100:].reset_index(drop=True), y[100:])


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return open_registry(tmp_path / "workspace")


def _parent(registry: Registry, splits: Splits, estimator: object | None = None) -> ModelVersion:
    from sklearn.linear_model import LogisticRegression

    model = SklearnModel(
        estimator=LogisticRegression(max_iter=500) if estimator is None else estimator
    )
    return register_trained(registry, "iris", model.fit(splits.X_train, splits.y_train), splits)


def _export(
    registry: Registry,
    parent: ModelVersion,
    tmp_path: Path,
    *,
    onnx_ms: float,
    native_ms: float,
    status: VersionStatus = "blessed",
) -> ModelVersion:
    """Register an ONNX export of ``parent`` with the latencies a compression run would record."""
    base = load_model(registry.download(parent, tmp_path / "parent"))
    export_onnx(base, tmp_path / "export.onnx").save(tmp_path / "onnx")
    return registry.register(
        parent.name,
        files={p.name: p for p in (tmp_path / "onnx").iterdir()},
        model_fingerprint=f"onnx-of-{parent.ref}",
        lineage={"compression": {"name": "onnx", "parity": {"passed": True}}},
        metrics={
            "compression": {
                "latency_ms": {"1": onnx_ms, "64": 2 * onnx_ms},
                "base_latency_ms": {"1": native_ms, "64": 2 * native_ms},
            }
        },
        signature=parent.signature,
        status=status,
        parent_version=parent.version,
    )


def test_auto_runs_a_faster_export_under_the_original_name_and_version(
    registry: Registry, splits: Splits, tmp_path: Path
) -> None:
    parent = _parent(registry, splits)
    export = _export(registry, parent, tmp_path, onnx_ms=0.05, native_ms=1.2)
    predictor = Predictor.load(registry, parent.ref, runtime="auto")
    metadata = predictor.metadata()
    assert (metadata["name"], metadata["version"]) == ("iris", parent.version)
    assert (metadata["runtime"], metadata["flavor"]) == ("onnx", "onnx")
    assert metadata["runtime_choice"] == (
        f"auto: onnx export {export.ref} p50 0.05 ms < native 1.2 ms at batch 1"
    )
    native = Predictor.load(registry, parent.ref)
    part, _ = predictor.from_records([ROW])
    fast, slow = predictor.predict_parts([part]), native.predict_parts([part])
    assert fast.labels_list == slow.labels_list == ["virginica"]
    assert fast.proba is not None and slow.proba is not None
    assert np.allclose(fast.proba, slow.proba, atol=1e-4)


def test_auto_stays_native_when_the_export_is_slower(
    registry: Registry, splits: Splits, tmp_path: Path
) -> None:
    parent = _parent(registry, splits)
    export = _export(registry, parent, tmp_path, onnx_ms=0.05, native_ms=0.04)
    predictor = Predictor.load(registry, parent.ref, runtime="auto")
    assert (predictor.runtime, predictor.model.flavor) == ("native", "sklearn")
    assert predictor.runtime_choice == (
        f"auto: native p50 0.04 ms <= onnx export {export.ref} 0.05 ms at batch 1"
    )


def test_auto_stays_native_without_an_export(registry: Registry, splits: Splits) -> None:
    parent = _parent(registry, splits)
    predictor = Predictor.load(registry, parent.ref, runtime="auto")
    assert predictor.metadata()["runtime"] == "native"
    assert predictor.metadata()["runtime_choice"] == (
        f"auto: native, no parity-checked onnx export of {parent.ref}"
    )


def test_auto_ignores_a_vetoed_export(registry: Registry, splits: Splits, tmp_path: Path) -> None:
    parent = _parent(registry, splits)
    _export(registry, parent, tmp_path, onnx_ms=0.05, native_ms=1.2, status="vetoed")
    assert choose_runtime(registry, parent).runtime == "native"


def test_auto_stays_native_when_no_latency_was_recorded(
    registry: Registry, splits: Splits, tmp_path: Path
) -> None:
    parent = _parent(registry, splits)
    _export(registry, parent, tmp_path, onnx_ms=float("nan"), native_ms=1.2)
    choice = choose_runtime(registry, parent)
    assert (choice.runtime, choice.version) == ("native", parent)
    assert "no recorded latency at batch 1" in choice.reason


def test_auto_picks_onnx_for_a_forest_after_a_real_compression_run(
    registry: Registry, splits: Splits
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    parent = _parent(registry, splits, RandomForestClassifier(n_estimators=50, random_state=0))
    report = compress_version(registry, parent.ref, splits, Methods(format="onnx"))
    predictor = Predictor.load(registry, f"{parent.name}:{parent.version}", runtime="auto")
    assert predictor.runtime == "onnx", predictor.runtime_choice
    assert report.rows[1].ref in predictor.runtime_choice
    assert predictor.version == parent.version


def test_an_unknown_runtime_names_the_choices(registry: Registry, splits: Splits) -> None:
    parent = _parent(registry, splits)
    with pytest.raises(FlavorError, match=r"\['native', 'onnx', 'auto'\], found 'fast'"):
        Predictor.load(registry, parent.ref, runtime="fast")  # type: ignore[arg-type]
