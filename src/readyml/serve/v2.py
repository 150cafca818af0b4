"""The Open Inference Protocol (V2, REST): typed tensors in and out, binary tensor extension.

Spec: https://github.com/kserve/open-inference-protocol (``open_inference_rest.md``;
binary data: the ``binary_tensor_data`` extension). A tabular model takes one tensor per
feature column, shape ``[N]`` (or ``[N, 1]``), named as the column (the pandas-codec
convention of other V2 servers), or, when every feature is numeric, one ``[N, features]``
tensor. A tensor model takes its one input. Outputs are ``predict`` (labels or values) and,
for classifiers, ``predict_proba`` (``[N, classes]``, FP64). Parameters the server does not
use are accepted and ignored, as the spec allows.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from readyml.errors import BadRequest
from readyml.flavors._base import Array
from readyml.predict import Feature, InvalidInput, Part, Prediction, Predictor
from readyml.predict.inputs import (
    cast_tensor,
    describe,
    may_be_rounded,
    shorten,
    with_exact_integers,
)
from readyml.serve._http import Request, parse_json

# Datatypes of the protocol and the numpy dtype each is read as (little-endian when binary).
DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
# Datatypes each feature kind accepts.
_ACCEPTS = {
    "number": frozenset(DATATYPES) - {"BOOL", "BYTES"},
    "integer": frozenset(
        {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
    ),
    "boolean": frozenset({"BOOL"}),
    "string": frozenset({"BYTES"}),
    "datetime": frozenset({"BYTES"}),
}
_FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})
_NARROW_FLOAT_MAX = {name: float(np.finfo(DATATYPES[name]).max) for name in ("FP16", "FP32")}
# The JSON values each datatype takes, and how an error names them: a number for a float, an
# integral number for an integer (``5.0`` is one, ``5.5`` is not), ``true``/``false`` for BOOL.
# numpy alone would read ``true`` as 1.0, ``"0.2"`` as 0.2 and truncate 5.5 to 5.
_JSON_VALUES: dict[str, tuple[frozenset[type], str]] = {
    **{name: (frozenset({int, float}), "numbers") for name in _FLOAT_DATATYPES},
    **{name: (frozenset({int, float}), "integers") for name in _ACCEPTS["integer"]},
    "BOOL": (frozenset({bool}), "true or false"),
}
_KIND_DATATYPE = {
    "number": "FP64",
    "integer": "INT64",
    "boolean": "BOOL",
    "string": "BYTES",
    "datetime": "BYTES",
}
EXTENSIONS = ["model_repository", "binary_tensor_data"]
_LENGTH = struct.Struct("<I")


@dataclass
class Tensor:
    """One decoded input tensor."""

    name: str
    datatype: str
    shape: list[int]
    array: Array


@dataclass
class InferRequest:
    """A decoded V2 inference request."""

    id: str | None
    inputs: list[Tensor]
    outputs: list[str] | None
    binary_outputs: set[str] = field(default_factory=set)
    json_outputs: set[str] = field(default_factory=set)
    binary_default: bool = False


def datatype_of(dtype: str) -> str:
    """The protocol datatype of a signature dtype (``float64`` → ``FP64``)."""
    mapping = {
        "float64": "FP64",
        "float32": "FP32",
        "float16": "FP16",
        "int64": "INT64",
        "int32": "INT32",
        "int16": "INT16",
        "int8": "INT8",
        "uint8": "UINT8",
        "uint16": "UINT16",
        "uint32": "UINT32",
        "uint64": "UINT64",
        "bool": "BOOL",
    }
    return mapping.get(dtype, "BYTES")


def _array_datatype(array: Array) -> str:
    if array.dtype.kind in "OUS":
        return "BYTES"
    return datatype_of(str(array.dtype))


# -- decoding ------------------------------------------------------------------------------


def decode(request: Request) -> InferRequest:
    """Decode a V2 request body, JSON or JSON + binary tensors.

    Raises:
        BadRequest: The body is not a V2 inference request; the message names the field.
    """
    body = request.body
    binary = memoryview(b"")
    if request.inference_header_length is not None:
        text = request.inference_header_length
        if not text.isdigit() or int(text) > len(body):
            raise BadRequest(
                f"header Inference-Header-Content-Length: expected a byte count of at most "
                f"{len(body)}, found {shorten(repr(text.decode('latin-1')))}"
            )
        split = int(text)
        # A view, not a copy: tensors can be hundreds of kilobytes per request.
        body, binary = body[:split], memoryview(body)[split:]
    document = parse_json(body, expected="a V2 inference request object")
    return with_exact_integers(lambda parsed: _request(parsed, binary), document, body)


def _request(document: Any, binary: memoryview) -> InferRequest:
    if type(document) is not dict:
        raise _field_error("body", "a JSON object", document)
    inputs = document.get("inputs")
    if type(inputs) is not list or not inputs:
        raise _field_error("inputs", "a non-empty list of tensors", inputs)
    request_id = document.get("id")
    if request_id is not None and type(request_id) is not str:
        raise _field_error("id", "a string", request_id)
    parameters = _parameters(document, "parameters")
    cursor = 0
    tensors = []
    for index, item in enumerate(inputs):
        tensor, cursor = _tensor(item, index, binary, cursor)
        tensors.append(tensor)
    if cursor != len(binary):
        raise BadRequest(
            f"binary data: expected {cursor} bytes for the inputs' binary_data_size, "
            f"found {len(binary)}"
        )
    _check_unique(tensors)
    outputs_field = document.get("outputs")
    outputs: list[str] | None = None
    binary_outputs: set[str] = set()
    json_outputs: set[str] = set()
    if outputs_field is not None:
        if type(outputs_field) is not list:
            raise _field_error("outputs", "a list of {name} objects", outputs_field)
        outputs = []
        for index, item in enumerate(outputs_field):
            if type(item) is not dict or type(item.get("name")) is not str:
                raise _field_error(f"outputs[{index}]", "an object with a 'name' string", item)
            outputs.append(item["name"])
            wants_binary = _parameters(item, f"outputs[{index}].parameters").get("binary_data")
            if wants_binary is True:
                binary_outputs.add(item["name"])
            elif wants_binary is False:  # an output's own choice overrides binary_data_output
                json_outputs.add(item["name"])
    return InferRequest(
        id=request_id,
        inputs=tensors,
        outputs=outputs,
        binary_outputs=binary_outputs,
        json_outputs=json_outputs,
        binary_default=parameters.get("binary_data_output") is True,
    )


def _check_unique(tensors: Sequence[Tensor]) -> None:
    if len(tensors) == len({tensor.name for tensor in tensors}):
        return
    counts = Counter(tensor.name for tensor in tensors)
    for name, count in counts.items():
        if count > 1:
            given = "twice" if count == 2 else f"{count} times"
            raise InvalidInput(
                f"{_input(name)}: expected one tensor of this name, found it given {given}",
                field=_input(name),
                expected="one tensor of this name",
                found=f"given {given}",
            )


def _input(name: str) -> str:
    """How errors name an input (long names cut short)."""
    return f"input {shorten(name)!r}"


def _parameters(item: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = item.get("parameters")
    if parameters is None:
        return {}
    if type(parameters) is not dict:
        raise _field_error(where, "an object", parameters)
    return parameters


def _field_error(where: str, expected: str, found: object, at: str = "") -> InvalidInput:
    shown = ("nothing" if found is None else describe(found)) + at
    return InvalidInput(
        f"{where}: expected {expected}, found {shown}",
        field=where,
        expected=expected,
        found=shown,
        rounded=may_be_rounded(found),
    )


def _tensor(item: Any, index: int, binary: memoryview, cursor: int) -> tuple[Tensor, int]:
    where = f"inputs[{index}]"
    if type(item) is not dict:
        raise _field_error(where, "a tensor object", item)
    name = item.get("name")
    if type(name) is not str:
        raise _field_error(f"{where}.name", "a string", name)
    where = _input(name)
    datatype = item.get("datatype")
    if type(datatype) is not str or datatype not in DATATYPES:
        raise _field_error(f"{where} datatype", f"one of {sorted(DATATYPES)}", datatype)
    shape = _shape(item.get("shape"), where)
    size = math.prod(shape)
    binary_size = _parameters(item, f"{where} parameters").get("binary_data_size")
    if binary_size is not None:
        if type(binary_size) is not int or binary_size < 0 or cursor + binary_size > len(binary):
            raise _field_error(
                f"{where} binary_data_size",
                f"a byte count within the {len(binary) - cursor} binary bytes left",
                binary_size,
            )
        if "data" in item:  # the extension: "the data field must not be present"
            raise _field_error(
                f"{where} data", "no data when parameters.binary_data_size is given", item["data"]
            )
        chunk = binary[cursor : cursor + binary_size]
        array = _from_binary(chunk, datatype, shape, where)
        cursor += binary_size
    else:
        if "data" not in item:
            raise _field_error(f"{where} data", "a list of values", None)
        array = _from_json(item["data"], datatype, size, where)
    if array.size != size:
        raise InvalidInput(
            f"{where}: expected {size} values for shape {shape}, found {array.size}",
            field=shorten(name),
            expected=f"{size} values (shape {shape})",
            found=f"{array.size} values",
        )
    try:
        shaped = array.reshape(shape)
    except ValueError:
        raise _field_error(f"{where} shape", "dimensions numpy can hold", shape) from None
    return Tensor(name=name, datatype=datatype, shape=shape, array=shaped), cursor


def _shape(shape: Any, where: str) -> list[int]:
    expected = "a non-empty list of non-negative integers"
    if type(shape) is not list or not shape:
        raise _field_error(f"{where} shape", expected, shape)
    for index, dimension in enumerate(shape):
        if type(dimension) is not int or dimension < 0:
            raise _field_error(f"{where} shape", expected, dimension, f" at index {index}")
    return shape


def _from_json(data: Any, datatype: str, size: int, where: str) -> Array:
    if type(data) is not list:
        data = [data]
    if datatype == "BYTES":
        flat = _flatten(data)
        if not all(type(value) is str for value in flat):
            bad = next(value for value in flat if type(value) is not str)
            raise _field_error(f"{where} data", "strings (datatype BYTES)", bad)
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array
    found = set(map(type, data))
    nested = list in found
    if nested:  # [N, F] tensors come as one list per row: gather the rows' types
        found = set()
        for row in data:
            found.update(map(type, row) if type(row) is list else (type(row),))
        if list in found:  # deeper: flatten
            data = _flatten(data)
            found = set(map(type, data))
            nested = False
    allowed, expected = _JSON_VALUES[datatype]
    if not found <= allowed:
        bad = next(value for value in _flatten(data) if type(value) not in allowed)
        raise _field_error(f"{where} data", f"{expected} (datatype {datatype})", bad)
    limit = _NARROW_FLOAT_MAX.get(datatype)
    try:
        if limit is not None:  # FP16, FP32: numpy would warn and make inf of a larger number
            if nested or len(data) > 64 or not _within(data, limit):
                wide = np.array(data, dtype=np.float64)
                if wide.size and np.abs(wide).max() > limit:
                    raise OverflowError
                array = wide.astype(DATATYPES[datatype])
            else:
                array = np.array(data, dtype=DATATYPES[datatype])
        elif float in found and datatype != "FP64":
            # A float past an integer type would be a warning and garbage.
            with np.errstate(invalid="raise"):
                array = np.array(data, dtype=DATATYPES[datatype])
        else:
            array = np.array(data, dtype=DATATYPES[datatype])  # past the range: OverflowError
    except ValueError:  # rows of different lengths, a number beside a row
        raise _field_error(f"{where} data", "a flat list or equal nested lists", data) from None
    except (FloatingPointError, OverflowError):
        bad = _out_of_range(_flatten(data), DATATYPES[datatype])
        raise _field_error(
            f"{where} data", f"{expected} within the range of datatype {datatype}", bad
        ) from None
    if float in found and datatype not in _FLOAT_DATATYPES:
        flat = _flatten(data)
        fractional = np.asarray(flat, dtype=np.float64) % 1 != 0
        if fractional.any():
            bad = flat[int(np.argmax(fractional))]
            raise _field_error(f"{where} data", f"{expected} (datatype {datatype})", bad)
    return array.reshape(-1)


def _within(data: list[Any], limit: float) -> bool:
    """Whether a short flat list of numbers is within ``±limit`` (Python's ``max`` and ``min``
    cost less there than numpy's call overhead)."""
    return not data or (max(data) <= limit and min(data) >= -limit)


def _out_of_range(flat: list[Any], dtype: Any) -> Any:
    """The first value of ``flat`` that ``dtype`` cannot hold."""
    if np.dtype(dtype).kind == "f":
        limit = float(np.finfo(dtype).max)
        return next(value for value in flat if abs(value) > limit)
    info = np.iinfo(dtype)
    return next(value for value in flat if not info.min <= value <= info.max)


def _flatten(data: list[Any]) -> list[Any]:
    if not any(type(value) is list for value in data):
        return data
    flat: list[Any] = []
    for value in data:
        if type(value) is list:
            flat.extend(_flatten(value))
        else:
            flat.append(value)
    return flat


def _from_binary(chunk: memoryview, datatype: str, shape: list[int], where: str) -> Array:
    if datatype == "BYTES":
        return _bytes_elements(chunk, where)
    dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
    size = math.prod(shape)
    if len(chunk) != size * dtype.itemsize:
        expected = f"{size * dtype.itemsize} bytes (shape {shape} of {datatype})"
        raise InvalidInput(
            f"{where} binary_data_size: expected {expected}, found {len(chunk)}",
            field=f"{where} binary_data_size",
            expected=expected,
            found=str(len(chunk)),
        )
    if datatype == "BOOL":  # one byte each: 1 true, 0 false (numpy keeps any byte as true)
        raw = np.frombuffer(chunk, dtype=np.uint8)
        if (raw > 1).any():
            index = int(np.argmax(raw > 1))
            raise _bytes_error(where, "BOOL bytes of 0 or 1", f"{raw[index]} at element {index}")
    array = np.frombuffer(chunk, dtype=dtype)
    # In place when the body's buffer is writable and the byte order native; else a copy.
    return array.astype(dtype.newbyteorder("="), copy=not array.flags.writeable)


def _bytes_elements(chunk: memoryview, where: str) -> Array:
    """BYTES elements: each a 4-byte little-endian length, then that many bytes of UTF-8."""
    values: list[str] = []
    position = 0
    while position < len(chunk):
        left = len(chunk) - position
        if left < 4:
            raise _bytes_error(
                where,
                "a 4-byte length before each BYTES element",
                f"{left} bytes left at byte {position} (element {len(values)})",
            )
        (length,) = _LENGTH.unpack_from(chunk, position)
        position += 4
        if length > left - 4:
            raise _bytes_error(
                where,
                f"{length} bytes for BYTES element {len(values)} (its length)",
                f"{left - 4} bytes left at byte {position}",
            )
        try:
            values.append(str(chunk[position : position + length], "utf-8"))
        except UnicodeDecodeError:
            raise _bytes_error(
                where,
                "UTF-8 text in each BYTES element",
                f"other bytes in element {len(values)} at byte {position}",
            ) from None
        position += length
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _bytes_error(where: str, expected: str, found: str) -> InvalidInput:
    """The error for binary data that does not spell its datatype's values."""
    return InvalidInput(
        f"{where} data: expected {expected}, found {found}",
        field=f"{where} data",
        expected=expected,
        found=found,
    )


def to_part(predictor: Predictor, tensors: Sequence[Tensor]) -> tuple[Part, int]:
    """The predictor's input from decoded tensors (see the module docstring)."""
    if predictor.layout == "tensor":
        if len(tensors) != 1:
            raise InvalidInput(
                f"inputs: expected 1 tensor, found {len(tensors)}",
                field="inputs",
                expected="1 tensor",
                found=f"{len(tensors)} tensors",
            )
        tensor = tensors[0]
        if tensor.array.dtype == object or tensor.array.dtype == np.bool_:
            raise InvalidInput(
                f"{_input(tensor.name)}: expected a numeric datatype, found {tensor.datatype}",
                field=shorten(tensor.name),
                expected="a numeric datatype",
                found=tensor.datatype,
            )
        dtype = np.dtype(predictor.signature["inputs"][0].get("dtype", "float32"))
        array = cast_tensor(tensor.array, dtype, shorten(tensor.name), _input(tensor.name))
        return predictor.from_tensor(array)
    for tensor in tensors:
        if tensor.array.ndim > 2:
            expected = "shape [N] or [N, 1] (one tensor per feature)"
            if predictor.layout == "numeric":
                expected += f", or [N, {len(predictor.names)}] (one tensor of every feature)"
            raise InvalidInput(
                f"{_input(tensor.name)} shape: expected {expected}, found {tensor.shape}",
                field=f"{_input(tensor.name)} shape",
                expected=expected,
                found=f"shape {tensor.shape}",
            )
    names = set(predictor.names)
    if len(tensors) == 1 and tensors[0].array.ndim == 2 and tensors[0].shape[1] != 1:
        tensor = tensors[0]
        if tensor.datatype in ("BYTES", "BOOL"):
            raise InvalidInput(
                f"{_input(tensor.name)}: expected a numeric datatype for a [N, features] "
                f"tensor, found {tensor.datatype}",
                field=shorten(tensor.name),
                expected="a numeric datatype",
                found=tensor.datatype,
            )
        return predictor.from_tensor(tensor.array)
    by_name = {tensor.name: tensor for tensor in tensors if tensor.name in names}
    columns: list[Array] = []
    for feature in predictor.features:
        found = by_name.get(feature.name)
        if found is None:
            given = ", ".join(shorten(t.name) for t in tensors[:10])
            if len(tensors) > 10:
                given += f", … ({len(tensors)} in all)"
            raise InvalidInput(
                f"input {feature.name!r}: expected a tensor of shape [N] named as the feature "
                f"({_KIND_DATATYPE[feature.kind]}), found none (inputs given: {given})",
                field=feature.name,
                expected=f"a tensor of datatype {_KIND_DATATYPE[feature.kind]}",
                found="missing",
            )
        columns.append(_column(feature, found))
    rows = len(columns[0]) if columns else 0
    for feature, column in zip(predictor.features, columns, strict=True):
        if len(column) != rows:
            raise InvalidInput(
                f"input {feature.name!r}: expected {rows} values like "
                f"{predictor.features[0].name!r}, found {len(column)}",
                field=feature.name,
                expected=f"{rows} values",
                found=f"{len(column)} values",
            )
    if predictor.layout == "numeric":
        block = np.column_stack(columns) if columns else np.zeros((0, 0))
        return predictor.from_tensor(block)
    return {f.name: c for f, c in zip(predictor.features, columns, strict=True)}, rows


def _column(feature: Feature, tensor: Tensor) -> Array:
    if tensor.datatype not in _ACCEPTS[feature.kind]:
        expected = _KIND_DATATYPE[feature.kind]
        raise InvalidInput(
            f"input {feature.name!r}: expected datatype {expected} ({feature.expected}), "
            f"found {tensor.datatype}",
            field=feature.name,
            expected=expected,
            found=tensor.datatype,
        )
    array = tensor.array
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidInput(
            f"input {feature.name!r}: expected shape [N] or [N, 1], found {tensor.shape}",
            field=feature.name,
            expected="shape [N]",
            found=f"shape {tensor.shape}",
        )
    if feature.kind == "number":
        column = array.astype(np.float64)
        if not feature.nullable and np.isnan(column).any():
            raise feature.error(math.nan, row=int(np.flatnonzero(np.isnan(column))[0]))
        return column
    if feature.kind == "integer":  # UINT64 past int64 would wrap
        return cast_tensor(array, np.dtype(np.int64), feature.name, f"input {feature.name!r}")
    if feature.kind in ("string", "datetime"):
        return feature.check_values(array.tolist())
    return array


# -- encoding ------------------------------------------------------------------------------


def encode(
    predictor: Predictor,
    prediction: Prediction,
    offset: int,
    rows: int,
    request: InferRequest,
    request_id: str,
) -> tuple[bytes, bytes | None]:
    """The response body, and the JSON header length when binary outputs follow."""
    available = ["predict", "predict_proba"] if prediction.proba is not None else ["predict"]
    wanted = available if request.outputs is None else request.outputs
    for name in wanted:
        if name not in available:
            raise InvalidInput(
                f"outputs: expected names among {available}, found {shorten(name)!r}",
                field="outputs",
                expected=f"one of {available}",
                found=repr(shorten(name)),
            )
    outputs = []
    chunks: list[bytes] = []
    for name in wanted:
        if name == "predict":
            array = prediction.labels[offset : offset + rows]
            data: Any = prediction.labels_list[offset : offset + rows]
            shape = [rows]
        else:
            assert prediction.proba is not None
            array = prediction.proba[offset : offset + rows]
            data = array.ravel()  # a view; orjson writes it without Python floats
            shape = [rows, int(array.shape[1])]
        datatype = _array_datatype(array)
        output: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        binary = request.binary_default and name not in request.json_outputs
        if binary or name in request.binary_outputs:
            raw = _to_binary(array, datatype)
            output["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            output["data"] = data
        outputs.append(output)
    content: dict[str, Any] = {
        "model_name": predictor.name,
        "model_version": str(predictor.version),
        "id": request.id if request.id is not None else request_id,
        "parameters": {},
        "outputs": outputs,
    }
    header = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return header + b"".join(chunks), str(len(header)).encode()


def _to_binary(array: Array, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for value in array.tolist():
            encoded = str(value).encode("utf-8")
            parts += [_LENGTH.pack(len(encoded)), encoded]
        return b"".join(parts)
    dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
    return np.ascontiguousarray(array, dtype=dtype).tobytes()


def model_metadata(predictor: Predictor) -> dict[str, Any]:
    """The V2 model metadata document."""
    if predictor.layout == "tensor":
        entry = predictor.signature["inputs"][0]
        shape = [-1 if d is None else int(d) for d in predictor.tensor_shape]
        inputs = [
            {
                "name": str(entry["name"]),
                "datatype": datatype_of(str(entry.get("dtype"))),
                "shape": shape,
            }
        ]
    else:
        inputs = [
            {"name": f.name, "datatype": _KIND_DATATYPE[f.kind], "shape": [-1]}
            for f in predictor.features
        ]
    label_type = "BYTES"
    if predictor.classes is not None and predictor.classes.dtype.kind in "iub":
        label_type = datatype_of(str(predictor.classes.dtype))
    elif predictor.classes is None:
        label_type = "FP64"
    outputs: list[dict[str, Any]] = [{"name": "predict", "datatype": label_type, "shape": [-1]}]
    if predictor.has_proba and predictor.classes is not None:
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(predictor.classes)]}
        )
    return {
        "name": predictor.name,
        "versions": [str(predictor.version)],
        "platform": f"readyml-{getattr(predictor.model, 'flavor', 'unknown')}",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": predictor.metadata(),
    }
