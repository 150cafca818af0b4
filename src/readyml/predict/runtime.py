"""``runtime: auto``: run a version natively or through its ONNX export, whichever measured faster.

ONNX Runtime can answer one row of a tree ensemble tens of times faster than scikit-learn, but
it is not faster for every model, so ``auto`` decides from measurements, not from the flavor.
When the version has a parity-checked, non-vetoed ONNX export
(:func:`readyml.registry.onnx_version_for`) and the export's recorded median latency at batch
:data:`AUTO_BATCH` is lower than the version's own, the export runs; otherwise the version runs
natively. Both numbers come from the compression run that registered the export (same machine,
same moment, one thread each); the choice and the numbers behind it are kept as a sentence for
the predictor's metadata. The predictor still answers as the original version.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from typing import Any, Literal

from readyml.registry import ModelVersion, Registry, onnx_version_for

# What a version can run on, and what may be asked for.
Runtime = Literal["native", "onnx"]
RuntimeRequest = Literal["native", "onnx", "auto"]
# The batch size whose latencies decide: one row per request, the case ONNX Runtime is for.
# Adaptive batching makes batches larger only under load, when latency matters less.
AUTO_BATCH = "1"
# Metrics keys written by compression (readyml.compress.run).
_MEASURED = "compression"


@dataclass(frozen=True)
class RuntimeChoice:
    """Which runtime ``auto`` chose, the version whose files run, and why."""

    runtime: Runtime
    version: ModelVersion
    reason: str


def _latency(version: ModelVersion, key: str) -> float | None:
    measured = version.metrics.get(_MEASURED)
    by_batch = measured.get(key) if isinstance(measured, dict) else None
    value: Any = by_batch.get(AUTO_BATCH) if isinstance(by_batch, dict) else None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _ms(value: float) -> str:
    return f"{value:.3g} ms"


def choose_runtime(registry: Registry, version: ModelVersion) -> RuntimeChoice:
    """Choose between ``version`` itself and its ONNX export by recorded latency.

    The native latency is the one measured beside the export (``base_latency_ms``), or, for a
    version that is itself a compression result, its own ``latency_ms``.
    """
    export = onnx_version_for(registry, version)
    if export is None:
        reason = f"auto: native, no parity-checked onnx export of {version.ref}"
        return RuntimeChoice("native", version, reason)
    onnx = _latency(export, "latency_ms")
    native = _latency(export, "base_latency_ms") or _latency(version, "latency_ms")
    if onnx is None or native is None:
        reason = (
            f"auto: native, no recorded latency at batch {AUTO_BATCH} to compare onnx export "
            f"{export.ref} with"
        )
        return RuntimeChoice("native", version, reason)
    if onnx >= native:
        reason = (
            f"auto: native p50 {_ms(native)} <= onnx export {export.ref} {_ms(onnx)} "
            f"at batch {AUTO_BATCH}"
        )
        return RuntimeChoice("native", version, reason)
    faster = (
        f"onnx export {export.ref} p50 {_ms(onnx)} < native {_ms(native)} at batch {AUTO_BATCH}"
    )
    if importlib.util.find_spec("onnxruntime") is None:
        reason = f"auto: native, {faster} but onnxruntime is not installed: readyml[onnx]"
        return RuntimeChoice("native", version, reason)
    return RuntimeChoice("onnx", export, f"auto: {faster}")
