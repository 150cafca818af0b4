"""Int8 quantization of ONNX graphs with ONNX Runtime, choosing the operator types by measuring.

Two modes. *Dynamic*: weights are int8 and activations are quantized at run time, with no
calibration. *Static*: activation ranges come from calibration rows of the training split
(``calibration`` rows, QDQ format, min-max ranges), so every quantized operator runs in int8.

Which operator types to quantize is not assumed: dynamic int8 convolutions (``ConvInteger``)
run several times slower than fp32 on CPU, while static int8 convolutions run faster. With
``op_types="auto"`` every candidate set (all quantizable types present in the graph, and each
type alone; for static, also all of them plus the :data:`INT8_PATH` operators between them) is
quantized and timed at batch 64 on one thread; the fastest wins, and among candidates within
:data:`LATENCY_SLACK` of it, the smallest file. Every measurement is kept in the result.

Why the :data:`INT8_PATH` candidate: with only ``Conv``/``MatMul``/``Gemm`` quantized, every
``Relu``, ``MaxPool`` and ``Flatten`` between them runs in float behind a dequantize/quantize
pair. Quantizing them too keeps the chain in int8 (a ``Relu`` folds into the quantization range);
on the digits CNN that took static int8 from 2.1x to 2.6x faster than fp32 at batch 64, with the
same accuracy. Those operators are exact on quantized values (max, clip, reshape), so they add
no error. Per-channel weights, the QOperator format, signed activations and a lower graph
optimisation level were measured too and gained nothing (see docs/compression.md).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from readyml.compress._onnx import feeds, gemm_to_matmul, import_library, op_types, session
from readyml.compress.measure import latency_ms, rows
from readyml.errors import ConfigError, FlavorError
from readyml.flavors.onnx import OnnxModel

Mode = Literal["dynamic", "static"]
MODES: tuple[Mode, ...] = ("dynamic", "static")
# Operator types ONNX Runtime's int8 quantizers turn into integer kernels that we consider.
QUANTIZABLE = ("Conv", "MatMul", "Gemm")
# Operators static (QDQ) quantization can keep in int8 between quantized layers, exactly.
INT8_PATH = ("Relu", "Clip", "MaxPool", "Flatten")
# Default number of calibration rows taken from the training split.
CALIBRATION_ROWS = 256
# Rows per calibration batch.
CALIBRATION_BATCH = 32
# Candidates within this fraction of the fastest are compared by size instead.
LATENCY_SLACK = 0.05
# Batch size at which candidates are timed.
CHOICE_BATCH = 64
# Operators only a quantized graph holds (QDQ pairs, integer and QLinear kernels).
QUANTIZED_OPS = (
    "ConvInteger",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "QLinearConv",
    "QLinearMatMul",
    "QuantizeLinear",
)


@dataclass(frozen=True)
class Quantization:
    """The chosen quantized file and what was measured to choose it."""

    path: Path
    mode: Mode
    op_types: list[str]
    calibration_rows: int
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (without the local path)."""
        data = asdict(self)
        data.pop("path")
        return data


def _calibration_batches(graph_inputs: list[Any], X: Any) -> Iterator[dict[str, Any]]:
    for start in range(0, len(X), CALIBRATION_BATCH):
        stop = start + CALIBRATION_BATCH
        yield feeds(
            graph_inputs, X.iloc[start:stop] if isinstance(X, pd.DataFrame) else X[start:stop]
        )


def _quantize(
    source: Path, dest: Path, *, mode: Mode, types: Sequence[str], calibration: Any
) -> None:
    with _quiet_root_logger():
        _run_quantizer(source, dest, mode=mode, types=types, calibration=calibration)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantizer logs advice at WARNING through the root logger; hide it."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _run_quantizer(
    source: Path, dest: Path, *, mode: Mode, types: Sequence[str], calibration: Any
) -> None:
    quantization = import_library("onnxruntime.quantization")
    if mode == "dynamic":
        quantization.quantize_dynamic(
            str(source),
            str(dest),
            weight_type=quantization.QuantType.QInt8,
            op_types_to_quantize=list(types),
        )
        return
    graph_inputs = session(source).get_inputs()
    batches = _calibration_batches(graph_inputs, calibration)

    class Reader(quantization.CalibrationDataReader):  # type: ignore[misc, name-defined]
        def get_next(self) -> dict[str, Any] | None:
            return next(batches, None)

    quantization.quantize_static(
        str(source),
        str(dest),
        Reader(),
        quant_format=quantization.QuantFormat.QDQ,
        activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8,
        op_types_to_quantize=list(types),
    )


def _preprocess(source: Path, dest: Path) -> Path:
    """ONNX Runtime's recommended pre-processing (shape inference, fusions); source on failure."""
    try:
        shape_inference = import_library("onnxruntime.quantization.shape_inference")
        shape_inference.quant_pre_process(str(source), str(dest), skip_symbolic_shape=True)
    except Exception:  # graphs with ai.onnx.ml nodes may defeat its optimizer: quantize as is
        return source
    return dest


def quantized_nodes(path: Path) -> list[str]:
    """The operator types in the graph that only a quantized graph holds (sorted)."""
    return [t for t in op_types(path) if t in QUANTIZED_OPS]


def candidate_sets(present: Sequence[str], *, mode: Mode = "dynamic") -> list[list[str]]:
    """Operator sets to try, the most quantized first (deduplicated).

    All quantizable types present, then each alone; for static quantization, first all of them
    together with the :data:`INT8_PATH` operators present.

    >>> candidate_sets(["Conv", "Gemm", "Relu"])
    [['Conv', 'Gemm'], ['Conv'], ['Gemm']]
    >>> candidate_sets(["Conv", "Gemm", "Relu"], mode="static")[0]
    ['Conv', 'Gemm', 'Relu']
    """
    types = [t for t in QUANTIZABLE if t in present]
    path = [t for t in INT8_PATH if t in present] if mode == "static" and types else []
    sets = ([types + path] if path else []) + [types] + [[t] for t in types]
    unique: list[list[str]] = []
    for item in sets:
        if item and item not in unique:
            unique.append(item)
    return unique


def quantize_onnx(
    source: Path,
    dest: Path,
    *,
    mode: Mode = "static",
    calibration: Any = None,
    calibration_rows: int = CALIBRATION_ROWS,
    op_types_to_quantize: Sequence[str] | Literal["auto"] = "auto",
    sample: Any = None,
) -> Quantization:
    """Quantize an ONNX graph to int8.

    Args:
        source: The fp32 ``.onnx`` file.
        dest: Where to write the quantized file.
        mode: ``dynamic`` or ``static``.
        calibration: Training rows (frame or array); the first ``calibration_rows`` calibrate a
            static quantization. Also used to time candidates when ``sample`` is not given.
        calibration_rows: How many rows calibrate.
        op_types_to_quantize: Operator types, or ``"auto"`` to measure and choose.
        sample: Rows to time candidates on.

    Raises:
        ConfigError: Unknown mode, or static without calibration rows.
        FlavorError: The graph has nothing ONNX Runtime quantizes (e.g. a tree ensemble).
    """
    if mode not in MODES:
        raise ConfigError(f"--quantize mode: expected one of {list(MODES)}, found {mode!r}")
    if calibration is None and (mode == "static" or sample is None):
        raise ConfigError("static int8 quantization: expected calibration rows, found none")
    calibration = (
        None if calibration is None else rows(calibration, min(len(calibration), calibration_rows))
    )
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "dynamic" and "Gemm" in op_types(source):
            source = gemm_to_matmul(source, Path(tmp) / "matmul.onnx")
        return _quantize_choosing(
            source,
            dest,
            mode=mode,
            calibration=calibration,
            sample=sample,
            requested=op_types_to_quantize,
        )


def _quantize_choosing(
    source: Path,
    dest: Path,
    *,
    mode: Mode,
    calibration: Any,
    sample: Any,
    requested: Sequence[str] | Literal["auto"],
) -> Quantization:
    present = op_types(source)
    sets = candidate_sets(present, mode=mode) if requested == "auto" else [list(requested)]
    if not sets or not any(t in present for t in sets[0]):
        raise FlavorError(
            f"{source.name}: nothing to quantize: int8 applies to {list(QUANTIZABLE)} nodes, "
            f"the graph has {present}"
        )
    timing_rows = sample if sample is not None else calibration
    measured: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        prepared = _preprocess(source, Path(tmp) / "prepared.onnx") if mode == "static" else source
        files = []
        for index, types in enumerate(sets):
            path = Path(tmp) / f"candidate{index}.onnx"
            _quantize(prepared, path, mode=mode, types=types, calibration=calibration)
            timing = {}
            if len(sets) > 1:
                model = OnnxModel(path=path, task="regression")
                timing = latency_ms(model, timing_rows, path=path, batches=[CHOICE_BATCH])
            measured.append(
                {
                    "op_types": types,
                    "size_bytes": path.stat().st_size,
                    "latency_ms_batch64": timing.get(str(CHOICE_BATCH)),
                }
            )
            files.append(path)
        best = _choose(measured)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(files[best].read_bytes())
    n_calibration = 0 if calibration is None or mode == "dynamic" else len(calibration)
    return Quantization(dest, mode, sets[best], n_calibration, measured)


def _choose(measured: list[dict[str, Any]]) -> int:
    if len(measured) == 1:
        return 0
    fastest = min(float(m["latency_ms_batch64"]) for m in measured)
    close = [
        i
        for i, m in enumerate(measured)
        if float(m["latency_ms_batch64"]) <= fastest * (1 + LATENCY_SLACK)
    ]
    return min(close, key=lambda i: (measured[i]["size_bytes"], i))
