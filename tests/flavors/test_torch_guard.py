"""The torch flavor's training guard (ML Test Score monitor-5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from readyml.errors import FlavorError, NumericalInstability

pytest.importorskip("torch")

import torch

from readyml.flavors.torch import TorchModel


class _NaNAfterLinear(torch.nn.Module):
    """A layer whose output is NaN: stands in for a network that diverged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


def diverging_net(n_inputs: int, n_outputs: int) -> torch.nn.Module:
    """A model factory whose network outputs NaN from the first step."""
    return torch.nn.Sequential(torch.nn.Linear(n_inputs, n_outputs), _NaNAfterLinear())


def _frame(rows: int = 200) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    y = (X["a"] + X["b"] > 0).map({True: "yes", False: "no"}).to_numpy()
    return X, y


def test_every_epoch_records_weight_bounds_and_dead_units() -> None:
    X, y = _frame()
    model = TorchModel(task="classification", numeric=["a", "b"], epochs=3, seed=1).fit(X, y)
    stability = [epoch["stability"] for epoch in model.history_]
    assert len(stability) == len(model.history_) >= 1
    assert all(s["max_abs_weight"] > 0 for s in stability)
    assert all(0.0 <= share <= 1.0 for s in stability for share in s["dead_relu_share"].values())


def test_a_nan_loss_stops_training_with_a_named_error() -> None:
    X, y = _frame()
    model = TorchModel(
        factory=f"{__name__}:diverging_net",
        task="classification",
        numeric=["a", "b"],
        epochs=3,
        seed=1,
    )
    with pytest.raises(NumericalInstability, match="training loss is nan at step 1") as info:
        model.fit(X, y)
    assert isinstance(info.value, FlavorError)
