"""MLflow's scoring protocol: ``POST /invocations``, so MLflow clients switch unchanged.

Accepted bodies (``application/json``), exactly one key besides an optional ``params``:

* ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}`` (``index`` ignored);
* ``{"dataframe_records": [{...}, ...]}``;
* ``{"instances": [...]}``: records, positional rows, or a dict of columns;
* ``{"inputs": ...}``: a dict of columns, records, or rows (a tensor).

``text/csv`` bodies (a header row of feature names) are read too. The answer is
``{"predictions": [...]}``, as MLflow's scoring server gives for a classifier or regressor.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import orjson

from readyml.errors import BadRequest, UnsupportedMediaType
from readyml.predict import InvalidInput, Part, Prediction, Predictor
from readyml.predict.inputs import describe, shorten, with_exact_integers
from readyml.serve._http import parse_json

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def decode(predictor: Predictor, body: bytes | bytearray, content_type: bytes) -> tuple[Part, int]:
    """The predictor's input from any of MLflow's formats."""
    media = content_type.split(b";", 1)[0].strip().lower()
    if media == b"text/csv":
        return _from_csv(predictor, body)
    if media not in (b"application/json", b""):
        raise UnsupportedMediaType(
            f"Content-Type: expected application/json or text/csv, found "
            f"{media.decode('latin-1')!r}"
        )
    document = parse_json(body, expected="a JSON object with one of " + ", ".join(FORMATS))
    return with_exact_integers(lambda parsed: _from_json(predictor, parsed), document, body)


def _from_json(predictor: Predictor, document: Any) -> tuple[Part, int]:
    if type(document) is not dict:
        raise _error("body", f"an object with one of {list(FORMATS)}", document)
    given = [key for key in FORMATS if key in document]
    if len(given) != 1:
        keys = [shorten(key) for key in given or list(document)[:10]]
        found = ", ".join(keys) or "no keys"
        if not given and len(document) > 10:
            found += f", … ({len(document)} in all)"
        raise InvalidInput(
            f"body: expected exactly one of {list(FORMATS)}, found {found}",
            field="body",
            expected=f"one of {list(FORMATS)}",
            found=found,
        )
    key = given[0]
    value = document[key]
    if key == "dataframe_split":
        return _from_split(predictor, value)
    if key == "dataframe_records":
        if type(value) is not list or not value:
            raise _error(key, "a non-empty list of records", value)
        return predictor.from_records(value)
    return _from_any(predictor, key, value)


def _error(where: str, expected: str, found: object) -> InvalidInput:
    shown = describe(found)
    if found == []:
        shown = "an empty list"
    return InvalidInput(
        f"{where}: expected {expected}, found {shown}", field=where, expected=expected, found=shown
    )


def _from_split(predictor: Predictor, value: Any) -> tuple[Part, int]:
    if type(value) is not dict:
        raise _error("dataframe_split", "an object with 'columns' and 'data'", value)
    columns = value.get("columns")
    data = value.get("data")
    if type(columns) is not list or not all(type(c) is str for c in columns):
        raise _error("dataframe_split.columns", "a list of column names", columns)
    if type(data) is not list or not data:
        raise _error("dataframe_split.data", "a non-empty list of rows", data)
    if len(set(columns)) != len(columns):
        twice = next(name for index, name in enumerate(columns) if name in columns[:index])
        raise InvalidInput(
            f"dataframe_split.columns: expected each column once, found {shorten(twice)!r} twice",
            field="dataframe_split.columns",
            expected="each column once",
            found=f"{shorten(twice)!r} twice",
        )
    if columns == predictor.names:
        return predictor.from_rows(data)
    width = len(columns)
    for index, row in enumerate(data):
        if type(row) is not list or len(row) != width:
            raise _error(f"dataframe_split.data[{index}]", f"a row of {width} values", row)
    return predictor.from_columns(
        {name: [row[i] for row in data] for i, name in enumerate(columns)}
    )


def _from_any(predictor: Predictor, key: str, value: Any) -> tuple[Part, int]:
    if type(value) is dict:
        return predictor.from_columns(value)
    if type(value) is not list or not value:
        raise _error(key, "a non-empty list of records or rows, or an object of columns", value)
    if all(type(item) is dict for item in value):
        return predictor.from_records(value)
    return predictor.from_rows(value)


def _from_csv(predictor: Predictor, body: bytes | bytearray) -> tuple[Part, int]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body: expected UTF-8 CSV text, found other bytes") from None
    # A byte order mark is not part of the first name (pandas, and so MLflow, drop it too).
    text = text.removeprefix("\ufeff")
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]  # blank lines: skipped
    except csv.Error as exc:
        raise BadRequest(f"body: expected CSV text, found a malformed line ({exc})") from None
    if len(rows) < 2:
        raise BadRequest("body: expected a CSV header row and at least one data row")
    header, data = rows[0], rows[1:]
    columns: dict[str, list[Any]] = {}
    for name in header:
        if name in columns:
            raise InvalidInput(
                f"CSV header: expected each column once, found {shorten(name)!r} twice",
                field="CSV header",
                expected="each column once",
                found=f"{shorten(name)!r} twice",
            )
        columns[name] = []
    nan_rows: dict[str, int] = {}  # the first row each column has NaN in
    for number, row in enumerate(data):
        if len(row) != len(header):
            raise BadRequest(
                f"CSV row {number + 1}: expected {len(header)} values, found {len(row)}"
            )
        for name, cell in zip(header, row, strict=True):
            value = _cell(cell)
            if value is _NAN:
                nan_rows.setdefault(name, number)
                value = None
            columns[name].append(value)
    for feature in predictor.features:
        if feature.name in nan_rows and not feature.nullable:
            raise feature.error(math.nan, row=nan_rows[feature.name])
    return predictor.from_columns(columns)


_NAN = object()


def _cell(text: str) -> Any:
    """A CSV cell as the JSON value it spells: empty → null, a number, a boolean, or text.

    NaN reads as ``_NAN``: a missing value where the feature is nullable, else an error
    that says NaN (not null).
    """
    if text == "":
        return None
    if "_" in text or not text.isascii():
        return text  # Python reads "1_0" and other scripts' digits as numbers; pandas does not
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return _NAN if number != number else number
    if text in ("true", "false", "True", "False"):
        return text.lower() == "true"
    return text


def encode(prediction: Prediction, offset: int, rows: int) -> bytes:
    """``{"predictions": [...]}`` for one request's rows of a batch."""
    return orjson.dumps({"predictions": prediction.labels_list[offset : offset + rows]})


# MLflow's error codes for the statuses readyml answers (its clients branch on them).
_ERROR_CODES = {
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
}


def error_code(status_code: int) -> str:
    """MLflow's ``error_code`` for an HTTP status (``BAD_REQUEST`` for other 4xx)."""
    if status_code in _ERROR_CODES:
        return _ERROR_CODES[status_code]
    return "BAD_REQUEST" if status_code < 500 else "INTERNAL_ERROR"
