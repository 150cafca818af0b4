"""Signature checks: turn request values into typed columns, or say exactly what is wrong.

Every check is vectorised over the rows of a request: a numeric model's rows become one
``float64`` block after one pass over the value types; only when that pass finds a problem
does a slower scan run, to name the feature, the expected type and what came.

Every integer feature is read as ``int64`` and every date-time as ``datetime64[ns]``;
numpy would raise on an integer past int64 and silently wrap a date past 2262, so values
outside those ranges are refused by name. orjson reads an integer literal past 64 bits as a
float: an error about such a number reads the body again with Python's ``json``, which keeps
the integer, so that the message shows the number as sent (:func:`with_exact_integers`).
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from readyml.data.schema import Schema
from readyml.errors import BadRequest
from readyml.flavors._base import Array
from readyml.types import JSON

Kind = Literal["number", "integer", "boolean", "string", "datetime"]
T = TypeVar("T")

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Past this magnitude a float64 may be an integer literal orjson rounded (it reads an
# integer as a float only beyond -2**63 .. 2**64 - 1).
_ROUNDED_FROM = 2.0**63
# Echoed client text (names, keys): first this many characters, then "…".
ECHO_CHARS = 64

# What each kind accepts from JSON (bool is a subclass of int: listed apart on purpose).
_JSON_TYPES: dict[Kind, frozenset[type]] = {
    "number": frozenset({int, float}),
    "integer": frozenset({int}),
    "boolean": frozenset({bool}),
    "string": frozenset({str}),
    "datetime": frozenset({str}),
}
_EXPECTED: dict[Kind, str] = {
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean",
    "string": "a string",
    "datetime": "an ISO 8601 date-time string",
}
_EXPECTED_MANY: dict[Kind, str] = {
    "number": "numbers",
    "integer": "integers",
    "boolean": "booleans",
    "string": "strings",
    "datetime": "ISO 8601 date-time strings",
}
# What an integer, number or date-time must be beyond its type: within its column's range.
_IN_RANGE: dict[Kind, str] = {
    "number": "a number within float64's range (±1.8e308)",
    "integer": f"an integer from {INT64_MIN} to {INT64_MAX} (int64)",
    "datetime": "an ISO 8601 date-time string from 1677-09-21 to 2262-04-11 (datetime64[ns])",
}


class InvalidInput(BadRequest):
    """A request's value does not fit the model's signature; names field, expected, found.

    ``rounded``: the value at fault is a float that may be an integer literal orjson read
    as a float (see :func:`with_exact_integers`).
    """

    def __init__(
        self, message: str, *, field: str, expected: str, found: str, rounded: bool = False
    ) -> None:
        super().__init__(message)
        self.field = field
        self.expected = expected
        self.found = found
        self.rounded = rounded

    def to_dict(self) -> JSON:
        """The error as the server's JSON body."""
        return {
            "error": str(self),
            "field": self.field,
            "expected": self.expected,
            "found": self.found,
        }


def shorten(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters and "…", for echoing a client's name back."""
    return text if len(text) <= limit else text[:limit] + "…"


def describe(value: object) -> str:
    """A short description of a JSON value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, int | float):
        shown = repr(value)
        return f"number {shown if len(shown) <= 40 else shown[:37] + '...'}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def may_be_rounded(value: object) -> bool:
    """Whether ``value`` may be an integer literal that orjson read as a float."""
    return type(value) is float and math.isfinite(value) and abs(value) >= _ROUNDED_FROM


def is_int64(value: Any) -> bool:
    """Whether a number is an integer within int64 (Python compares floats and ints exactly)."""
    if type(value) is float and not value.is_integer():  # also NaN and the infinities
        return False
    return bool(INT64_MIN <= value <= INT64_MAX)


def fits_float64(value: Any) -> bool:
    """Whether a value converts to float64 (a Python int may be past its range)."""
    if type(value) is not int:
        return True
    try:
        float(value)
    except OverflowError:
        return False
    return True


def kind_of(dtype: str) -> Kind:
    """The request kind of a signature dtype (``float64`` → number, ``category`` → string)."""
    if dtype.startswith("float"):
        return "number"
    if dtype.startswith(("int", "uint")):
        return "integer"
    if dtype == "bool":
        return "boolean"
    if dtype.startswith("datetime"):
        return "datetime"
    return "string"


@dataclass(frozen=True)
class Feature:
    """One model input column: its name, signature dtype, request kind and nullability."""

    name: str
    dtype: str
    kind: Kind
    nullable: bool

    @property
    def expected(self) -> str:
        """What a value must be, in words."""
        base = _EXPECTED[self.kind]
        return f"{base} or null" if self.nullable else base

    @property
    def expected_list(self) -> str:
        """What a column of values must be, in words."""
        base = f"a list of {_EXPECTED_MANY[self.kind]}"
        return f"{base} or nulls" if self.nullable else base

    @property
    def in_range(self) -> str:
        """What a value must be, with the range its column holds, in words."""
        return _IN_RANGE.get(self.kind, self.expected)

    def check_values(self, values: Sequence[Any], *, start_row: int = 0) -> Array:
        """Values of this feature (one per row) as a typed numpy column.

        Raises:
            InvalidInput: A value has the wrong type, or is null where nulls are not allowed.
        """
        allowed = _JSON_TYPES[self.kind]
        types = set(map(type, values))
        if not types <= allowed:
            nulls_ok = self.nullable and self.kind != "integer"  # an int64 column has none
            for row, value in enumerate(values):
                if type(value) not in allowed and not (value is None and nulls_ok):
                    expected = _EXPECTED[self.kind] if value is None else None
                    raise self.error(value, row=start_row + row, expected=expected)
            types.discard(type(None))
        return self._column(values, types, start_row)

    def _column(self, values: Sequence[Any], types: set[type], start_row: int) -> Array:
        if self.kind == "number":
            try:
                column = np.array(values, dtype=np.float64)
            except OverflowError:  # an integer past float64 (CSV cells are Python ints)
                raise self._first_out_of_range(values, fits_float64, start_row) from None
            if not self.nullable and type(None) in types:
                row = int(np.flatnonzero(np.isnan(column))[0])
                raise self.error(None, row=start_row + row)
            return column
        if self.kind == "integer":
            try:
                return np.array(values, dtype=np.int64)
            except OverflowError:  # 2**63 and past, or below -2**63
                raise self._first_out_of_range(values, is_int64, start_row) from None
        if self.kind == "boolean":
            return np.array(values, dtype=np.bool_)
        if self.kind == "datetime":
            return self._datetimes(values, start_row)
        column = np.empty(len(values), dtype=object)
        column[:] = values
        return column

    def _datetimes(self, values: Sequence[Any], start_row: int) -> Array:
        try:
            column = np.array(values, dtype="datetime64[ns]")
            # Nanoseconds hold 1677 to 2262 and wrap silently past them: the same text read
            # in seconds (±2.9e11 years) must agree to the second.
            seconds = np.array(values, dtype="datetime64[s]")
        except ValueError:
            for row, value in enumerate(values):
                try:
                    np.datetime64(value, "ns")
                except ValueError:
                    raise self.error(value, row=start_row + row) from None
            raise
        nat = np.isnat(column)
        apart = np.abs(column.astype("datetime64[s]").astype(np.int64) - seconds.view(np.int64))
        wrapped = (nat != np.isnat(seconds)) | (~nat & (apart > 1))
        if wrapped.any():
            row = int(np.argmax(wrapped))
            raise self.error(values[row], row=start_row + row, expected=self.in_range)
        if not self.nullable and nat.any():  # "NaT" and "" read as missing
            row = int(np.argmax(nat))
            raise self.error(values[row], row=start_row + row)
        return column

    def _first_out_of_range(
        self, values: Sequence[Any], fits: Callable[[Any], bool], start_row: int
    ) -> InvalidInput:
        row = next(
            (i for i, value in enumerate(values) if value is not None and not fits(value)), 0
        )
        return self.error(values[row], row=start_row + row, expected=self.in_range)

    def error(self, value: object, *, row: int, expected: str | None = None) -> InvalidInput:
        """The error for a bad ``value`` in ``row`` (``expected``: the feature's own words)."""
        expected = self.expected if expected is None else expected
        found = describe(value)
        return InvalidInput(
            f"feature {self.name!r}: expected {expected}, found {found} (row {row})",
            field=self.name,
            expected=expected,
            found=found,
            rounded=may_be_rounded(value),
        )


def features_from(signature: JSON, schema: Schema | None) -> list[Feature]:
    """The model's input features, nullability from the schema (no schema: not nullable)."""
    features = []
    for entry in signature.get("inputs", []):
        name = str(entry["name"])
        declared = schema.feature(name) if schema is not None else None
        nullable = bool(declared.nullable) if declared is not None else False
        dtype = str(entry.get("dtype", "float64"))
        features.append(Feature(name=name, dtype=dtype, kind=kind_of(dtype), nullable=nullable))
    return features


def missing(
    name: str, expected: str, present: Sequence[str], row: int | None = None
) -> InvalidInput:
    """The error for a feature absent from a request (from its record ``row``, if given)."""
    # str(): keys given through the Python API need not be text, and must not break the error.
    shown = ", ".join(shorten(key) for key in sorted(map(str, present))[:10]) or "none"
    if len(present) > 10:
        shown += f", … ({len(present)} in all)"
    where = "" if row is None else f"row {row}: "
    return InvalidInput(
        f"{where}feature {name!r}: expected {expected}, found no such field (fields given: "
        f"{shown})",
        field=name,
        expected=expected,
        found="missing",
    )


class NumericBlock:
    """Rows of an all-numeric model as one ``float64`` array, checked in one pass.

    Args:
        features: The model's features; every one must be a number or an integer.
    """

    def __init__(self, features: Sequence[Feature]) -> None:
        self.features = list(features)
        self.names = [f.name for f in self.features]
        # One C call per record instead of a lookup per feature; a lone name gives a scalar.
        self._values_of = operator.itemgetter(*self.names) if len(self.names) > 1 else None
        self.integer_columns = [i for i, f in enumerate(self.features) if f.kind == "integer"]
        self.nullable = any(f.nullable for f in self.features)

    def from_records(self, records: Sequence[Any]) -> Array:
        """A ``(rows, features)`` block from JSON records (objects keyed by feature name)."""
        values_of = self._values_of
        try:
            if values_of is None:
                flat = [record[name] for record in records for name in self.names]
            elif len(records) == 1:
                flat = values_of(records[0])
            else:
                flat = [value for record in records for value in values_of(record)]
        except (KeyError, TypeError):
            raise self._record_error(records) from None
        return self._block(flat, len(records), row_major=True)

    def from_rows(self, rows: Sequence[Any]) -> Array:
        """A block from positional rows (lists in feature order)."""
        width = len(self.names)
        for row_index, row in enumerate(rows):
            if type(row) is not list or len(row) != width:
                found = f"{len(row)} values" if isinstance(row, list) else describe(row)
                raise InvalidInput(
                    f"row {row_index}: expected a list of {width} values in the order "
                    f"{self.names}, found {found}",
                    field=f"row {row_index}",
                    expected=f"{width} values",
                    found=found,
                )
        flat = [value for row in rows for value in row]
        return self._block(flat, len(rows), row_major=True)

    def from_columns(self, columns: Mapping[str, Any]) -> Array:
        """A block from column lists keyed by feature name (all of equal length)."""
        lists = []
        for feature in self.features:
            values = columns.get(feature.name, _MISSING)
            if values is _MISSING:
                raise missing(feature.name, feature.expected_list, list(columns))
            if type(values) is not list:
                raise InvalidInput(
                    f"feature {feature.name!r}: expected a list of values, found "
                    f"{describe(values)}",
                    field=feature.name,
                    expected="a list of values",
                    found=describe(values),
                )
            lists.append(values)
        check_lengths(self.names, lists)
        flat = [value for values in lists for value in values]
        rows = len(lists[0]) if lists else 0
        return self._block(flat, rows, row_major=False)

    def _block(self, flat: Sequence[Any], rows: int, *, row_major: bool) -> Array:
        types = set(map(type, flat))
        if not types <= _NUMBER_TYPES:
            self._raise_first_bad(flat, rows, row_major=row_major)
        try:
            values = np.array(flat, dtype=np.float64)
        except OverflowError:  # an integer past float64 (CSV cells are Python ints)
            position = next((i for i, value in enumerate(flat) if not fits_float64(value)), 0)
            row, col = self._cell(position, rows, row_major=row_major)
            feature = self.features[col]
            raise feature.error(flat[position], row=row, expected=feature.in_range) from None
        block = values.reshape(rows, -1) if row_major else values.reshape(-1, rows).T
        if type(None) in types:
            self.check_nulls(block)
        if self.integer_columns:
            self.check_integers(block, flat, row_major=row_major, fractions=float in types)
        return block

    def check_nulls(self, block: Array, *, null: object = None) -> None:
        """Refuse NaN in a column that is not nullable (``null``: how the error shows it)."""
        nan = np.isnan(block)
        for index, feature in enumerate(self.features):
            if not feature.nullable and nan[:, index].any():
                raise feature.error(null, row=int(np.flatnonzero(nan[:, index])[0]))

    def check_integers(
        self,
        block: Array,
        flat: Sequence[Any] | None = None,
        *,
        row_major: bool = True,
        fractions: bool = True,
    ) -> None:
        """Refuse a fraction or a number past int64 in an integer column of ``block``.

        ``flat``: the values the block was made of, to judge and show a number exactly;
        without them, ±2**63 passes (float64 rounds 2**63 - 1 up to 2**63).
        ``fractions``: whether any value can be one.
        """
        ints = block[:, self.integer_columns]
        suspect = np.abs(ints) >= _ROUNDED_FROM  # inf too
        if fractions:
            suspect |= ints != np.floor(ints)  # NaN too: a null, checked apart
        if not np.count_nonzero(suspect):  # cheaper than .all() on a request's few values
            return
        rows = len(block)
        for index in np.flatnonzero(suspect & ~np.isnan(ints)):
            row, k = divmod(int(index), len(self.integer_columns))
            col = self.integer_columns[k]
            value: Any = float(ints[row, k])
            if flat is None:
                within = value.is_integer() and abs(value) <= _ROUNDED_FROM
            else:
                value = flat[row * len(self.features) + col if row_major else col * rows + row]
                within = is_int64(value)
            if within:
                continue
            feature = self.features[col]
            fraction = type(value) is float and math.isfinite(value) and not value.is_integer()
            raise feature.error(value, row=row, expected=None if fraction else feature.in_range)

    def _cell(self, position: int, rows: int, *, row_major: bool) -> tuple[int, int]:
        """The (row, feature) of a position in a flat list of values."""
        if row_major:
            return divmod(position, len(self.features))
        col, row = divmod(position, rows)
        return row, col

    def _raise_first_bad(self, flat: Sequence[Any], rows: int, *, row_major: bool) -> None:
        for position, value in enumerate(flat):
            if type(value) not in _NUMBER_TYPES:
                row, col = self._cell(position, rows, row_major=row_major)
                raise self.features[col].error(value, row=row)

    def _record_error(self, records: Sequence[Any]) -> InvalidInput:
        for row, record in enumerate(records):
            if type(record) is not dict:
                return InvalidInput(
                    f"row {row}: expected an object of feature values, found {describe(record)}",
                    field=f"row {row}",
                    expected="an object of feature values",
                    found=describe(record),
                )
            for feature in self.features:
                if feature.name not in record:
                    row_shown = row if len(records) > 1 else None
                    return missing(feature.name, feature.expected, list(record), row_shown)
        return InvalidInput(
            "records: expected objects of feature values",
            field="records",
            expected="objects",
            found="other",
        )


_MISSING = object()
_NUMBER_TYPES = frozenset({int, float, type(None)})


def check_lengths(names: Sequence[str], columns: Sequence[Sequence[Any] | Array]) -> None:
    """Every column must have as many values as the first."""
    if not columns:
        return
    rows = len(columns[0])
    for name, column in zip(names, columns, strict=True):
        if len(column) != rows:
            raise InvalidInput(
                f"feature {name!r}: expected {rows} values like {names[0]!r}, found {len(column)}",
                field=name,
                expected=f"{rows} values",
                found=f"{len(column)} values",
            )


def cast_tensor(array: Array, dtype: np.dtype[Any], field: str, where: str = "") -> Array:
    """``array`` as ``dtype``, refusing what ``dtype`` cannot hold: a number past its range
    (numpy would wrap an integer and make a float infinite) or a fraction for an integer.

    Raises:
        InvalidInput: A value ``dtype`` cannot hold, named by ``field`` (``where`` in the
            message, by default ``field``), with the range and the value.
    """
    if (
        array.dtype.kind not in "iuf"
        or dtype.kind not in "iuf"
        or np.can_cast(array.dtype, dtype, "safe")
    ):
        return array.astype(dtype, copy=False)
    if dtype.kind == "f":
        limit = float(np.finfo(dtype).max)
        wide = array.astype(np.float64, copy=False)
        bad = np.isfinite(wide) & (np.abs(wide) > limit)
        expected = f"numbers within {dtype}'s range (±{limit:.3g})"
    else:
        info = np.iinfo(dtype)
        if array.dtype.kind == "f":
            # float(info.max) + 1 is the first float past the range (2**63 for int64).
            past = (array < info.min) | (array >= float(info.max) + 1)
            bad = ~np.isfinite(array) | (array != np.floor(array)) | past
        else:
            bad = (array < info.min) | (array > info.max)
        expected = f"integers from {info.min} to {info.max} ({dtype})"
    if bad.any():
        index = int(np.argmax(bad.ravel()))
        found = f"{describe(array.ravel()[index].item())} (element {index})"
        raise InvalidInput(
            f"{where or field}: expected {expected}, found {found}",
            field=field,
            expected=expected,
            found=found,
        )
    return array.astype(dtype, copy=False)


def with_exact_integers(convert: Callable[[Any], T], document: Any, body: bytes | bytearray) -> T:
    """``convert(document)``; when it fails on a number orjson may have rounded (an integer
    literal past 64 bits reads as a float), once more on ``body`` read by Python's ``json``,
    whose integers are exact, so that the error shows the number as sent.

    Raises:
        InvalidInput: ``convert`` refused the document.
    """
    try:
        return convert(document)
    except InvalidInput as exc:
        if not exc.rounded:
            raise
        first = exc
    try:
        exact = json.loads(body)
    except (ValueError, RecursionError):  # past Python's digit limit, or too deep
        raise first from None
    convert(exact)  # raises the same error with the exact number
    raise first


def is_finite_number(value: object) -> bool:
    """Whether a JSON value is a finite int or float (not a bool)."""
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]
