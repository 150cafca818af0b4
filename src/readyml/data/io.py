"""Reading tables from CSV and Parquet files into pandas frames (pyarrow engine)."""

from __future__ import annotations

import glob
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from readyml.errors import DataError

_READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_table(path_or_glob: str | Path) -> pd.DataFrame:
    """Read one CSV or Parquet file, or every file matching a glob, as one frame.

    Args:
        path_or_glob: a file path, or a pattern such as ``data/*.parquet``.

    Returns:
        The rows of all matched files, in sorted path order.

    Raises:
        DataError: the file is missing, nothing matches the glob, the extension is not
            ``.csv``/``.parquet``/``.pq``, or the content cannot be parsed.
    """
    text = str(path_or_glob)
    if glob.has_magic(text):
        paths = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
        if not paths:
            raise DataError(f"data files {text!r}: no file matches the pattern")
    else:
        paths = [Path(text)]
        if not paths[0].is_file():
            raise DataError(f"data file {text!r} not found")
    frames = [_read_one(p) for p in paths]
    if len(frames) == 1:
        return frames[0]
    try:
        return pd.concat(frames, ignore_index=True)
    except (TypeError, ValueError) as exc:
        raise DataError(f"data files {text!r}: cannot combine the files ({exc})") from exc


def _read_one(path: Path) -> pd.DataFrame:
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"data file '{path}': expected extension .csv, .parquet or .pq, "
            f"found {path.suffix or 'none'!r}"
        )
    try:
        if kind == "csv":
            frame = pd.read_csv(path, engine="pyarrow")
        else:
            # Column by column, freeing each Arrow buffer once converted: the peak stays near
            # one copy of the data instead of two (pd.read_parquet holds both at once).
            table = pq.read_table(path)
            frame = table.to_pandas(self_destruct=True, split_blocks=True)
            del table
    except (OSError, ValueError, TypeError, UnicodeDecodeError, pa.ArrowException) as exc:
        raise DataError(f"data file '{path}': cannot read it as {kind} ({exc})") from exc
    return _dates_as_datetime(frame)


def _dates_as_datetime(frame: pd.DataFrame) -> pd.DataFrame:
    """Arrow reads ISO dates as date32, which pandas holds as Python objects; use datetime64."""
    for column in frame.columns:
        series = frame[column]
        if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) == "date":
            frame[column] = pd.to_datetime(series)
    return frame
