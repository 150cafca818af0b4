"""The Predictor: a registered version loaded with its signature, schema and runtime.

A predictor takes *parts* (the checked rows of one request) and answers a whole batch of
them in one model call. Three input layouts, fixed at load from the signature:

* ``numeric``: every feature is a number: a part is a ``(rows, features)`` float64 block;
* ``mixed``: some feature is a string, boolean or date: a part is a dict of typed columns;
* ``tensor``: the model takes one array (images, embeddings): a part is that array.

Classifiers are answered from one ``predict_proba`` call: the label is the class of highest
probability (what scikit-learn's ``predict`` does), so a batch costs one pass, not two.
A scikit-learn pipeline whose preprocessing only passes numeric columns through is called
without that step on the block itself (checked against the full pipeline at load).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import sklearn

from readyml.data.schema import Schema
from readyml.errors import FlavorError, PredictionFailed
from readyml.flavors import ModelAdapter, load_model
from readyml.flavors._base import Array
from readyml.predict.direct import (
    FLOAT32_MAX,
    ProbaFunction,
    direct_proba,
    fits_float32,
    probe_rows,
)
from readyml.predict.inputs import (
    Feature,
    InvalidInput,
    NumericBlock,
    cast_tensor,
    check_lengths,
    describe,
    features_from,
    missing,
)
from readyml.predict.runtime import Runtime as Runtime  # re-exported: callers import it here
from readyml.predict.runtime import RuntimeRequest, choose_runtime
from readyml.registry import ModelVersion, Registry
from readyml.types import JSON

Layout = Literal["numeric", "mixed", "tensor"]
Part = Array | dict[str, Array]
RUNTIMES: tuple[RuntimeRequest, ...] = ("native", "onnx", "auto")
# Largest absolute difference allowed between a fast path and the full model at load.
PARITY_TOLERANCE = 1e-9
# Larger batches go to scikit-learn: its checks cost little per row there, and a forest
# with n_jobs > 1 spreads its trees over threads where the direct path runs them in one.
DIRECT_MAX_ROWS = 2048


@dataclass(frozen=True)
class Prediction:
    """The answer for a batch: labels (or values, also as a Python list) and probabilities.

    ``inputs`` is the batch the model saw (an array, or a frame for mixed features): the
    request log reads logged rows from it.
    """

    labels: Array
    proba: Array | None
    labels_list: list[Any]
    rows: int
    inputs: Array | pd.DataFrame | None = None


def nonfinite_rows(prediction: Prediction, offset: int = 0, rows: int | None = None) -> int:
    """How many rows of a prediction hold NaN or infinity (labels or probabilities)."""
    stop = prediction.rows if rows is None else offset + rows
    bad = np.zeros(stop - offset, dtype=bool)
    labels = prediction.labels[offset:stop]
    if labels.dtype.kind in "fc":
        bad |= ~np.isfinite(labels)
    if prediction.proba is not None:
        proba = np.asarray(prediction.proba[offset:stop], dtype=np.float64)
        bad |= ~np.isfinite(proba).all(axis=1)
    return int(bad.sum())


class NonFiniteOutput(PredictionFailed):
    """A model answered NaN or infinity for ``rows`` of a request's (or batch's) rows."""

    def __init__(self, predictor: Predictor, rows: int, of: int) -> None:
        super().__init__(
            f"model {predictor.name!r} version {predictor.version}: expected finite outputs, "
            f"found NaN or infinity in {rows} of {of} row(s) for this input"
        )
        self.rows = rows


def _all_finite(prediction: Prediction) -> bool:
    """Whether a prediction holds no NaN or infinity (one pass, for every served batch)."""
    labels, proba = prediction.labels, prediction.proba
    if labels.dtype.kind in "fc" and not np.isfinite(labels).all():
        return False
    return proba is None or proba.dtype.kind not in "fc" or bool(np.isfinite(proba).all())


def takes_tensor(signature: JSON) -> bool:
    """Whether a version with ``signature`` takes one tensor (an image, a sequence), not
    tabular features."""
    inputs = signature.get("inputs", [])
    return len(inputs) == 1 and inputs[0].get("shape") is not None


class Predictor:
    """A model version ready to answer requests.

    Args:
        model: The loaded flavor adapter.
        name: Model name in the registry.
        version: Version number.
        signature: The version's signature (``inputs``, ``output``).
        schema: The checked-in feature schema (nullability); optional.
        runtime: ``native`` or ``onnx`` (what ``model`` runs on, for metadata).
        runtime_choice: Why this runtime: ``requested``, or the sentence ``runtime: auto``
            wrote (see :mod:`readyml.predict.runtime`).
        load_time_s: Seconds taken to load (for metrics).

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> from readyml.flavors.sklearn import SklearnModel
        >>> frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
        >>> model = SklearnModel(estimator=LogisticRegression()).fit(frame, ["a", "a", "b", "b"])
        >>> predictor = Predictor(model=model, name="m", version=1, signature=model.signature())
        >>> part, rows = predictor.from_records([{"x": 3.0}])
        >>> predictor.predict_parts([part]).labels_list
        ['b']
    """

    def __init__(
        self,
        *,
        model: ModelAdapter,
        name: str,
        version: int,
        signature: JSON,
        schema: Schema | None = None,
        runtime: Runtime = "native",
        runtime_choice: str = "requested",
        load_time_s: float = 0.0,
    ) -> None:
        self.model = model
        self.name = name
        self.version = version
        self.signature = signature
        self.schema = schema
        self.runtime = runtime
        self.runtime_choice = runtime_choice
        self.load_time_s = load_time_s
        self.features: list[Feature] = features_from(signature, schema)
        self.names = [f.name for f in self.features]
        inputs = signature.get("inputs", [])
        self.layout: Layout
        if takes_tensor(signature):
            self.layout = "tensor"
            self.tensor_shape: list[int | None] = list(inputs[0]["shape"])
        elif all(f.kind in ("number", "integer") for f in self.features):
            self.layout = "numeric"
        else:
            self.layout = "mixed"
        self.block = NumericBlock(self.features) if self.layout == "numeric" else None
        output = signature.get("output", {})
        self.task: str = str(output.get("task", getattr(model, "task", "regression")))
        classes = output.get("classes")
        self.classes: Array | None = None if classes is None else np.asarray(classes)
        self.has_proba = bool(output.get("proba", False)) and self.classes is not None
        self._fast = self._fast_path()
        self._direct = self._direct_path()

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        registry: Registry,
        ref: str,
        *,
        schema: Schema | None = None,
        runtime: RuntimeRequest = "native",
        allow_pickle: bool = False,
        device: str = "cpu",
        trusted_types: Sequence[str] = (),
    ) -> Predictor:
        """Load ``ref`` (``NAME``, ``NAME:V`` or ``NAME@ALIAS``) from the registry.

        ``trusted_types`` are the project's ``model.trusted_types`` (classes a scikit-learn
        model's skops file may hold beyond the reviewed allow-list; see
        :meth:`readyml.config.Project.trusted_types`).

        ``runtime="auto"`` runs the version's parity-checked ONNX export when its recorded
        latency is lower (:func:`readyml.predict.runtime.choose_runtime`); the predictor keeps
        the version's own name, number and signature either way. ``device`` places a PyTorch
        model (``cpu``, ``cuda``, ``cuda:N``, or ``auto``: the first GPU when present); other
        flavors predict where their library does.

        Raises:
            VersionNotFound: No such model, version or alias.
            IntegrityError: A file of the version does not match its sha256.
            FlavorError: The model cannot be loaded or converted to the runtime.
        """
        if runtime not in RUNTIMES:
            raise FlavorError(f"runtime: expected one of {list(RUNTIMES)}, found {runtime!r}")
        started = time.monotonic()
        version = registry.get(ref)
        used: Runtime = "onnx" if runtime == "onnx" else "native"
        source, why = version, "requested"
        if runtime == "auto":
            choice = choose_runtime(registry, version)
            used, source, why = choice.runtime, choice.version, choice.reason
        with tempfile.TemporaryDirectory(prefix="readyml-predictor-") as tmp:
            directory = registry.download(source, Path(tmp) / "model")
            model = load_model(directory, allow_pickle=allow_pickle, trusted_types=trusted_types)
            if used == "onnx" and model.flavor != "onnx":
                model = to_onnx(model, version, Path(tmp))
        place = getattr(model, "to_device", None)
        if device != "cpu" and callable(place):
            place(device)
        return cls(
            model=model,
            name=version.name,
            version=version.version,
            signature=version.signature,
            schema=schema,
            runtime=used,
            runtime_choice=why,
            load_time_s=time.monotonic() - started,
        )

    def metadata(self) -> JSON:
        """Name, version, runtime (and why), flavor, layout, features and output, as JSON."""
        return {
            "name": self.name,
            "version": self.version,
            "flavor": getattr(self.model, "flavor", "unknown"),
            "runtime": self.runtime,
            "runtime_choice": self.runtime_choice,
            "layout": self.layout,
            "task": self.task,
            "classes": None if self.classes is None else self.classes.tolist(),
            "features": [
                {"name": f.name, "dtype": f.dtype, "nullable": f.nullable} for f in self.features
            ],
        }

    # -- request parts -------------------------------------------------------------------

    def from_records(self, records: Sequence[Any]) -> tuple[Part, int]:
        """A part from JSON records ``[{"feature": value, ...}, ...]``."""
        if self.layout == "tensor":
            raise InvalidInput(
                "records: this model takes one tensor, not feature records; use the V2 "
                "infer endpoint or 'inputs'",
                field="records",
                expected="a tensor",
                found="records",
            )
        if self.block is not None:
            return self.block.from_records(records), len(records)
        columns: dict[str, list[Any]] = {}
        for feature in self.features:
            try:
                columns[feature.name] = [record[feature.name] for record in records]
            except (KeyError, TypeError):
                raise self._record_error(records) from None
        return self.from_columns(columns)

    def _record_error(self, records: Sequence[Any]) -> InvalidInput:
        return NumericBlock(self.features)._record_error(records)

    def from_columns(self, columns: Mapping[str, Any]) -> tuple[Part, int]:
        """A part from columns ``{"feature": [values ...]}``."""
        if self.block is not None:
            block = self.block.from_columns(columns)
            return block, len(block)
        if self.layout == "tensor":
            raise InvalidInput(
                "inputs: this model takes one tensor, not feature columns",
                field="inputs",
                expected="a tensor",
                found="columns",
            )
        lists = []
        for feature in self.features:
            values = columns.get(feature.name)
            if values is None:
                raise missing(feature.name, feature.expected_list, list(columns))
            if not isinstance(values, list | np.ndarray):
                raise InvalidInput(
                    f"feature {feature.name!r}: expected a list of values, found "
                    f"{describe(values)}",
                    field=feature.name,
                    expected="a list of values",
                    found=describe(values),
                )
            lists.append(values)
        check_lengths(self.names, lists)
        part = {
            f.name: self._typed(f, values) for f, values in zip(self.features, lists, strict=True)
        }
        return part, len(lists[0]) if lists else 0

    @staticmethod
    def _typed(feature: Feature, values: Any) -> Array:
        if isinstance(values, np.ndarray):
            return values
        return feature.check_values(values)

    def from_rows(self, rows: Sequence[Any]) -> tuple[Part, int]:
        """A part from positional rows (lists in feature order)."""
        if self.block is not None:
            return self.block.from_rows(rows), len(rows)
        if self.layout == "tensor":
            return self.from_tensor(_tensor_rows(rows))
        width = len(self.names)
        for index, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != width:
                raise InvalidInput(
                    f"row {index}: expected a list of {width} values in the order {self.names}, "
                    f"found {describe(row)}",
                    field=f"row {index}",
                    expected=f"{width} values",
                    found=describe(row),
                )
        return self.from_columns(
            {name: [row[i] for row in rows] for i, name in enumerate(self.names)}
        )

    def from_tensor(self, array: Array) -> tuple[Part, int]:
        """A part from one array: a tensor model's input, or a 2-D block of numeric features."""
        if self.layout == "tensor":
            expected = self.tensor_shape[1:]
            found = list(array.shape[1:])
            if array.ndim != len(self.tensor_shape) or any(
                want is not None and want != got for want, got in zip(expected, found, strict=True)
            ):
                raise InvalidInput(
                    f"input: expected shape {['N', *expected]}, found {list(array.shape)}",
                    field="input",
                    expected=f"shape {['N', *expected]}",
                    found=f"shape {list(array.shape)}",
                )
            return np.ascontiguousarray(array), len(array)
        if self.block is None:
            raise InvalidInput(
                "input: a single 2-D tensor needs every feature to be numeric; send one "
                "tensor per feature column instead",
                field="inputs",
                expected="one tensor per feature",
                found="one 2-D tensor",
            )
        width = len(self.names)
        if array.ndim != 2 or array.shape[1] != width:
            raise InvalidInput(
                f"input: expected shape [N, {width}] (features {self.names}), found "
                f"{list(array.shape)}",
                field="input",
                expected=f"shape [N, {width}]",
                found=f"shape {list(array.shape)}",
            )
        if array.dtype.kind not in "biuf":
            raise InvalidInput(
                f"input: expected a numeric tensor, found dtype {array.dtype}",
                field="input",
                expected="a numeric tensor",
                found=str(array.dtype),
            )
        block = array.astype(np.float64, copy=False)
        self.block.check_nulls(block, null=math.nan)  # JSON has no NaN: it came in binary
        if self.block.integer_columns:
            self.block.check_integers(block, fractions=array.dtype.kind == "f")
        return block, len(block)

    # -- predicting ---------------------------------------------------------------------

    def join(self, parts: Sequence[Part]) -> Array | pd.DataFrame:
        """The model input for a batch of parts: one block, array or frame."""
        if self.layout != "mixed":
            blocks = [part for part in parts if isinstance(part, np.ndarray)]
            return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        columns = {
            name: np.concatenate([part[name] for part in parts if isinstance(part, dict)])
            for name in self.names
        }
        return pd.DataFrame(columns)

    def beyond_float32(self, part: Part) -> InvalidInput | None:
        """The error for a part the model failed on, when one of its numbers is infinite or
        past float32's range (about ±3.4e38), else None.

        Tree ensembles and ONNX exports compute in float32, so such a number is the
        request's fault, not the model's; it is looked for only after a failure or a batch
        whose numbers do not all fit float32, off the path of requests that succeed.
        """
        if isinstance(part, np.ndarray):
            columns = {"input": part} if self.layout == "tensor" else None
            if columns is None and part.ndim == 2 and part.shape[1] == len(self.names):
                columns = {name: part[:, index] for index, name in enumerate(self.names)}
        else:
            columns = part
        for name, values in (columns or {}).items():
            values = np.asarray(values)
            if values.dtype.kind != "f":
                continue
            past = np.abs(values) > FLOAT32_MAX  # NaN compares False: nulls are checked apart
            if past.any():
                found = f"number {float(values.flat[int(np.argmax(past))])!r}"
                expected = "a finite number within float32's range (±3.4e38)"
                return InvalidInput(
                    f"{name}: expected {expected}, found {found}",
                    field=name,
                    expected=expected,
                    found=found,
                )
        return None

    def predict_parts(self, parts: Sequence[Part]) -> Prediction:
        """Predict a batch made of request parts, in one model call."""
        return self.predict_input(self.join(parts))

    def serve_parts(self, parts: Sequence[Part]) -> Prediction:
        """Predict a batch of served requests as :meth:`predict_parts`, but refuse what no
        client should get an answer for.

        Refused: a number past float32's range or infinite in any numeric feature (tree
        ensembles and ONNX exports compute in float32, and some runtimes answer such a
        number where others raise), NaN in a tensor (which has no nulls), and an output
        with NaN or infinity. The batcher then runs each request of the batch alone, so
        the error reaches only the request at fault.

        Raises:
            InvalidInput: A number of the input is refused (400).
            NonFiniteOutput: The model answered NaN or infinity (422).
        """
        data = self.join(parts)
        fits = False  # every number finite within float32 (NaN a numeric feature allows is not)
        if isinstance(data, np.ndarray):
            kind = data.dtype.kind
            fits = kind in "iub" or (kind == "f" and fits_float32(data))
            if kind == "f" and not fits:
                self._refuse_numbers(data)
        else:
            columns = {str(name): column.to_numpy() for name, column in data.items()}
            bad_number = self.beyond_float32(columns)
            if bad_number is not None:
                raise bad_number
        prediction = self.predict_input(data, fits=fits)
        if not _all_finite(prediction):
            raise NonFiniteOutput(self, nonfinite_rows(prediction), prediction.rows)
        return prediction

    def _refuse_numbers(self, data: Array) -> None:
        if self.layout == "tensor" and np.isnan(data).any():
            raise InvalidInput(
                "input: expected finite numbers (a tensor has no nulls), found NaN",
                field="input",
                expected="finite numbers",
                found="NaN",
            )
        bad_number = self.beyond_float32(data)
        if bad_number is not None:
            raise bad_number

    def predict_input(self, data: Array | pd.DataFrame, *, fits: bool = False) -> Prediction:
        """Predict an already-joined batch (``fits``: the caller checked that every number
        is finite within float32's range, so it is not checked again)."""
        if self._fast is not None and isinstance(data, np.ndarray):
            proba = self._fast_proba(data, fits=fits)
        else:
            frame = self.frame(data)
            if not self.has_proba:
                labels = np.asarray(self.model.predict(frame))
                return Prediction(labels, None, labels.tolist(), len(labels), data)
            proba = np.asarray(self.model.predict_proba(frame))
        assert self.classes is not None  # has_proba implies classes
        labels = self.classes[np.argmax(proba, axis=1)]
        # Answers serialise probabilities straight from the array (orjson), row slices of a
        # C-ordered array; no per-value Python list is built (a 1,000-class batch of 64 is
        # 64,000 floats).
        proba = np.ascontiguousarray(proba)
        return Prediction(labels, proba, labels.tolist(), len(labels), data)

    def _fast_proba(self, data: Array, *, fits: bool) -> Array:
        if not (fits or fits_float32(data)):  # NaN, inf or past float32: scikit-learn judges
            return np.asarray(self._fast.predict_proba(data))
        if self._direct is not None and len(data) <= DIRECT_MAX_ROWS:
            return self._direct(data)
        # Finite input needs no second check: scikit-learn's per-call validation is most
        # of the cost of a small batch (about half for a logistic regression on one row).
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return np.asarray(self._fast.predict_proba(data))

    def frame(self, data: Array | pd.DataFrame) -> Any:
        """What the flavor adapter takes: a frame with the signature's columns, or an array."""
        if isinstance(data, pd.DataFrame) or self.layout == "tensor":
            return data
        return pd.DataFrame(data, columns=self.names)

    def _fast_path(self) -> Any:
        """The classifier behind a passthrough-only preprocessing step, when it is one."""
        if self.layout != "numeric" or not self.has_proba:
            return None
        pipeline = getattr(self.model, "model_", None)
        steps = getattr(pipeline, "steps", None)
        if not steps or len(steps) != 2:
            return None
        preprocess = steps[0][1]
        transformers = getattr(preprocess, "transformers", None)
        fitted = hasattr(preprocess, "transformers_")
        if not fitted or not transformers or getattr(preprocess, "remainder", None) != "drop":
            return None
        used = list(transformers)
        if len(used) != 1 or used[0][1] != "passthrough" or list(used[0][2]) != self.names:
            return None
        estimator = steps[1][1]
        if not hasattr(estimator, "predict_proba"):
            return None
        probe = probe_rows(len(self.names))
        try:
            expected = np.asarray(self.model.predict_proba(self.frame(probe)))
            fast = np.asarray(estimator.predict_proba(probe))
        except (TypeError, ValueError):
            return None
        if fast.shape != expected.shape or np.abs(fast - expected).max() > PARITY_TOLERANCE:
            return None
        return estimator

    def _direct_path(self) -> ProbaFunction | None:
        """The fast path's probabilities without per-call validation, if they match."""
        if self._fast is None:
            return None
        direct = direct_proba(self._fast)
        if direct is None:
            return None
        probe = probe_rows(len(self.names))
        try:
            expected = np.asarray(self._fast.predict_proba(probe))
            found = direct(probe)
        except (AttributeError, TypeError, ValueError):  # a scikit-learn this code predates
            return None
        if found.shape != expected.shape or np.abs(found - expected).max() > PARITY_TOLERANCE:
            return None
        return direct


def _tensor_rows(rows: Sequence[Any]) -> Array:
    """A tensor model's rows (nested lists of numbers) as float32, or a 400 saying why not."""
    try:
        array = np.asarray(rows)
    except (ValueError, OverflowError):  # ragged rows
        array = None
    if array is None or array.dtype.kind not in "iuf":
        kinds = {"b": "booleans", "U": "text", "S": "text"}
        found = "ragged rows" if array is None else kinds.get(array.dtype.kind, "other values")
        raise InvalidInput(
            f"inputs: expected rows of numbers of one shape, found {found}",
            field="inputs",
            expected="rows of numbers of one shape",
            found=found,
        )
    return cast_tensor(array, np.dtype(np.float32), "inputs")


def to_onnx(model: ModelAdapter, version: ModelVersion, workdir: Path) -> ModelAdapter:
    """Convert a scikit-learn model to ONNX and open it in ONNX Runtime.

    Raises:
        FlavorError: The flavor is not scikit-learn, or skl2onnx cannot convert the model.
    """
    if model.flavor != "sklearn":
        raise FlavorError(
            f"runtime 'onnx': expected a scikit-learn or ONNX model, found flavor "
            f"{model.flavor!r}; export it to ONNX and register that instead"
        )
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import (
            BooleanTensorType,
            DoubleTensorType,
            Int64TensorType,
            StringTensorType,
        )

        from readyml.flavors.onnx import OnnxModel
    except ImportError as exc:
        raise FlavorError("runtime 'onnx' needs the extra: pip install 'readyml[onnx]'") from exc
    types = {
        "number": DoubleTensorType,
        "integer": Int64TensorType,
        "boolean": BooleanTensorType,
        "string": StringTensorType,
        "datetime": StringTensorType,
    }
    features = features_from(version.signature, None)
    initial = [(f.name, types[f.kind]([None, 1])) for f in features]
    estimator: Any = getattr(model, "model_", None)
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    try:
        graph = convert_sklearn(
            estimator, initial_types=initial, options={id(final): {"zipmap": False}}
        )
    except Exception as exc:  # skl2onnx raises many unrelated types
        raise FlavorError(f"runtime 'onnx': skl2onnx cannot convert {version.ref}: {exc}") from exc
    path = workdir / "model.onnx"
    path.write_bytes(graph.SerializeToString())
    output = version.signature.get("output", {})
    onnx_model = OnnxModel(
        path=path,
        task=model.task,
        classes=output.get("classes"),
        features=list(version.signature.get("inputs", [])),
    ).open()
    return onnx_model
