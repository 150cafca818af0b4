"""Torch dynamic int8: saved int8 weights load back (safely) into the same predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from readyml.errors import FlavorError
from readyml.flavors import FLAVOR_FILE, load_model
from readyml.flavors.torch import TorchModel
from readyml.flavors.torch_quantization import (
    DYNAMIC_INT8,
    quantize_dynamic_int8,
    quantized_layers,
    quantized_parameter_count,
)

STEPS = 4


class Recurrent(nn.Module):
    """An LSTM, a GRU over its outputs and a Linear head on the last step."""

    def __init__(self, width: int, n_outputs: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(width, 8, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(16, 8, batch_first=True)
        self.head = nn.Linear(8, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        out, _ = self.gru(out)
        result: torch.Tensor = self.head(out[:, -1])
        return result


def recurrent(n_inputs: int, n_outputs: int) -> nn.Module:
    """A factory for sequences of STEPS steps."""
    return Recurrent(n_inputs // STEPS, n_outputs)


def _sequences() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, STEPS, 3)).astype(np.float32)
    return X, (X[:, -1, 0] > 0).astype(np.int64)


def _quantized(model: TorchModel) -> TorchModel:
    model.module_ = quantize_dynamic_int8(model.module_)
    model.quantization_ = DYNAMIC_INT8
    return model


def test_recurrent_and_linear_layers_round_trip_through_weights_only_files(
    tmp_path: Path,
) -> None:
    X, y = _sequences()
    model = TorchModel(factory=f"{__name__}:recurrent", epochs=2, seed=0).fit(X, y)
    float_parameters = sum(p.numel() for p in model.module_.parameters())
    quantized = _quantized(model)
    assert quantized_layers(quantized.module_) == ["lstm", "gru", "head"]
    assert quantized_parameter_count(quantized.module_) == float_parameters
    quantized.save(tmp_path)
    content = json.loads((tmp_path / FLAVOR_FILE).read_text())
    assert content["quantization"] == DYNAMIC_INT8
    loaded = load_model(tmp_path)
    assert isinstance(loaded, TorchModel) and loaded.quantization_ == DYNAMIC_INT8
    assert np.array_equal(loaded.predict_proba(X), quantized.predict_proba(X))


def test_an_unknown_quantization_in_flavor_json_is_refused(tmp_path: Path) -> None:
    X, y = _sequences()
    model = _quantized(TorchModel(factory=f"{__name__}:recurrent", epochs=1).fit(X, y))
    model.quantization_ = "int4"
    model.save(tmp_path)
    with pytest.raises(FlavorError, match="quantization: expected 'dynamic-int8'"):
        load_model(tmp_path)
