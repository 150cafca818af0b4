"""Compression and interchange: ONNX export with parity checks, int8 quantization, pruning,
knowledge distillation and ONNX Runtime's mobile format.

Every result is registered as a new version of the same model, with its parent and method in
the lineage, after the same model gate as any other version (quality relative to the parent):
see :func:`compress_version`. :func:`onnx_version_for` finds the parity-checked ONNX form of a
version, for a runtime that chooses between native and ONNX (it lives in
:mod:`readyml.registry.lineage`, so that prediction, a layer below, can use it). Pruning lives in
:mod:`readyml.compress.prune` and torch's dynamic int8 in :mod:`readyml.compress.torch_quantize`
(they import torch).
"""

from readyml.compress.distill import StudentSpec, distill
from readyml.compress.export import export_onnx, to_ort
from readyml.compress.parity import Parity, compare
from readyml.compress.quantize import Quantization, quantize_onnx
from readyml.compress.report import CompressionReport, Row
from readyml.compress.run import Methods, Splits, compress_version, evaluate
from readyml.registry.lineage import onnx_version_for

__all__ = [
    "CompressionReport",
    "Methods",
    "Parity",
    "Quantization",
    "Row",
    "Splits",
    "StudentSpec",
    "compare",
    "compress_version",
    "distill",
    "evaluate",
    "export_onnx",
    "onnx_version_for",
    "quantize_onnx",
    "to_ort",
]
