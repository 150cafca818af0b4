"""The ONNX flavor: predict with an exported ``.onnx`` graph through ONNX Runtime (CPU).

Input feeding follows the graph. One graph input: the frame's numeric columns (or an array)
as one 2-D tensor of the input's element type. One input per column: each column as an
``[N, 1]`` tensor of its declared type, matched by name. Outputs: a label output and a
probability output (skl2onnx's ``label``/``probabilities``, with ZipMap either off or turned
back into a matrix here); a graph with a single classifier output (e.g. exported logits) is
read as scores, passed through softmax unless its rows already sum to one.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd

from readyml.errors import FlavorError
from readyml.flavors._base import (
    Array,
    Features,
    Task,
    check_task,
    classes_from_json,
    not_fitted,
    write_flavor_file,
)
from readyml.flavors._imports import import_library
from readyml.flavors._signature import make_signature
from readyml.types import JSON

MODEL_FILE = "model.onnx"
# ONNX tensor element types and the numpy dtype fed for each.
_ELEMENT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}
# Node attributes in which ai.onnx.ml classifiers store their class labels.
_CLASS_ATTRIBUTES = ("classlabels_strings", "classlabels_int64s", "classlabels_ints")
_LABEL_NAMES = ("label", "output_label")
_PROBA_NAMES = ("probabilities", "output_probability")
# Row sums within this distance of one are read as probabilities, not logits.
_PROBA_TOLERANCE = 1e-4
_LIBRARIES = ("onnxruntime", "onnx", "numpy")


def _identifier(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


def graph_classes(path: Path) -> Array | None:
    """Class labels declared by a classifier node in the graph, if any."""
    onnx = import_library("onnx", flavor="onnx")
    model = onnx.load(str(path), load_external_data=False)
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.name in _CLASS_ATTRIBUTES:
                values = onnx.helper.get_attribute_value(attribute)
                return np.asarray([v.decode() if isinstance(v, bytes) else v for v in values])
    return None


class OnnxModel:
    """Adapter that serves an ONNX graph; it cannot be trained.

    Args:
        path: The ``.onnx`` file.
        task: ``"classification"`` or ``"regression"``.
        classes: Class labels in probability-column order; read from the graph when omitted.
        features: Signature inputs (``{"name", "dtype"}``); the graph's inputs when omitted.
    """

    flavor: str = "onnx"

    def __init__(
        self,
        *,
        path: Path | None = None,
        task: Task = "classification",
        classes: Sequence[Any] | None = None,
        features: list[JSON] | None = None,
    ) -> None:
        self.path = path
        self.task = task
        self.classes = classes
        self.features = features

    def fit(
        self,
        X: pd.DataFrame,
        y: npt.ArrayLike,
        *,
        X_valid: pd.DataFrame | None = None,
        y_valid: npt.ArrayLike | None = None,
        sample_weight: npt.ArrayLike | None = None,
    ) -> Self:
        """Always fails: ONNX graphs are exported from trained models."""
        raise FlavorError("flavor 'onnx' cannot be trained; export a trained model to ONNX instead")

    def open(self) -> Self:
        """Create the ONNX Runtime session (done on first use otherwise)."""
        if self.path is None:
            raise FlavorError("flavor 'onnx': expected the path of a .onnx file, found None")
        runtime = import_library("onnxruntime", flavor="onnx")
        try:
            self.session_ = runtime.InferenceSession(
                str(self.path), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph errors
            raise FlavorError(
                f"{Path(self.path).name}: ONNX Runtime cannot load it ({exc})"
            ) from exc
        if self.classes is not None:
            self._classes: Array | None = np.asarray(self.classes)
        elif self.task == "classification":
            self._classes = graph_classes(Path(self.path))
        else:
            self._classes = None
        return self

    def _session(self) -> Any:
        if not hasattr(self, "session_"):
            if self.path is None:
                raise not_fitted(self, "predict")
            self.open()
        return self.session_

    def _feeds(self, X: Features) -> dict[str, Any]:
        inputs = self._session().get_inputs()
        if len(inputs) == 1:
            graph_input = inputs[0]
            dtype = _ELEMENT_TYPES.get(graph_input.type, np.float32)
            if isinstance(X, pd.DataFrame):
                numeric = X.select_dtypes(include=["number", "bool"])
                values = numeric.to_numpy(dtype=dtype)
            else:
                values = np.asarray(X, dtype=dtype)
            return {graph_input.name: values}
        if not isinstance(X, pd.DataFrame):
            raise FlavorError(
                f"features: the ONNX graph has {len(inputs)} inputs (one per column), expected a "
                f"frame, found {type(X).__name__}"
            )
        feeds: dict[str, Any] = {}
        # Converters rename columns into identifiers ('petal size' -> 'petal_size').
        by_identifier = {_identifier(str(name)): name for name in X.columns}
        for graph_input in inputs:
            name = graph_input.name if graph_input.name in X.columns else None
            name = by_identifier.get(graph_input.name) if name is None else name
            if name is None:
                raise FlavorError(
                    f"column {graph_input.name!r}: required by the ONNX graph, missing from the "
                    f"frame, which has columns {[str(c) for c in X.columns]}"
                )
            column_dtype = _ELEMENT_TYPES.get(graph_input.type)
            if column_dtype is None:
                raise FlavorError(
                    f"ONNX input {graph_input.name!r}: expected a tensor type among "
                    f"{sorted(_ELEMENT_TYPES)}, found {graph_input.type}"
                )
            column = X[name]
            column_values: Array
            if column_dtype is np.object_:
                column_values = column.astype(str).to_numpy(dtype=object)
            else:
                column_values = column.to_numpy(dtype=column_dtype)
            feeds[graph_input.name] = column_values.reshape(-1, 1)
        return feeds

    def _run(self, X: Features) -> tuple[Array | None, Array | None]:
        """The label output (if any) and the score/probability (or value) output."""
        session = self._session()
        names = [output.name for output in session.get_outputs()]
        results = dict(zip(names, session.run(None, self._feeds(X)), strict=True))
        label_name = next((name for name in names if name in _LABEL_NAMES), None)
        score_name = next((name for name in names if name in _PROBA_NAMES), None)
        if label_name is None and score_name is None:
            if len(names) == 1:
                return None, self._matrix(results[names[0]])
            label_name, score_name = names[0], names[1]
        labels = None if label_name is None else np.asarray(results[label_name]).ravel()
        scores = None if score_name is None else self._matrix(results[score_name])
        return labels, scores

    def _matrix(self, output: Any) -> Array:
        if isinstance(output, list) and output and isinstance(output[0], dict):
            keys = list(output[0]) if self._classes is None else self._classes.tolist()
            return np.asarray([[row[key] for key in keys] for row in output], dtype=np.float64)
        return np.asarray(output)

    def predict(self, X: Features) -> Array:
        """Labels from the graph's label output (or argmax of its scores), or values."""
        labels, scores = self._run(X)
        if self.task == "regression":
            values = labels if scores is None else scores
            if values is None:
                raise FlavorError("ONNX graph: expected a value output, found none")
            return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values
        if labels is not None:
            return labels
        if scores is None:
            raise FlavorError("ONNX graph: expected a label or score output, found none")
        return np.asarray(self.classes_[np.argmax(scores, axis=1)])

    def predict_proba(self, X: Features) -> Array:
        """Probabilities from the graph (softmax of scores that are not probabilities)."""
        if self.task != "classification":
            raise FlavorError("flavor 'onnx': a regression model has no predict_proba")
        _, scores = self._run(X)
        if scores is None or scores.ndim != 2:
            raise FlavorError(
                "ONNX graph: expected a probability output of shape [N, K], found none"
            )
        scores = scores.astype(np.float64)
        rows = scores.sum(axis=1)
        # float32 rounding leaves probabilities like -1.2e-07 (a forest's 1 - p): still ones.
        if np.all(scores >= -_PROBA_TOLERANCE) and np.allclose(rows, 1.0, atol=_PROBA_TOLERANCE):
            clipped: Array = np.clip(scores, 0.0, 1.0)
            return clipped
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        probabilities: Array = shifted / shifted.sum(axis=1, keepdims=True)
        return probabilities

    @property
    def has_proba(self) -> bool:
        """Whether the graph gives class scores."""
        if self.task != "classification":
            return False
        outputs = self._session().get_outputs()
        # A lone float output of a classifier holds scores (e.g. exported logits).
        lone_scores = len(outputs) == 1 and outputs[0].type in ("tensor(float)", "tensor(double)")
        return len(outputs) >= 2 or lone_scores

    @property
    def classes_(self) -> Array:
        """Class labels given or read from the graph."""
        if self.task != "classification":
            raise AttributeError("a regression model has no classes_")
        self._session()
        if self._classes is None:
            raise FlavorError(
                "flavor 'onnx': expected class labels (pass classes=... or a graph with a "
                "classifier node), found none"
            )
        return self._classes

    def _features(self) -> list[JSON]:
        if self.features is not None:
            return [dict(entry) for entry in self.features]
        return [
            {
                "name": graph_input.name,
                "dtype": str(np.dtype(_ELEMENT_TYPES.get(graph_input.type, np.float32))).replace(
                    "object", "string"
                ),
                "shape": [dim if isinstance(dim, int) else None for dim in graph_input.shape],
            }
            for graph_input in self._session().get_inputs()
        ]

    def signature(self) -> JSON:
        """Inputs (given, or the graph's) and the output description."""
        classes = self.classes_ if self.task == "classification" else None
        return make_signature(
            self._features(), task=self.task, classes=classes, proba=self.has_proba
        )

    def save(self, directory: Path) -> list[Path]:
        """Copy the graph into ``directory`` as ``model.onnx`` and write ``flavor.json``."""
        self._session()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / MODEL_FILE
        if self.path is None:
            raise not_fitted(self, "save")
        if Path(self.path).resolve() != path.resolve():
            shutil.copyfile(self.path, path)
        classes = self.classes_ if self.task == "classification" else None
        meta = write_flavor_file(
            directory,
            flavor=self.flavor,
            task=self.task,
            files=[path],
            features=self._features(),
            classes=classes,
            libraries=_LIBRARIES,
            extra={"format": "onnx"},
        )
        return [path, meta]

    @classmethod
    def load(cls, directory: Path, content: JSON) -> OnnxModel:
        """Open a saved graph described by a verified ``flavor.json``."""
        classes = classes_from_json(content)
        return cls(
            path=Path(directory) / MODEL_FILE,
            task=check_task(str(content["task"])),
            classes=None if classes is None else classes.tolist(),
            features=list(content["features"]),
        ).open()
