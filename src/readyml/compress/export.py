"""Export a trained model to ONNX with a dynamic batch dimension, checked by ``onnx.checker``.

One converter per flavor: scikit-learn pipelines through skl2onnx, XGBoost and LightGBM
through onnxmltools, PyTorch modules through ``torch.onnx.export``. The graph answers a raw
frame, not an encoded matrix: the flavor's own preprocessing (readyml's ``TabularEncoder`` for
boosting and torch models: one-hot categoricals, standardized numerics) is rebuilt as ONNX
nodes in front of the model, so the exported version takes the same inputs as its parent.

PyTorch: the TorchScript-based exporter (``dynamo=False``) is used on purpose. It needs only
``onnx``, keeps the weights inside the one ``.onnx`` file (the size on disk is the model), and
handles the ``nn.Sequential`` networks readyml trains; the ``torch.export``-based default
needs ``onnxscript`` and writes weights to a separate ``.data`` file unless told not to. Its
``DeprecationWarning`` is silenced for that one call only.

Classifier graphs keep only their probability output: labels are the argmax of the
probabilities mapped to the parent's classes (stored in ``flavor.json``), so string labels
survive the trip even where a converter would emit integer codes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from readyml.compress._onnx import check, identifier, import_library
from readyml.errors import FlavorError
from readyml.flavors import ModelAdapter
from readyml.flavors.onnx import OnnxModel
from readyml.types import JSON

# ONNX opset of exported graphs (ai.onnx domain); 17 is read by every ONNX Runtime since 1.13.
DEFAULT_OPSET = 17
# onnxmltools 1.16 converts boosting models up to this opset.
BOOSTING_OPSET = 15
# The input the model graph takes after readyml's preprocessing nodes.
ENCODED = "readyml_encoded"
# The deprecation notices torch 2.9+ gives for the TorchScript exporter (see above).
_EXPORTER_DEPRECATIONS = (
    r"You are using the legacy TorchScript-based ONNX export",
    r"The feature will be removed",
)
# Outputs whose name marks class probabilities, per converter.
_PROBA_OUTPUTS = ("probabilities", "output_probability")


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "…"


# -- preprocessing as ONNX nodes ------------------------------------------------------------


def encoder_graph(state: JSON, *, opset: int, ir_version: int) -> Any:
    """An ONNX model that does what a fitted ``TabularEncoder`` does, from raw columns.

    Inputs: one ``[N, 1]`` tensor per column (string for categoricals, float otherwise).
    Output :data:`ENCODED`: one-hot blocks in category order, then the numerics, standardized
    with missing values set to zero when the encoder standardizes, else passed through.
    """
    onnx = import_library("onnx")
    helper, tensor = onnx.helper, onnx.TensorProto
    inputs, nodes, initializers, blocks = [], [], [], []
    for name in state["categorical"]:
        column = identifier(str(name))
        categories = [str(value) for value in state["categories"][name]]
        inputs.append(helper.make_tensor_value_info(column, tensor.STRING, [None, 1]))
        if not categories:
            continue
        # ai.onnx.ml OneHotEncoder: [N, 1] strings -> [N, 1, K]; unknown values give zeros.
        nodes += [
            helper.make_node(
                "OneHotEncoder",
                [column],
                [f"readyml_onehot3_{column}"],
                domain="ai.onnx.ml",
                cats_strings=categories,
                zeros=1,
            ),
            helper.make_node(
                "Flatten", [f"readyml_onehot3_{column}"], [f"readyml_onehot_{column}"], axis=1
            ),
        ]
        blocks.append(f"readyml_onehot_{column}")
    numeric = [identifier(str(name)) for name in state["numeric"]]
    for column in numeric:
        inputs.append(helper.make_tensor_value_info(column, tensor.FLOAT, [None, 1]))
    if numeric:
        nodes.append(helper.make_node("Concat", numeric, ["readyml_numbers"], axis=1))
        numbers = "readyml_numbers"
        if state["standardize"]:
            for key, op in (("means", "Sub"), ("scales", "Div")):
                values = np.asarray(state[key], dtype=np.float32)
                initializers.append(onnx.numpy_helper.from_array(values, f"readyml_{key}"))
                nodes.append(
                    helper.make_node(op, [numbers, f"readyml_{key}"], [f"readyml_{op.lower()}"])
                )
                numbers = f"readyml_{op.lower()}"
            initializers.append(
                onnx.numpy_helper.from_array(np.zeros(1, dtype=np.float32), "readyml_zero")
            )
            nodes += [
                helper.make_node("IsNaN", [numbers], ["readyml_isnan"]),
                helper.make_node(
                    "Where", ["readyml_isnan", "readyml_zero", numbers], ["readyml_filled"]
                ),
            ]
            numbers = "readyml_filled"
        blocks.append(numbers)
    if not blocks:
        raise FlavorError("ONNX export: the model has no input columns to encode")
    nodes.append(helper.make_node("Concat", blocks, [ENCODED], axis=1))
    graph = helper.make_graph(
        nodes,
        "readyml_preprocessing",
        inputs,
        [helper.make_tensor_value_info(ENCODED, tensor.FLOAT, [None, None])],
        initializer=initializers,
    )
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=ir_version)


def _default_opset(model: Any) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def with_encoder(core: Any, state: JSON | None) -> Any:
    """Put the encoder's nodes in front of ``core`` (whose single input is renamed)."""
    onnx = import_library("onnx")
    _rename_input(core, ENCODED)
    if state is None:
        return core
    opset = _default_opset(core) or DEFAULT_OPSET
    prefix = encoder_graph(state, opset=opset, ir_version=core.ir_version)
    if _default_opset(core) is None:
        core.opset_import.append(onnx.helper.make_opsetid("", opset))
    merged = onnx.compose.merge_models(prefix, core, io_map=[(ENCODED, ENCODED)])
    # merge_models may list the default domain twice ('' and 'ai.onnx'); keep one entry.
    versions: dict[str, int] = {}
    for entry in merged.opset_import:
        domain = "" if entry.domain == "ai.onnx" else entry.domain
        versions[domain] = max(versions.get(domain, 0), entry.version)
    del merged.opset_import[:]
    merged.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in versions.items())
    return merged


def _rename_input(model: Any, name: str) -> None:
    graph = model.graph
    if len(graph.input) != 1:
        raise FlavorError(f"ONNX export: expected one graph input, found {len(graph.input)}")
    old = graph.input[0].name
    graph.input[0].name = name
    for node in graph.node:
        for index, value in enumerate(node.input):
            if value == old:
                node.input[index] = name


def _keep_outputs(model: Any, names: list[str]) -> None:
    """Keep only the named graph outputs and make every output's batch dimension dynamic."""
    graph = model.graph
    kept = [output for output in graph.output if output.name in names]
    del graph.output[:]
    graph.output.extend(kept)
    for output in graph.output:
        dims = output.type.tensor_type.shape.dim
        if len(dims):
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"


def _probabilities_only(model: Any, task: str) -> None:
    if task != "classification":
        _keep_outputs(model, [output.name for output in model.graph.output])
        return
    names = [output.name for output in model.graph.output]
    proba = next((name for name in names if name in _PROBA_OUTPUTS), None)
    if proba is None:
        raise FlavorError(f"ONNX export: expected a probability output, found {names}")
    _keep_outputs(model, [proba])


# -- converters -----------------------------------------------------------------------------


def _sklearn_graph(model: ModelAdapter, opset: int) -> Any:
    import_library("skl2onnx")
    from skl2onnx import __version__ as skl2onnx_version
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    fitted: Any = model.model_  # type: ignore[attr-defined]
    final = fitted.steps[-1][1] if isinstance(fitted, Pipeline) else fitted
    features = model.signature()["inputs"]
    per_column = isinstance(fitted, Pipeline) and isinstance(fitted.steps[0][1], ColumnTransformer)
    if per_column:
        initial_types = [
            (
                str(f["name"]),  # skl2onnx makes identifiers of them itself
                FloatTensorType([None, 1])
                if f["dtype"].startswith(("float", "int", "uint", "bool"))
                else StringTensorType([None, 1]),
            )
            for f in features
        ]
    else:
        initial_types = [("input", FloatTensorType([None, len(features)]))]
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
    try:
        graph = convert_sklearn(
            fitted, initial_types=initial_types, options=options, target_opset=opset
        )
    except Exception as exc:  # skl2onnx raises RuntimeError, ValueError, TypeError, NameError
        hint = ""
        chain = f"{exc} {exc.__cause__} {exc.__context__}"
        if "Expected an int, got a boolean" in chain or "HistGradientBoosting" in str(final):
            hint = (
                "; this is a known incompatibility of skl2onnx with this scikit-learn's "
                "histogram gradient boosting: use GradientBoosting* or LightGBM/XGBoost to export"
            )
        raise FlavorError(
            f"model {type(final).__name__}: skl2onnx {skl2onnx_version} cannot convert it to "
            f"ONNX ({_first_line(exc)}){hint}; serve it with runtime 'native'"
        ) from exc
    _probabilities_only(graph, model.task)
    return graph


def _boosting_graph(model: ModelAdapter, opset: int) -> Any:
    import_library("onnxmltools")
    from onnxmltools import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    native: Any = model.model_  # type: ignore[attr-defined]
    encoder = model.encoder_  # type: ignore[attr-defined]
    width = int(encoder.transform(_empty_frame(model)).shape[1])
    initial = [("input", FloatTensorType([None, width]))]
    convert: Callable[..., Any] = {"xgboost": convert_xgboost, "lightgbm": convert_lightgbm}[
        model.flavor
    ]
    arguments: dict[str, Any] = {"zipmap": False} if model.flavor == "lightgbm" else {}
    try:
        core = convert(
            native, initial_types=initial, target_opset=min(opset, BOOSTING_OPSET), **arguments
        )
    except Exception as exc:  # onnxmltools raises RuntimeError, ValueError, NotImplementedError
        raise FlavorError(
            f"model {type(native).__name__}: onnxmltools cannot convert it to ONNX "
            f"({_first_line(exc)}); serve it with runtime 'native'"
        ) from exc
    _probabilities_only(core, model.task)
    return with_encoder(core, encoder.to_json())


def _empty_frame(model: ModelAdapter) -> Any:
    import pandas as pd

    columns = {}
    for feature in model.signature()["inputs"]:
        dtype = feature["dtype"]
        numeric = dtype.startswith(("float", "int", "uint", "bool"))
        columns[str(feature["name"])] = pd.Series([], dtype="float64" if numeric else "object")
    return pd.DataFrame(columns)


def _torch_graph(model: ModelAdapter, opset: int) -> Any:
    import io

    import torch
    from torch import nn

    onnx = import_library("onnx")
    module: nn.Module = model.module_  # type: ignore[attr-defined]
    encoder = model.encoder_  # type: ignore[attr-defined]
    if encoder is None:
        shape = model.signature()["inputs"][0].get("shape") or [None, model.n_inputs_]  # type: ignore[attr-defined]
        example = torch.zeros((1, *[int(size) for size in shape[1:]]), dtype=torch.float32)
    else:
        example = torch.zeros((1, model.n_inputs_), dtype=torch.float32)  # type: ignore[attr-defined]
    wrapped: nn.Module = _torch_outputs(module, model)
    wrapped.eval()
    buffer = io.BytesIO()
    output = "probabilities" if model.task == "classification" else "variable"
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated upstream; see the module docstring.
            for message in _EXPORTER_DEPRECATIONS:
                warnings.filterwarnings("ignore", message=message, category=DeprecationWarning)
            torch.onnx.export(
                wrapped,
                (example,),
                buffer,  # type: ignore[arg-type]  # file objects are accepted
                dynamo=False,
                input_names=["input"],
                output_names=[output],
                dynamic_axes={"input": {0: "N"}, output: {0: "N"}},
                opset_version=opset,
            )
    except Exception as exc:  # torch.onnx raises its own OnnxExporterError and RuntimeError
        raise FlavorError(
            f"model {type(module).__name__}: torch.onnx cannot export it ({_first_line(exc)})"
        ) from exc
    core = onnx.load_from_string(buffer.getvalue())
    if encoder is None:
        return core
    return with_encoder(core, encoder.to_json())


def _torch_outputs(module: Any, model: ModelAdapter) -> Any:
    """The module exported: softmax for classifiers, target units for regressors."""
    import torch
    from torch import nn

    regression = model.task == "regression"

    class Outputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module
            if regression:
                mean = np.asarray(model.target_mean_, dtype=np.float32)  # type: ignore[attr-defined]
                scale = np.asarray(model.target_scale_, dtype=np.float32)  # type: ignore[attr-defined]
                self.register_buffer("mean", torch.from_numpy(mean))
                self.register_buffer("scale", torch.from_numpy(scale))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.inner(x)
            if regression:
                scaled: torch.Tensor = out * self.get_buffer("scale") + self.get_buffer("mean")
                return scaled
            return torch.softmax(out, dim=1)

    return Outputs()


_CONVERTERS: dict[str, Callable[[ModelAdapter, int], Any]] = {
    "sklearn": _sklearn_graph,
    "xgboost": _boosting_graph,
    "lightgbm": _boosting_graph,
    "torch": _torch_graph,
}


def export_onnx(model: ModelAdapter, path: Path, *, opset: int = DEFAULT_OPSET) -> OnnxModel:
    """Convert ``model`` to an ONNX graph at ``path`` (dynamic batch) and check it.

    Args:
        model: A fitted sklearn, xgboost, lightgbm or torch adapter.
        path: Where to write the ``.onnx`` file.
        opset: The ai.onnx opset to target.

    Returns:
        An :class:`OnnxModel` over the file, with the parent's classes and input signature.

    Raises:
        FlavorError: The flavor or estimator cannot be converted (the message names it), or
            the graph fails ``onnx.checker``.

    >>> from sklearn.linear_model import LogisticRegression
    >>> import pandas as pd, tempfile
    >>> from readyml.flavors.sklearn import SklearnModel
    >>> frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    >>> parent = SklearnModel(estimator=LogisticRegression()).fit(frame, ["a", "a", "b", "b"])
    >>> onnx_model = export_onnx(parent, Path(tempfile.mkdtemp()) / "model.onnx")
    >>> onnx_model.predict(frame).tolist()
    ['a', 'a', 'b', 'b']
    """
    converter = _CONVERTERS.get(model.flavor)
    if converter is None:
        raise FlavorError(
            f"flavor {model.flavor!r}: ONNX export supports {sorted(_CONVERTERS)}, "
            f"found {model.flavor!r}"
        )
    graph = converter(model, opset)
    # skl2onnx names each graph with a fresh UUID; a fixed name keeps an export's bytes (and
    # so its fingerprint) the same each time, so a repeated export is found, not copied.
    graph.graph.name = f"readyml_{model.flavor}"
    sorted_opsets(graph)
    for graph_input in graph.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        if len(dims):
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"
    check(graph)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(graph.SerializeToString())
    classes = model.classes_.tolist() if model.task == "classification" else None
    return OnnxModel(
        path=path, task=model.task, classes=classes, features=model.signature()["inputs"]
    ).open()


def sorted_opsets(graph: Any) -> None:
    """List the graph's opset imports by domain (in place).

    skl2onnx lists them in the order of a set of strings, which changes with the process's
    hash seed: the same export would get other bytes, and so another fingerprint.
    """
    opsets = sorted((o.domain, o.version) for o in graph.opset_import)
    del graph.opset_import[:]
    for domain, version in opsets:
        entry = graph.opset_import.add()
        entry.domain, entry.version = domain, version


def to_ort(onnx_path: Path, ort_path: Path) -> Path:
    """Convert an ONNX file to ONNX Runtime's mobile (ORT, flatbuffer) format.

    Only the basic, hardware-independent graph optimizations are applied, so the file runs
    on any ONNX Runtime build, as the mobile packages recommend.
    """
    runtime = import_library("onnxruntime")
    Path(ort_path).parent.mkdir(parents=True, exist_ok=True)
    options = runtime.SessionOptions()
    options.graph_optimization_level = runtime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(ort_path)
    options.add_session_config_entry("session.save_model_format", "ORT")
    try:
        runtime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own errors
        raise FlavorError(f"{Path(onnx_path).name}: cannot convert to ORT format ({exc})") from exc
    return Path(ort_path)
