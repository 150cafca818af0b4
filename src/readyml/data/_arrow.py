"""Arrow tables as profiler input, read in place: no pandas copy of the data is made.

Numeric columns are read record batch by record batch, as numpy arrays: zero-copy views of
the Arrow buffers where a batch has no nulls; otherwise a NaN-filled copy of the one batch
being read, made again on each pass, so no copy of a whole column is ever held.
Dictionary-encoded string columns are counted on their indices. Each column is given exactly
the values, type and category order that ``Table.to_pandas()`` would give it, so a profile of
a table equals the profile of its pandas conversion. Columns of any other kind (strings,
booleans, dates, nullable extension types, ...) are converted to pandas one at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

from readyml.data import _columns as cols


def data_columns(table: pa.Table) -> list[str]:
    """Column names, without the pandas index stored as columns (``__index_level_0__``)."""
    meta = table.schema.pandas_metadata or {}
    index = {name for name in meta.get("index_columns", []) if isinstance(name, str)}
    return [name for name in table.column_names if name not in index]


def to_series(table: pa.Table, name: str) -> pd.Series:
    """One column as pandas would convert it with the whole table."""
    series: pd.Series = table.select([name]).to_pandas().iloc[:, 0]
    return series


def pandas_numpy_types(table: pa.Table) -> dict[str, str]:
    """The numpy type pandas recorded for each column written from a frame (else absent)."""
    meta = table.schema.pandas_metadata or {}
    columns = meta.get("columns", [])
    return {str(c.get("field_name", c.get("name"))): str(c.get("numpy_type")) for c in columns}


class _Chunks:
    """The chunks of a numeric Arrow column as numpy arrays, converted as they are read."""

    def __init__(self, column: pa.ChunkedArray, dtype: np.dtype[Any] | None) -> None:
        self.column = column
        self.dtype = dtype

    def __iter__(self) -> Iterator[NDArray[Any]]:
        for chunk in self.column.chunks:
            values = chunk.to_numpy(zero_copy_only=False)  # nulls: a NaN-filled copy
            yield values if self.dtype is None else np.asarray(values, dtype=self.dtype)


def number_chunks(
    column: pa.ChunkedArray, numpy_type: str | None
) -> tuple[str, cols.Chunks] | None:
    """``("int" | "float", chunks)`` for a plain numeric column, else ``None``.

    ``numpy_type`` is the type pandas recorded, if any. As in pandas, integers with nulls
    become float64 with NaN for the nulls.
    """
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_float32(kind) or pa.types.is_float64(kind)):
        return None
    if numpy_type not in (None, np.dtype(kind.to_pandas_dtype()).name):
        return None  # e.g. pandas' nullable "Int64"
    if pa.types.is_integer(kind) and column.null_count:
        return "float", _Chunks(column, np.dtype(np.float64))
    return ("int" if pa.types.is_integer(kind) else "float"), _Chunks(column, None)


def category_table(column: pa.ChunkedArray) -> tuple[cols.Table, int] | None:
    """Labels and counts (see ``label_table``) of a dictionary-encoded string column."""
    kind = column.type
    if not pa.types.is_dictionary(kind) or not _is_text(kind.value_type):
        return None
    if not column.num_chunks:
        return cols.category_table([], [])
    unified = column.unify_dictionaries()  # the categories pandas would make, in its order
    categories = unified.chunk(0).dictionary
    if categories.null_count:
        return None
    codes = [_codes(chunk.indices) for chunk in unified.chunks]
    return cols.category_table(codes, categories.to_pylist())


def _codes(indices: pa.Array) -> NDArray[Any]:
    if indices.null_count:
        indices = indices.fill_null(-1)
    codes: NDArray[Any] = indices.to_numpy(zero_copy_only=False)
    return codes


def _is_text(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )
