"""Prediction: a registered model version loaded as a :class:`Predictor`.

A predictor is the model (native flavor or ONNX Runtime, or ``auto``: the faster of the two by
recorded latency, :mod:`readyml.predict.runtime`) plus its signature and schema, and
the checks that turn request values into typed model input (:mod:`readyml.predict.inputs`).
The serving system batches request parts through :meth:`Predictor.serve_parts`.
"""

from __future__ import annotations

from readyml.predict.inputs import Feature, InvalidInput, NumericBlock, features_from
from readyml.predict.predictor import (
    RUNTIMES,
    NonFiniteOutput,
    Part,
    Prediction,
    Predictor,
    nonfinite_rows,
    takes_tensor,
    to_onnx,
)
from readyml.predict.runtime import Runtime, RuntimeChoice, RuntimeRequest, choose_runtime

__all__ = [
    "RUNTIMES",
    "Feature",
    "InvalidInput",
    "NonFiniteOutput",
    "NumericBlock",
    "Part",
    "Prediction",
    "Predictor",
    "Runtime",
    "RuntimeChoice",
    "RuntimeRequest",
    "choose_runtime",
    "features_from",
    "nonfinite_rows",
    "takes_tensor",
    "to_onnx",
]
