"""ONNX helpers shared by export, quantization and measurement: feeds, sessions, graph edits.

Exported graphs take a frame as one ``[N, 1]`` input per column (named like the column, made an
identifier, as skl2onnx does and :class:`readyml.flavors.onnx.OnnxModel` expects) and an array
as one input named ``input``.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from readyml.errors import FlavorError

# ONNX tensor element types and the numpy dtype fed for each.
ELEMENT_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


def import_library(module: str) -> Any:
    """Import an optional library of the ``onnx`` extra, naming the extra when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise FlavorError(
            f"compression needs the extra: pip install 'readyml[onnx]' ({module}: {exc})"
        ) from exc


def identifier(name: str) -> str:
    """A column name as an ONNX input name (what skl2onnx does to ``'petal size'``)."""
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


def session(path: Path, *, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session; ``threads=1`` pins intra- and inter-op threads to one."""
    runtime = import_library("onnxruntime")
    options = runtime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = threads
    try:
        return runtime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph errors
        raise FlavorError(f"{Path(path).name}: ONNX Runtime cannot load it ({exc})") from exc


def feeds(graph_inputs: list[Any], X: pd.DataFrame | np.ndarray) -> dict[str, Any]:
    """The input dict for ``session.run`` from a frame (one input per column) or an array."""
    if len(graph_inputs) == 1 and not isinstance(X, pd.DataFrame):
        only = graph_inputs[0]
        return {only.name: np.asarray(X, dtype=ELEMENT_TYPES.get(only.type, np.float32))}
    if not isinstance(X, pd.DataFrame):
        raise FlavorError(
            f"features: the ONNX graph has {len(graph_inputs)} inputs, expected a frame, "
            f"found {type(X).__name__}"
        )
    if len(graph_inputs) == 1 and graph_inputs[0].type != "tensor(string)":
        only = graph_inputs[0]
        if only.name not in X.columns and identifier(only.name) not in map(identifier, X.columns):
            numeric = X.select_dtypes(include=["number", "bool"])
            return {only.name: numeric.to_numpy(dtype=ELEMENT_TYPES.get(only.type, np.float32))}
    by_identifier = {identifier(str(name)): name for name in X.columns}
    result: dict[str, Any] = {}
    for graph_input in graph_inputs:
        column = graph_input.name if graph_input.name in X.columns else None
        column = by_identifier.get(graph_input.name) if column is None else column
        if column is None:
            raise FlavorError(
                f"column {graph_input.name!r}: required by the ONNX graph, missing from the frame"
            )
        dtype = ELEMENT_TYPES.get(graph_input.type, np.float32)
        values = X[column]
        array = (
            values.astype(str).to_numpy(dtype=object)
            if dtype is np.object_
            else values.to_numpy(dtype=dtype, na_value=np.nan)
            if np.issubdtype(dtype, np.floating)
            else values.to_numpy(dtype=dtype)
        )
        result[graph_input.name] = array.reshape(-1, 1)
    return result


def check(model_or_path: Any) -> None:
    """Run ``onnx.checker`` (full check, with shape inference); raise ``FlavorError`` on failure."""
    onnx = import_library("onnx")
    try:
        onnx.checker.check_model(
            str(model_or_path) if isinstance(model_or_path, Path) else model_or_path,
            full_check=True,
        )
    except Exception as exc:  # onnx.checker.ValidationError and shape-inference errors
        raise FlavorError(f"onnx.checker: the exported graph is invalid ({exc})") from exc


# Attributes of ``ai.onnx.ml`` operators that hold learned numbers (coefficients, support
# vectors, scaler and imputer statistics); tree ensembles hold theirs under these prefixes.
_LEARNED_ATTRIBUTES = frozenset(
    {
        "coefficients",
        "intercepts",
        "support_vectors",
        "rho",
        "prob_a",
        "prob_b",
        "offset",
        "scale",
        "imputed_value_floats",
        "imputed_value_int64s",
    }
)
_TREE_PREFIXES = ("nodes_", "class_", "target_", "leaf_")


def parameter_count(path: Path) -> int:
    """Numbers stored in the graph: initializer elements plus the learned numbers that
    ``ai.onnx.ml`` operators (linear models, SVMs, tree ensembles, scalers) keep as attributes."""
    onnx = import_library("onnx")
    model = onnx.load(str(path))
    count = 0
    for tensor in model.graph.initializer:
        count += int(np.prod(tensor.dims)) if len(tensor.dims) else 1
    for node in model.graph.node:
        if node.domain != "ai.onnx.ml":
            continue
        tree = node.op_type.startswith("TreeEnsemble")
        for attribute in node.attribute:
            if attribute.name in _LEARNED_ATTRIBUTES or (
                tree and attribute.name.startswith(_TREE_PREFIXES)
            ):
                count += len(attribute.floats) + len(attribute.ints)
                if attribute.HasField("t"):
                    count += int(np.prod(attribute.t.dims)) if len(attribute.t.dims) else 1
    return count


def op_types(path: Path) -> list[str]:
    """The operator types in a graph, sorted."""
    onnx = import_library("onnx")
    return sorted({node.op_type for node in onnx.load(str(path)).graph.node})


def gemm_to_matmul(source: Path, dest: Path) -> Path:
    """Rewrite ``Gemm`` nodes with constant weights as ``MatMul`` + ``Add``.

    ONNX Runtime's dynamic quantizer has integer kernels for ``MatMul`` but not ``Gemm``,
    which is what exporters emit for fully connected layers.
    """
    onnx = import_library("onnx")
    numpy_helper = onnx.numpy_helper
    model = onnx.load(str(source))
    graph = model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    rewritten = []
    for node in graph.node:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        plain = (
            node.op_type == "Gemm"
            and len(node.input) >= 2
            and node.input[1] in weights
            and attributes.get("transA", 0) == 0
            and attributes.get("alpha", 1.0) == 1.0
            and attributes.get("beta", 1.0) == 1.0
        )
        if not plain:
            rewritten.append(node)
            continue
        weight = numpy_helper.to_array(weights[node.input[1]])
        if attributes.get("transB", 0):
            weight = weight.T
        name = f"{node.input[1]}_matmul"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight), name))
        has_bias = len(node.input) > 2 and node.input[2] != ""
        product = f"{node.output[0]}_product" if has_bias else node.output[0]
        rewritten.append(onnx.helper.make_node("MatMul", [node.input[0], name], [product]))
        if has_bias:
            rewritten.append(
                onnx.helper.make_node("Add", [product, node.input[2]], [node.output[0]])
            )
    used = {value for node in rewritten for value in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.node[:]
    graph.node.extend(rewritten)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.save(model, str(dest))
    return dest
