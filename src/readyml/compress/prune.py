"""Pruning of PyTorch models: global unstructured magnitude pruning and structured pruning.

*Unstructured*: the smallest-magnitude weights of every ``Linear`` and ``Conv`` layer, ranked
together, are set to zero (``torch.nn.utils.prune.global_unstructured``). The tensors stay
dense, so the saved file does not shrink; the sparsity is reported.

*Structured*: whole neurons (``Linear`` outputs) and channels (``Conv2d`` outputs) with the
smallest L2 norm are removed, with the matching inputs of the next layer, so the network and
its saved file really shrink. The network must be an ``nn.Sequential`` built by a factory that
takes its widths as ``hidden`` (fully connected) and ``channels`` (convolutions) lists, as
:func:`readyml.flavors.torch.mlp` and :func:`readyml.examples.digits.cnn` do; the pruned model
is saved with the new widths in its factory parameters.

Both can be fine-tuned afterwards on the training split (hard labels, Adam) for a few epochs.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from readyml.errors import ConfigError, FlavorError
from readyml.flavors.torch import TorchModel, build_module

# Fine-tuning learning rate and batch size.
FINE_TUNE_LR = 1e-3
FINE_TUNE_BATCH = 64


def _check(model: Any, sparsity: float) -> TorchModel:
    if not isinstance(model, TorchModel):
        raise FlavorError(
            f"pruning: expected a torch model, found flavor {getattr(model, 'flavor', '?')!r}"
        )
    if not 0.0 < sparsity < 1.0:
        raise ConfigError(f"--prune: expected a sparsity between 0 and 1, found {sparsity}")
    if model.quantization_ is not None:
        raise FlavorError(
            f"pruning: expected a float torch model, found one already quantized "
            f"({model.quantization_}); prune its float parent instead"
        )
    return model


def _layers(module: nn.Module) -> list[Any]:
    return [m for m in module.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]


def sparsity_of(module: nn.Module) -> float:
    """Share of zero weights over all ``Linear``/``Conv`` layers."""
    total = zeros = 0
    for layer in _layers(module):
        weight = layer.weight.detach()
        total += weight.numel()
        zeros += int((weight == 0).sum())
    return zeros / max(1, total)


def fine_tune(model: TorchModel, X: Any, y: Any, *, epochs: int, seed: int = 0) -> None:
    """Train ``model.module_`` further on hard labels (in place)."""
    if epochs <= 0:
        return
    encoder = model.encoder_
    inputs = encoder.transform(X) if encoder is not None else np.asarray(X, np.float32)
    features = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
    if model.task == "classification":
        codes = np.searchsorted(model.classes_, np.asarray(y))
        target = torch.from_numpy(codes.astype(np.int64))
        loss_function: nn.Module = nn.CrossEntropyLoss()
    else:
        values = (np.asarray(y, np.float64).reshape(len(y), -1) - model.target_mean_) / (
            model.target_scale_
        )
        target = torch.from_numpy(values.astype(np.float32))
        loss_function = nn.MSELoss()
    module = model.module_
    optimizer = torch.optim.Adam(module.parameters(), lr=FINE_TUNE_LR)
    generator = torch.Generator().manual_seed(seed)
    module.train()
    for _ in range(epochs):
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(features), FINE_TUNE_BATCH):
            batch = order[start : start + FINE_TUNE_BATCH]
            optimizer.zero_grad()
            loss_function(module(features[batch]), target[batch]).backward()
            optimizer.step()
    module.eval()


def prune_unstructured(
    model: Any, sparsity: float, *, X: Any = None, y: Any = None, fine_tune_epochs: int = 0
) -> TorchModel:
    """A copy of ``model`` with the ``sparsity`` share of its weights set to zero (global L1)."""
    pruned = copy.deepcopy(_check(model, sparsity))
    layers = _layers(pruned.module_)
    if not layers:
        leaves = {type(m).__name__ for m in pruned.module_.modules() if not list(m.children())}
        raise FlavorError(f"pruning: expected Linear or Conv layers, found layers {sorted(leaves)}")
    targets = [(layer, "weight") for layer in layers]
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=sparsity)
    if fine_tune_epochs and X is not None:
        fine_tune(pruned, X, y, epochs=fine_tune_epochs, seed=pruned.seed)  # masks stay applied
    for layer, name in targets:
        prune.remove(layer, name)  # type: ignore[no-untyped-call]
    pruned.module_.eval()
    return pruned


def _keep(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    norms = weight.detach().reshape(weight.shape[0], -1).norm(dim=1)
    count = max(1, round(weight.shape[0] * (1.0 - sparsity)))
    return torch.sort(torch.topk(norms, count).indices).values


def _sliced(layer: Any, *, rows: torch.Tensor | None, cols: torch.Tensor | None) -> Any:
    weight = layer.weight.detach()
    bias = None if layer.bias is None else layer.bias.detach()
    if rows is not None:
        weight = weight[rows]
        bias = None if bias is None else bias[rows]
    if cols is not None:
        weight = weight[:, cols]
    if isinstance(layer, nn.Linear):
        new: Any = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(
            weight.shape[1],
            weight.shape[0],
            layer.kernel_size,  # type: ignore[arg-type]
            stride=layer.stride,  # type: ignore[arg-type]
            padding=layer.padding,  # type: ignore[arg-type]
            dilation=layer.dilation,  # type: ignore[arg-type]
            bias=bias is not None,
        )
    else:
        raise FlavorError(f"structured pruning: unsupported layer {type(layer).__name__}")
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def prune_structured(
    model: Any, sparsity: float, *, X: Any = None, y: Any = None, fine_tune_epochs: int = 0
) -> TorchModel:
    """A copy of ``model`` with the ``sparsity`` share of neurons and channels removed.

    The last layer keeps all its outputs. Raises ``FlavorError`` when the network is not an
    ``nn.Sequential`` of supported layers or its factory does not take ``hidden``/``channels``.
    """
    pruned = copy.deepcopy(_check(model, sparsity))
    module: Any = pruned.module_
    if not isinstance(module, nn.Sequential):
        raise FlavorError(
            f"structured pruning: expected an nn.Sequential network, found {type(module).__name__}"
        )
    layers: list[Any] = list(module)
    original: list[Any] = list(module)
    weighted = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Linear | nn.Conv2d)]
    unsupported = [
        type(layer).__name__
        for layer in layers
        if not isinstance(
            layer,
            nn.Linear | nn.Conv2d | nn.ReLU | nn.Flatten | nn.MaxPool2d | nn.Dropout | nn.Tanh,
        )
    ]
    if unsupported or len(weighted) < 2:
        raise FlavorError(
            "structured pruning: expected Linear/Conv2d layers with ReLU, Tanh, MaxPool2d, "
            f"Dropout and Flatten between them, found {unsupported or 'a single layer'}"
        )
    keep: torch.Tensor | None = None
    for position, index in enumerate(weighted):
        layer = layers[index]
        cols = keep
        if keep is not None and isinstance(layer, nn.Linear):
            previous = original[weighted[position - 1]]
            if isinstance(previous, nn.Conv2d):  # after Flatten: channel-major blocks
                per_channel = layer.in_features // previous.out_channels
                cols = (keep[:, None] * per_channel + torch.arange(per_channel)).reshape(-1)
        last = position == len(weighted) - 1
        rows = None if last else _keep(layer.weight, sparsity)
        layers[index] = _sliced(layer, rows=rows, cols=cols)
        keep = rows
    pruned.module_ = nn.Sequential(*layers).eval()
    _rewrite_factory_params(pruned)
    if fine_tune_epochs and X is not None:
        fine_tune(pruned, X, y, epochs=fine_tune_epochs, seed=pruned.seed)
    return pruned


def _rewrite_factory_params(model: TorchModel) -> None:
    layers: list[Any] = list(model.module_)  # type: ignore[call-overload]
    channels = [layer.out_channels for layer in layers if isinstance(layer, nn.Conv2d)]
    linears = [layer.out_features for layer in layers if isinstance(layer, nn.Linear)][:-1]
    params = dict(model.factory_params or {})
    params["hidden"] = linears
    if channels:
        params["channels"] = channels
    try:
        rebuilt = build_module(model.factory, model.n_inputs_, model.n_outputs_, params)
        rebuilt.load_state_dict(model.module_.state_dict())
    except (TypeError, RuntimeError) as exc:
        raise FlavorError(
            f"structured pruning: factory {model.factory!r} must take its widths as 'hidden' "
            f"(and 'channels' for convolutions) so the pruned model can be saved ({exc})"
        ) from exc
    model.factory_params = params
    model.module_ = rebuilt.eval()
