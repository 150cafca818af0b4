"""Logical column types shared by profiles, schemas and validation."""

from __future__ import annotations

from typing import Final, Literal

import pandas as pd

FeatureType = Literal["float", "int", "bool", "category", "string", "datetime"]
FEATURE_TYPES: Final = ("float", "int", "bool", "category", "string", "datetime")
MIXED: Final = "mixed"  # an object column holding values of several kinds
NUMERIC_TYPES: Final = frozenset({"float", "int", "datetime"})

_INFERRED: Final = {
    "string": "string",
    "unicode": "string",
    "empty": "string",
    "integer": "int",
    "floating": "float",
    "mixed-integer-float": "float",
    "decimal": "float",
    "boolean": "bool",
    "datetime64": "datetime",
    "datetime": "datetime",
    "date": "datetime",
    "categorical": "category",
}


def column_type(series: pd.Series) -> str:
    """The logical type of a column: one of ``FEATURE_TYPES`` or ``"mixed"``."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "string"
    return _INFERRED.get(pd.api.types.infer_dtype(series, skipna=True), MIXED)


def is_numeric(type_: str) -> bool:
    """Whether columns of this logical type are profiled as numbers."""
    return type_ in NUMERIC_TYPES


def compatible(expected: str, found: str) -> bool:
    """Whether data of type ``found`` satisfies a schema type ``expected``.

    Integers are valid floats; categories and strings are interchangeable. An ``int`` column
    that holds nulls arrives as ``float`` in pandas, so the caller checks integrality itself.
    """
    if expected == found:
        return True
    if expected == "float" and found == "int":
        return True
    return {expected, found} == {"category", "string"}
