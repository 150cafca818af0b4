"""A parent that is already quantized, or has nothing to prune, is refused in one line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from readyml.compress import Methods, Splits, compress_version
from readyml.compress.demo import register_trained
from readyml.compress.prune import prune_unstructured
from readyml.compress.torch_quantize import quantize_torch_dynamic
from readyml.errors import FlavorError
from readyml.flavors.torch import TorchModel
from readyml.registry import ModelVersion, Registry


class Affine(nn.Module):
    """A bare weight matrix: trainable, but neither a Linear nor a Conv layer."""

    def __init__(self, n_inputs: int, n_outputs: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(n_inputs, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.scale


def affine_only(n_inputs: int, n_outputs: int) -> nn.Module:
    """A network with no Linear or Conv layer."""
    return nn.Sequential(Affine(n_inputs, n_outputs))


def _mlp(splits: Splits) -> TorchModel:
    model = TorchModel(factory_params={"hidden": [16]}, epochs=10, lr=1e-2, seed=0)
    return model.fit(splits.X_train, splits.y_train)


def _compressed(registry: Registry, splits: Splits, methods: Methods) -> ModelVersion:
    parent = register_trained(registry, "iris", _mlp(splits), splits)
    report = compress_version(
        registry, parent.ref, splits, methods, max_quality_loss=1.0, max_slice_loss=1.0
    )
    return registry.get(report.rows[-1].ref)


@pytest.mark.parametrize(
    ("methods", "option"),
    [(Methods(prune=0.5), "--prune"), (Methods(format="onnx"), "--format onnx")],
)
def test_a_torch_int8_version_is_not_pruned_or_exported(
    registry: Registry, iris_splits: Splits, methods: Methods, option: str
) -> None:
    quantized = _compressed(registry, iris_splits, Methods(quantize="torch-int8"))
    with pytest.raises(
        FlavorError,
        match=rf"^{option}: expected a float torch version, found {quantized.ref} already "
        r"quantized \(dynamic-int8\); compress its float parent iris:1 instead$",
    ):
        compress_version(registry, quantized.ref, iris_splits, methods)
    assert registry.get("iris").version == quantized.version


def test_a_static_int8_version_is_not_quantized_again(
    registry: Registry, iris_splits: Splits
) -> None:
    quantized = _compressed(
        registry, iris_splits, Methods(quantize="int8", static=True, calibration=32)
    )
    with pytest.raises(
        FlavorError,
        match=rf"^--quantize int8: expected a float ONNX version, found {quantized.ref} already "
        r"quantized \(.*QuantizeLinear.*\); quantize its float parent iris:2 instead$",
    ):
        compress_version(registry, quantized.ref, iris_splits, Methods(quantize="int8"))
    assert registry.get("iris").version == quantized.version


def test_pruning_a_quantized_model_is_refused(iris_splits: Splits) -> None:
    with pytest.raises(FlavorError, match="pruning: expected a float torch model, found one"):
        prune_unstructured(quantize_torch_dynamic(_mlp(iris_splits)), 0.5)


def test_pruning_a_network_without_linear_or_conv_layers_is_refused(iris_splits: Splits) -> None:
    model = TorchModel(factory=f"{__name__}:affine_only", epochs=1)
    model.fit(iris_splits.X_train, iris_splits.y_train)
    with pytest.raises(
        FlavorError, match=r"pruning: expected Linear or Conv layers, found layers \['Affine'\]"
    ):
        prune_unstructured(model, 0.5)
