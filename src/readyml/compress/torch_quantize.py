"""PyTorch's own dynamic int8 quantization of a torch version (``--quantize torch-int8``).

``Linear``, ``LSTM`` and ``GRU`` layers get int8 weights and quantize their inputs at run time
(no calibration); everything else stays float. It applies where those layers carry the weights
and the time: MLPs, the fully connected head of a CNN, recurrent networks. A network without them
(a pure CNN) is refused with the layers it has, pointing at ONNX Runtime's static int8, which
quantizes convolutions. The result stays a torch version: it loads through the torch flavor,
which re-quantizes the float network from its factory and reads the saved int8 weights
(:mod:`readyml.flavors.torch_quantization` says why that and not TorchScript).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from readyml.errors import FlavorError
from readyml.flavors.torch import TorchModel
from readyml.flavors.torch_quantization import (
    DYNAMIC_INT8,
    DYNAMIC_LAYERS,
    quantize_dynamic_int8,
    quantized_layers,
)
from readyml.types import JSON

# The method's name in lineage, tags and the report.
METHOD = "torch-int8-dynamic"


def _refusal(model: TorchModel) -> FlavorError:
    module = model.module_
    wanted = list(DYNAMIC_LAYERS)
    if isinstance(module, tuple(DYNAMIC_LAYERS.values())):
        found = f"a bare {type(module).__name__} (torch only rewrites layers inside a container)"
    else:
        leaves = {type(m).__name__ for m in module.modules() if not list(m.children())}
        found = f"layers {sorted(leaves)}"
    return FlavorError(
        f"torch dynamic int8 of {model.factory!r}: nothing to quantize: it rewrites {wanted} "
        f"layers, the network has {found}; ONNX Runtime static int8 (--quantize int8 --static) "
        "quantizes convolutions"
    )


def quantize_torch_dynamic(model: Any) -> TorchModel:
    """A copy of a torch model with its ``Linear``/``LSTM``/``GRU`` layers in dynamic int8.

    Raises:
        FlavorError: The model is not a float torch model, or has none of those layers.
    """
    if not isinstance(model, TorchModel):
        raise FlavorError(
            "torch dynamic int8: expected a torch model, found flavor "
            f"{getattr(model, 'flavor', '?')!r}; ONNX Runtime int8 (--quantize int8) covers "
            "models exported to ONNX"
        )
    if model.quantization_ is not None:
        raise FlavorError(
            f"torch dynamic int8: the model is already quantized ({model.quantization_}); "
            "quantize its float parent instead"
        )
    quantized = copy.deepcopy(model)
    quantized.module_ = quantize_dynamic_int8(model.module_)
    if not quantized_layers(quantized.module_):
        raise _refusal(model)
    quantized.quantization_ = DYNAMIC_INT8
    return quantized


def describe(model: TorchModel) -> JSON:
    """What was done, for the lineage: method, layers rewritten, weight type, kernel engine."""
    return {
        "name": METHOD,
        "layers": quantized_layers(model.module_),
        "weights": "int8 (Linear per output channel, LSTM/GRU per tensor)",
        "activations": "quantized per call",
        "engine": torch.backends.quantized.engine,
    }
