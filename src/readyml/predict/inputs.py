"""Signature checks: turn request values into typed columns, or say exactly what is wrong.

Every check is vectorised over the rows of a request: a numeric model's rows become one
``float64`` block after one pass over the value types; only when that pass finds a problem
does a slower scan run, to name the feature, the expected type and what came.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from readyml.data.schema import Schema
from readyml.errors import BadRequest
from readyml.flavors._base import Array
from readyml.types import JSON

Kind = Literal["number", "integer", "boolean", "string", "datetime"]

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


class InvalidInput(BadRequest):
    """A request's value does not fit the model's signature; names field, expected, found."""

    def __init__(self, message: str, *, field: str, expected: str, found: str) -> None:
        super().__init__(message)
        self.field = field
        self.expected = expected
        self.found = found

    def to_dict(self) -> JSON:
        """The error as the server's JSON body."""
        return {
            "error": str(self),
            "field": self.field,
            "expected": self.expected,
            "found": self.found,
        }


def describe(value: object) -> str:
    """A short description of a JSON value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
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

    def check_values(self, values: Sequence[Any], *, start_row: int = 0) -> Array:
        """Values of this feature (one per row) as a typed numpy column.

        Raises:
            InvalidInput: A value has the wrong type, or is null where nulls are not allowed.
        """
        allowed = _JSON_TYPES[self.kind]
        types = set(map(type, values))
        if not types <= allowed:
            nulls_ok = self.nullable and self.kind != "integer"
            for row, value in enumerate(values):
                if type(value) not in allowed and not (value is None and nulls_ok):
                    raise self.error(value, row=start_row + row)
            types.discard(type(None))
        return self._column(values, types, start_row)

    def _column(self, values: Sequence[Any], types: set[type], start_row: int) -> Array:
        if self.kind == "number":
            column = np.array(values, dtype=np.float64)
            if not self.nullable and type(None) in types:
                row = int(np.flatnonzero(np.isnan(column))[0])
                raise self.error(None, row=start_row + row)
            return column
        if self.kind == "integer":
            return np.array(values, dtype=np.int64)
        if self.kind == "boolean":
            return np.array(values, dtype=np.bool_)
        if self.kind == "datetime":
            try:
                return np.array(values, dtype="datetime64[ns]")
            except ValueError:
                for row, value in enumerate(values):
                    try:
                        np.datetime64(value, "ns")
                    except ValueError:
                        raise self.error(value, row=start_row + row) from None
                raise
        column = np.empty(len(values), dtype=object)
        column[:] = values
        return column

    def error(self, value: object, *, row: int) -> InvalidInput:
        """The error for a bad ``value`` in ``row``."""
        found = describe(value)
        return InvalidInput(
            f"feature {self.name!r}: expected {self.expected}, found {found} (row {row})",
            field=self.name,
            expected=self.expected,
            found=found,
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


def missing(name: str, expected: str, present: Sequence[str]) -> InvalidInput:
    """The error for a feature absent from a request."""
    # str(): keys given through the Python API need not be text, and must not break the error.
    shown = ", ".join(sorted(map(str, present))[:10]) or "none"
    return InvalidInput(
        f"feature {name!r}: expected {expected}, found no such field (fields given: {shown})",
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
                raise missing(feature.name, f"a list of {feature.expected}", list(columns))
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
        values = np.array(flat, dtype=np.float64)
        block = values.reshape(rows, -1) if row_major else values.reshape(-1, rows).T
        if type(None) in types:
            self._check_nulls(block)
        if self.integer_columns and float in types:
            ints = block[:, self.integer_columns]
            bad = np.flatnonzero(ints.ravel() != np.floor(ints.ravel()))
            if bad.size:
                row, col = divmod(int(bad[0]), len(self.integer_columns))
                feature = self.features[self.integer_columns[col]]
                raise feature.error(float(ints[row, col]), row=row)
        return block

    def _check_nulls(self, block: Array) -> None:
        nan = np.isnan(block)
        for index, feature in enumerate(self.features):
            if not feature.nullable and nan[:, index].any():
                raise feature.error(None, row=int(np.flatnonzero(nan[:, index])[0]))

    def _raise_first_bad(self, flat: Sequence[Any], rows: int, *, row_major: bool) -> None:
        width = len(self.features)
        for position, value in enumerate(flat):
            if type(value) not in _NUMBER_TYPES:
                row, col = divmod(position, width) if row_major else divmod(position, rows)[::-1]
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
                    return missing(feature.name, feature.expected, list(record))
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


def is_finite_number(value: object) -> bool:
    """Whether a JSON value is a finite int or float (not a bool)."""
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]
