"""Prediction: a registered model version loaded as a :class:`Predictor`.

A predictor is the model (native flavor or ONNX Runtime, or ``auto``: the faster of the two by
recorded latency, :mod:`readyml.predict.runtime`) plus its signature and schema, and
the checks that turn request values into typed model input (:mod:`readyml.predict.inputs`).
The serving system batches request parts through :meth:`Predictor.predict_parts`.
"""

from __future__ import annotations

from readyml.predict.inputs import Feature, InvalidInput, NumericBlock, features_from
from readyml.predict.predictor import (
    RUNTIMES,
    Part,
    Prediction,
    Predictor,
    takes_tensor,
    to_onnx,
)
from readyml.predict.runtime import Runtime, RuntimeChoice, RuntimeRequest, choose_runtime

__all__ = [
    "RUNTIMES",
    "Feature",
    "InvalidInput",
    "NumericBlock",
    "Part",
    "Prediction",
    "Predictor",
    "Runtime",
    "RuntimeChoice",
    "RuntimeRequest",
    "choose_runtime",
    "features_from",
    "takes_tensor",
    "to_onnx",
]
