"""Profiles and validation of data files, with Parquet read one column at a time.

Parquet stores each column apart, so a file need not be read whole to be profiled: a thread
(two for files of 65,536 rows or more) reads one column, profiles it and lets it go before
reading the next. Memory
holds a column or two instead of the table, and since the allocator hands the same memory
back for the next column, the kernel zero-fills a fraction of the fresh pages a whole read
costs (10 M rows × 20 columns on 2 cores: 0.9–1.1 s and 0.8 GB peak, against 1.5–2.8 s and
1.8 GB for ``read_arrow`` then ``profile_frame``; two thirds of the latter's time was the
kernel clearing pages). The columns hold the values :func:`~readyml.data.read_arrow` would
give (in fewer, longer chunks), so the results equal ``profile_frame``'s and
``validate_frame``'s on its table, up to the randomness of the quantile sketch.

CSV files, globs that match folders (datasets written as directories), and globs of Parquet
files whose schemas differ (their types are promoted as ``read_arrow`` does) are read whole.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from readyml.data import _arrow
from readyml.data._parallel import map_columns
from readyml.data.io import data_paths, is_parquet, read_arrow, reading
from readyml.data.profile import (
    ColumnProfile,
    Profile,
    chosen_columns,
    column_names,
    profile_arrow_column,
    profile_frame,
)
from readyml.data.schema import Schema
from readyml.data.validate import (
    ValidationOptions,
    ValidationReport,
    validate_columns,
    validate_frame,
)
from readyml.errors import DataError


class ParquetColumns:
    """The columns of Parquet files sharing one schema, each read when asked for.

    Args:
        paths: the files, in row order.
        footers: their metadata (see :meth:`open`).

    Raises:
        DataError: column names repeat.
    """

    def __init__(self, paths: list[Path], footers: list[pq.FileMetaData]) -> None:
        self.paths = paths
        self._footers = footers
        empty = footers[0].schema.to_arrow_schema().empty_table()
        try:
            self.names = column_names(empty)
        except DataError as exc:  # repeated names
            raise DataError(f"data file '{paths[0]}': {exc}") from exc
        self.numpy_types = _arrow.pandas_numpy_types(empty)
        self.n_rows = sum(footer.num_rows for footer in footers)

    @classmethod
    def open(cls, path_or_glob: str | Path) -> ParquetColumns | None:
        """The files' columns, or ``None`` when they must be read whole (see the module).

        Raises:
            DataError: no file, an unknown extension, or a file that is not Parquet.
        """
        paths = data_paths(path_or_glob)
        if not all(path.is_file() and is_parquet(path) for path in paths):
            return None
        footers = []
        for path in paths:
            with reading(path, "parquet"):
                footers.append(pq.read_metadata(path))
        first = footers[0].schema.to_arrow_schema()
        for footer in footers[1:]:
            if not footer.schema.to_arrow_schema().equals(first, check_metadata=False):
                return None
        return cls(paths, footers)

    def table(self, name: str) -> pa.Table:
        """Column ``name`` of every file, as a one-column table (with the pandas metadata)."""
        parts = []
        for path, footer in zip(self.paths, self._footers, strict=True):
            with (
                reading(path, "parquet"),
                pq.ParquetFile(path, metadata=footer, pre_buffer=False) as handle,
            ):
                parts.append(handle.read(columns=[name], use_threads=False))
        if len(parts) == 1:
            return parts[0]
        return pa.concat_tables(parts, promote_options="permissive")

    def series(self, name: str) -> pd.Series:
        """Column ``name`` as pandas converts it from :func:`~readyml.data.read_arrow`'s table."""
        return _arrow.to_series(self.table(name), name)

    def profile(self, columns: Iterable[str] | None = None) -> Profile:
        """Profile the given columns (all by default), one column read at a time per thread."""
        wanted = chosen_columns(self.names, columns, "the data")
        done = map_columns(self._profile_column, wanted, self.n_rows)
        return Profile(n_rows=self.n_rows, columns=dict(zip(wanted, done, strict=True)))

    def _profile_column(self, name: str) -> ColumnProfile:
        return profile_arrow_column(self.table(name), name, self.numpy_types.get(name))


def profile_file(path_or_glob: str | Path, *, columns: Iterable[str] | None = None) -> Profile:
    """Profile a CSV or Parquet file (or a glob of them) without holding the whole table.

    Args:
        path_or_glob: as :func:`~readyml.data.read_table`.
        columns: names to profile, in order; all columns by default.

    Returns:
        The profile ``profile_frame(read_arrow(path_or_glob))`` would give.

    Raises:
        DataError: as ``read_table``, or a column is missing.
    """
    source = ParquetColumns.open(path_or_glob)
    if source is None:
        return profile_frame(read_arrow(path_or_glob), columns=columns)
    return source.profile(columns)


def validate_file(
    path_or_glob: str | Path,
    *,
    schema: Schema | None = None,
    reference: Profile | None = None,
    options: ValidationOptions | None = None,
) -> ValidationReport:
    """Validate a CSV or Parquet file (or a glob of them) without holding the whole table.

    Columns are read once to be profiled and again only to name example rows of an anomaly
    (or, with ``check_duplicates``, to hash rows, one column at a time). Example rows are
    positions in all the files' rows, in sorted path order.

    Args:
        path_or_glob: as :func:`~readyml.data.read_table`.
        schema, reference, options: as :func:`~readyml.data.validate_frame`.

    Returns:
        The report ``validate_frame(read_arrow(path_or_glob), ...)`` would give.

    Raises:
        DataError: as ``read_table``.
    """
    source = ParquetColumns.open(path_or_glob)
    if source is None:
        return validate_frame(
            read_arrow(path_or_glob), schema=schema, reference=reference, options=options
        )
    return validate_columns(
        source.profile(),
        source.names,
        [functools.partial(source.series, name) for name in source.names],
        schema=schema,
        reference=reference,
        options=options,
    )
