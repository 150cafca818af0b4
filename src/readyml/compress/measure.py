"""What compression is for, measured: size on disk, parameters, single-thread latency.

Latency is one model call on inputs already in the model's own form (an encoded tensor for a
torch module, the ONNX feeds for ONNX Runtime, the frame for other flavors), on one thread
(``torch.set_num_threads(1)``, an ONNX Runtime session with one intra- and inter-op thread,
``threadpoolctl`` limits elsewhere), after warm-up calls; the median of the repeats is reported,
at batch 1 and batch 64. Wall-clock is ``time.perf_counter``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from readyml.compress._onnx import feeds, parameter_count, session
from readyml.flavors import FLAVOR_FILE, ModelAdapter

# Batch sizes latency is reported at.
BATCHES = (1, 64)
# Calls before timing starts (caches, lazy initialisation).
WARMUP_CALLS = 5
# Timed calls per batch size, and the most seconds spent on one batch size.
REPEATS = 50
TIME_BUDGET_S = 2.0


def size_bytes(files: Iterable[Path]) -> int:
    """Bytes on disk of the model files (``flavor.json`` excluded)."""
    return sum(Path(p).stat().st_size for p in files if Path(p).name != FLAVOR_FILE)


def parameters(model: ModelAdapter) -> int | None:
    """Parameters of a torch module or numbers stored in an ONNX graph; ``None`` otherwise.

    Dynamically quantized torch layers count their int8 weights and biases, which
    ``parameters()`` does not list. An ORT-format file is not parsed (it is a flatbuffer): ``None``.
    """
    if model.flavor == "torch":
        from readyml.flavors.torch_quantization import quantized_parameter_count

        module = model.module_  # type: ignore[attr-defined]
        plain = int(sum(p.numel() for p in module.parameters()))
        return plain + quantized_parameter_count(module)
    if model.flavor == "onnx" and Path(model.path).suffix == ".onnx":  # type: ignore[attr-defined]
        return parameter_count(Path(model.path))  # type: ignore[attr-defined]
    return None


def rows(X: Any, n: int) -> Any:
    """The first ``n`` rows, repeated when there are fewer."""
    length = len(X)
    index = np.arange(n) % max(1, length)
    return X.iloc[index].reset_index(drop=True) if isinstance(X, pd.DataFrame) else X[index]


def _call(model: ModelAdapter, X: Any, path: Path | None) -> Callable[[], Any]:
    if path is not None:
        runner = session(path, threads=1)
        inputs = feeds(runner.get_inputs(), X)
        return lambda: runner.run(None, inputs)
    if model.flavor == "torch":
        import torch

        module = model.module_  # type: ignore[attr-defined]
        encoder = model.encoder_  # type: ignore[attr-defined]
        array = encoder.transform(X) if encoder is not None else np.asarray(X, np.float32)
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

        def forward() -> Any:
            with torch.no_grad():
                return module(tensor)

        return forward
    if model.task == "classification" and model.has_proba:
        return lambda: model.predict_proba(X)
    return lambda: model.predict(X)


def _timings_ms(call: Callable[[], Any]) -> list[float]:
    for _ in range(WARMUP_CALLS):
        call()
    times: list[float] = []
    deadline = time.perf_counter() + TIME_BUDGET_S
    while len(times) < REPEATS and (len(times) < 3 or time.perf_counter() < deadline):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def _median_ms(call: Callable[[], Any]) -> float:
    return statistics.median(_timings_ms(call))


def predict_p95_ms(model: ModelAdapter, X: Any) -> float:
    """p95 latency in milliseconds of ``predict`` on one row, as the model gate bounds it.

    The whole call (input conversion included) on the process's usual threads, like the
    training evaluation's serving cost, so that ``gates.max_latency_ms`` means the same.
    """
    row = rows(X, 1)
    return float(np.percentile(_timings_ms(lambda: model.predict(row)), 95))


def latency_ms(
    model: ModelAdapter, X: Any, *, path: Path | None = None, batches: Iterable[int] = BATCHES
) -> dict[str, float]:
    """Median single-thread latency in milliseconds per batch size (keys are the sizes).

    Args:
        model: The adapter to time.
        X: Rows to feed (repeated to fill a batch).
        path: An ONNX or ORT file to time in ONNX Runtime instead of the adapter.
        batches: The batch sizes.
    """
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    if path is None and model.flavor == "onnx":
        path = Path(model.path)  # type: ignore[attr-defined]
    torch_threads = None
    if model.flavor == "torch":
        import torch

        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            return {str(n): _median_ms(_call(model, rows(X, n), path)) for n in batches}
    finally:
        if torch_threads is not None:
            import torch

            torch.set_num_threads(torch_threads)
