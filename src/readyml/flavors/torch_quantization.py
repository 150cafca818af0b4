"""Torch dynamic int8 quantization of a module, and saving its int8 weights as plain tensors.

*Dynamic* quantization (``torch.ao.quantization.quantize_dynamic``) stores the weights of
``Linear``, ``LSTM`` and ``GRU`` layers as int8 and quantizes their inputs on every call, so it
needs no calibration; other layers (convolutions, norms) stay float. ``Linear`` weights get one
scale per output row (per-channel), recurrent weights one per tensor (what torch offers for
them). torch 2.13 still ships this API but marks it deprecated in favour of the separate
``torchao`` package; its notices are silenced for our calls only, and when a torch release drops
it the quantization fails with a ``FlavorError`` naming the torch version.

Saving: a quantized module's ``state_dict`` holds int8 tensors (which ``torch.load(...,
weights_only=True)`` reads) except for recurrent layers, whose packed weights are TorchScript
objects that the safe loader refuses. Those layers are saved as their int8 weight and float
bias tensors instead (:func:`quantized_state`). Loading rebuilds the float network from its
factory, quantizes it the same way (giving the right layer types) and puts the saved weights in
(:func:`load_quantized_state`), so no code is ever unpickled from a model file, as for float
torch models. TorchScript (``torch.jit.save``) would round-trip too, but loading it runs the
file's TorchScript code, and TorchScript is itself in maintenance mode.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from readyml.errors import FlavorError

# The one quantization readyml's torch flavor knows: its name in flavor.json and lineage.
DYNAMIC_INT8 = "dynamic-int8"
# Layer types torch's dynamic int8 quantization rewrites, by name.
DYNAMIC_LAYERS: dict[str, type[nn.Module]] = {"Linear": nn.Linear, "LSTM": nn.LSTM, "GRU": nn.GRU}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide torch 2.13's deprecation notices for quantization (see the module docstring)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization", category=Warning)
        warnings.filterwarnings("ignore", message=r".*quantized tensor", category=Warning)
        warnings.filterwarnings("ignore", message=r"TypedStorage is deprecated", category=Warning)
        yield


def _api() -> Any:
    try:
        from torch.ao import quantization
    except ImportError as exc:
        raise FlavorError(
            f"torch dynamic int8: torch {torch.__version__} no longer ships "
            "torch.ao.quantization.quantize_dynamic; keep the float model or use ONNX Runtime "
            "int8 (--quantize int8)"
        ) from exc
    return quantization


def quantized_layers(module: nn.Module) -> list[str]:
    """Qualified names of the dynamically quantized layers of ``module``."""
    return [name for name, child in module.named_modules() if _is_quantized(child) and name != ""]


def _is_quantized(module: nn.Module) -> bool:
    from torch.ao.nn.quantized import dynamic
    from torch.ao.nn.quantized.dynamic.modules.rnn import RNNBase, RNNCellBase

    return isinstance(module, dynamic.Linear | RNNBase | RNNCellBase)


def _is_recurrent(module: nn.Module) -> bool:
    from torch.ao.nn.quantized.dynamic.modules.rnn import RNNBase

    return isinstance(module, RNNBase)


def quantize_dynamic_int8(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose ``Linear``, ``LSTM`` and ``GRU`` layers hold int8 weights.

    The module itself is never replaced, only its children (torch's rule): a factory returning
    a bare ``nn.Linear`` is left float. Callers check :func:`quantized_layers`.

    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> quantized_layers(quantize_dynamic_int8(net))
    ['0', '2']
    """
    api = _api()
    spec: dict[Any, Any] = {
        nn.Linear: api.per_channel_dynamic_qconfig,
        nn.LSTM: api.default_dynamic_qconfig,
        nn.GRU: api.default_dynamic_qconfig,
    }
    with _quiet():
        quantized: nn.Module = api.quantize_dynamic(
            copy.deepcopy(module).eval(), spec, dtype=torch.qint8
        )
    return quantized.eval()


def _recurrent(module: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in module.named_modules() if name and _is_recurrent(m)}


def quantized_state(module: nn.Module) -> dict[str, Any]:
    """The ``state_dict`` of a quantized module in a form ``weights_only`` loading accepts.

    It stays the ``state_dict`` object itself: its ``_metadata`` holds the layers' format
    versions, which tell torch's quantized layers how to read their entries back.
    """
    recurrent = _recurrent(module)
    with _quiet():
        state = module.state_dict()
        packed = [
            key
            for key in state
            if any(key.startswith(f"{n}._all_weight_values.") for n in recurrent)
        ]
        for key in packed:
            del state[key]
        for name, layer in recurrent.items():
            for tensors in layer._weight_bias().values():  # type: ignore[operator]
                for key, tensor in tensors.items():
                    state[f"{name}.{key}"] = tensor
    return state


def save_quantized(module: nn.Module, path: Path) -> None:
    """Write :func:`quantized_state` of ``module`` with ``torch.save``."""
    state = quantized_state(module)
    with _quiet():
        torch.save(state, path)


def load_quantized(module: nn.Module, path: Path) -> nn.Module:
    """``module`` (float, as the factory built it) quantized and given the weights in ``path``.

    The file is read with ``weights_only=True``: tensors only, no code.
    """
    with _quiet():
        state = torch.load(path, weights_only=True, map_location="cpu")
    quantized = quantize_dynamic_int8(module)
    load_quantized_state(quantized, state)
    return quantized


def load_quantized_state(module: nn.Module, state: dict[str, Any]) -> None:
    """Put weights saved by :func:`quantized_state` into a module quantized the same way.

    ``state`` is consumed.
    """
    with _quiet():
        for name, layer in _recurrent(module).items():
            keys = [key for part in layer._weight_bias().values() for key in part]  # type: ignore[operator]
            missing = [key for key in keys if f"{name}.{key}" not in state]
            if missing:
                raise FlavorError(
                    f"quantized layer {name!r}: expected weights {missing}, found none"
                )
            layer.set_weight_bias({key: state.pop(f"{name}.{key}") for key in keys})  # type: ignore[operator]
            prefix = f"{name}._all_weight_values."
            state.update({k: v for k, v in module.state_dict().items() if k.startswith(prefix)})
        module.load_state_dict(state)


def quantized_parameter_count(module: nn.Module) -> int:
    """Numbers in the weights and biases of quantized layers (``parameters()`` skips them)."""
    total = 0
    with _quiet():
        for _, layer in module.named_modules():
            if not _is_quantized(layer):
                continue
            packed = layer._weight_bias()
            tensors = (
                [t for part in packed.values() for t in part.values()]
                if isinstance(packed, dict)
                else list(packed)
            )
            total += sum(int(t.numel()) for t in tensors if t is not None)
    return total
