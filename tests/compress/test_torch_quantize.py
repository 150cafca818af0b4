"""--quantize torch-int8: torch's dynamic int8 as a gated, measured, loadable torch version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch import nn

from readyml.compress import Methods, Splits, compress_version
from readyml.compress.demo import register_trained
from readyml.compress.torch_quantize import METHOD, quantize_torch_dynamic
from readyml.errors import ConfigError, FlavorError
from readyml.flavors import load_model
from readyml.flavors.torch import TorchModel
from readyml.registry import Registry


def conv_only(n_inputs: int, n_outputs: int) -> nn.Module:
    """A network with no Linear layer: one convolution over 4×4 images, flattened."""
    return nn.Sequential(nn.Conv2d(1, n_outputs, 4), nn.Flatten())


def _mlp(splits: Splits) -> TorchModel:
    model = TorchModel(factory_params={"hidden": [128, 128]}, epochs=30, lr=1e-2, seed=0)
    return model.fit(splits.X_train, splits.y_train)


def test_torch_int8_version_is_smaller_gated_and_loads_back(
    registry: Registry, iris_splits: Splits, tmp_path: Path
) -> None:
    parent = register_trained(registry, "iris", _mlp(iris_splits), iris_splits)
    report = compress_version(
        registry, parent.ref, iris_splits, Methods(quantize="torch-int8"), max_quality_loss=0.05
    )
    base, row = report.rows
    assert (row.method, row.flavor, row.decision) == (METHOD, "torch", "blessed")
    assert row.size_bytes * 2 < base.size_bytes
    assert row.parameters == base.parameters
    accuracy = row.quality["valid"]["accuracy"]
    assert accuracy >= base.quality["valid"]["accuracy"] - 0.05
    assert row.parity is not None and row.parity["identical"] >= 0.95
    assert set(row.latency_ms) == {"1", "64"}
    version = registry.get(row.ref)
    assert version.parent_version == parent.version
    assert version.lineage["compression"]["layers"] == ["1", "3", "5"]
    assert version.metrics["compression"]["base_latency_ms"] == base.latency_ms
    loaded = load_model(registry.download(version, tmp_path / "int8"))
    assert np.mean(loaded.predict(iris_splits.X_valid) == iris_splits.y_valid) == accuracy


def test_saved_int8_model_predicts_exactly_as_before_saving(
    iris_splits: Splits, tmp_path: Path
) -> None:
    quantized = quantize_torch_dynamic(_mlp(iris_splits))
    quantized.save(tmp_path)
    loaded = load_model(tmp_path)
    expected = quantized.predict_proba(iris_splits.X_valid)
    assert np.array_equal(loaded.predict_proba(iris_splits.X_valid), expected)


def test_a_network_without_linear_layers_is_refused_naming_its_layers() -> None:
    images = np.random.default_rng(0).uniform(size=(40, 1, 4, 4)).astype(np.float32)
    labels = np.arange(40) % 2
    model = TorchModel(factory=f"{__name__}:conv_only", epochs=1).fit(images, labels)
    with pytest.raises(FlavorError, match=r"nothing to quantize.*\['Conv2d', 'Flatten'\]"):
        quantize_torch_dynamic(model)


def test_a_non_torch_model_is_refused(registry: Registry, iris_splits: Splits) -> None:
    from sklearn.linear_model import LogisticRegression

    from readyml.flavors.sklearn import SklearnModel

    model = SklearnModel(estimator=LogisticRegression(max_iter=500))
    parent = register_trained(
        registry, "iris", model.fit(iris_splits.X_train, iris_splits.y_train), iris_splits
    )
    with pytest.raises(FlavorError, match="expected a torch model, found flavor 'sklearn'"):
        compress_version(registry, parent.ref, iris_splits, Methods(quantize="torch-int8"))


def test_quantizing_twice_is_refused(iris_splits: Splits) -> None:
    quantized = quantize_torch_dynamic(_mlp(iris_splits))
    with pytest.raises(FlavorError, match="already quantized"):
        quantize_torch_dynamic(quantized)


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        (Methods(quantize="torch-int8", static=True), "dynamic only"),
        (Methods(quantize="int4"), r"expected one of \['int8', 'torch-int8'\], found 'int4'"),
    ],
)
def test_bad_quantize_options_are_config_errors(methods: Methods, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        methods.check()
