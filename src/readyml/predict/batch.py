"""Batch prediction: score a Parquet file with a registered version, in-process or on Ray Data.

Why stream: a data set may be larger than memory, so it is read in record batches of
``batch_rows`` rows (only the feature and kept columns) and each scored batch is appended to
the output at once; memory holds a batch or two, never the file.

How a batch is scored is one function, :func:`score_table`, whichever engine runs it, so
both engines write the same output. The Arrow columns become the model input with the types
the server gives request values (one ``float64`` block for all-numeric models; ``float64``,
``int64``, ``bool``, object and ``datetime64`` columns otherwise), then one
:meth:`~readyml.predict.Predictor.predict_input` call answers the batch. The unit of work is
the Parquet row group, read in slices of ``batch_rows`` (:func:`score_row_group`): in-process
one after the other; on Ray, by a pool of Ray Data actors that each load the predictor once
and read their row groups themselves. Ray's own Parquet reader is not used: it may hand the
row groups on in another order, and slices them differently. The driver writes the scored
row groups in input order, so the output is one file in the input's order, identical to the
in-process one. An alias is resolved to its version once, on the driver, so every actor
scores with the same version even if the alias moves.

Input is checked before any row is scored: every feature column present and of a compatible
Arrow type, and no nulls (per the Parquet statistics) where the schema allows none; each
batch is checked again (NaN counts as null). Bad input fails the whole job with one line
naming the column; the output appears only when every row was scored (temporary name, then
rename).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from readyml import _ray
from readyml.config import Project
from readyml.data.schema import load_schema
from readyml.errors import ConfigError, DataError, ReadymlError
from readyml.flavors._base import Array
from readyml.predict import RUNTIMES, Predictor, RuntimeRequest
from readyml.predict.inputs import Feature
from readyml.registry import open_registry

Engine = Literal["auto", "local", "ray"]
ENGINES: tuple[Engine, ...] = ("auto", "local", "ray")
# Rows per batch: large enough that the model call dominates, small enough to stream.
DEFAULT_BATCH_ROWS = 65_536
ROW_ID = "row_id"
# The input position of each scored row, as Ray's actors send it back to the driver.
_POSITION = "__readyml_position"
PREDICTION = "prediction"
SCHEMA_FILE = "schema.yaml"

# What each feature kind accepts, in words, for error messages.
_EXPECTED = {
    "number": "a numeric column (integer or floating point)",
    "integer": "an integer column (or floating point with whole values)",
    "boolean": "a boolean column",
    "string": "a string column",
    "datetime": "a timestamp, date or ISO 8601 string column",
}


@dataclass(frozen=True)
class BatchResult:
    """What a batch prediction did."""

    model: str
    rows: int
    seconds: float
    engine: Literal["local", "ray"]
    out: Path

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return {
            "model": self.model,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "engine": self.engine,
            "out": str(self.out),
        }


class BatchPrediction:
    """Score a Parquet file with a registered version, streaming, in-process or on Ray.

    Args:
        engine: ``local`` (this process), ``ray`` (Ray Data), or ``auto``: Ray when a
            cluster address is given (``ray_address`` or ``RAY_ADDRESS``), else local.
        batch_rows: Rows per batch.
        keep: Input columns copied into the output, before the predictions.
        row_id: Add ``row_id``, each row's 0-based position in the input, first.
        runtime: ``native``, ``onnx`` or ``auto`` (see :meth:`Predictor.load`).
        actors: Ray actors scoring row groups in parallel; ``None``: one per free CPU of the
            cluster (more actors than that share the CPUs).
        ray_address: An existing Ray cluster; ``None``: a local one (engine ``ray``).

    Example:
        >>> job = BatchPrediction(keep=["customer_id"], row_id=True)
        >>> job.run(Project.load("churn"), "churn@champion", Path("in.parquet"),
        ...         Path("out.parquet"))  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        engine: Engine | str = "auto",
        batch_rows: int = DEFAULT_BATCH_ROWS,
        keep: Sequence[str] = (),
        row_id: bool = False,
        runtime: RuntimeRequest | str = "native",
        actors: int | None = None,
        ray_address: str | None = None,
    ) -> None:
        self.engine = engine
        self.batch_rows = batch_rows
        self.keep = keep
        self.row_id = row_id
        self.runtime = runtime
        self.actors = actors
        self.ray_address = ray_address

    def run(self, project: Project, ref: str, source: Path, out: Path) -> BatchResult:
        """Score every row of ``source`` with ``ref`` and write ``out`` (Parquet).

        Raises:
            ConfigError: An option is invalid, or Ray is needed and missing.
            DataError: The input is missing, not Parquet, or does not fit the model.
            VersionNotFound: No such model, version or alias.
        """
        self._check_options()
        started = time.monotonic()
        registry = open_registry(project.workspace)
        version = registry.get(ref)
        pinned = f"{version.name}:{version.version}"
        source, out = Path(source), Path(out)
        reader = _open_parquet(source)
        if source.resolve() == out.resolve():
            raise ConfigError(f"--out: expected a file other than the input, found {out}")
        engine = self._engine()
        out.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(handle)
        try:
            if engine == "ray":
                tables = self._on_ray(project, pinned, source, reader)
            else:
                tables = self._in_process(project, pinned, source, reader)
            rows = _write(tables, Path(temporary), row_id=self.row_id)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)  # as a plain write would (mkstemp makes 0600)
            os.replace(temporary, out)
        finally:
            Path(temporary).unlink(missing_ok=True)
        return BatchResult(pinned, rows, time.monotonic() - started, engine, out)

    # -- engines ------------------------------------------------------------------------

    def _engine(self) -> Literal["local", "ray"]:
        if self.engine == "auto":
            return "ray" if self.ray_address or os.environ.get("RAY_ADDRESS") else "local"
        return "ray" if self.engine == "ray" else "local"

    def _runtime(self) -> RuntimeRequest:
        chosen: dict[str, RuntimeRequest] = {runtime: runtime for runtime in RUNTIMES}
        return chosen.get(self.runtime, "native")

    def _check_options(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine: expected one of {list(ENGINES)}, found {self.engine!r}")
        if self.batch_rows < 1:
            raise ConfigError(f"--batch-rows: expected at least 1, found {self.batch_rows}")
        if self.runtime not in RUNTIMES:
            raise ConfigError(
                f"--runtime: expected one of {list(RUNTIMES)}, found {self.runtime!r}"
            )
        if self.actors is not None and self.actors < 1:
            raise ConfigError(f"--actors: expected at least 1, found {self.actors}")
        if self.row_id and ROW_ID in self.keep:
            raise ConfigError(
                f"--keep: {ROW_ID!r} is the row id column; rename it or drop --row-id"
            )

    def _columns(self, predictor: Predictor, source: Path, reader: pq.ParquetFile) -> list[str]:
        """The input columns to read, after checking them against the model."""
        check_columns(predictor, reader.schema_arrow, source=source, keep=self.keep)
        check_null_counts(predictor, reader, source=source)
        wanted = [*predictor.names, *self.keep]
        return list(dict.fromkeys(wanted))

    def _in_process(
        self, project: Project, ref: str, source: Path, reader: pq.ParquetFile
    ) -> Iterator[pa.Table]:
        predictor = load_predictor(project.root, ref, self._runtime())
        columns = self._columns(predictor, source, reader)
        for group, first_row in row_groups(reader):
            yield from score_row_group(
                predictor,
                reader,
                group,
                first_row=first_row,
                columns=columns,
                keep=self.keep,
                batch_rows=self.batch_rows,
            )

    def _on_ray(
        self, project: Project, ref: str, source: Path, reader: pq.ParquetFile
    ) -> Iterator[pa.Table]:
        # The columns are checked here, on the driver, before any actor starts.
        predictor = load_predictor(project.root, ref, self._runtime())
        columns = self._columns(predictor, source, reader)
        del predictor
        ray = _ray.require_ray("--engine ray")
        session = _ray.connect(self.ray_address, what="--ray-address")
        try:
            context = ray.data.DataContext.get_current()
            context.execution_options.preserve_order = True
            context.enable_progress_bars = False
            # The actor's DataError comes back as the cause of Ray's task error, not as a
            # traceback inside a generic UserCodeException.
            context.raise_original_map_exception = True
            cpus = _ray.free_cpus()
            if cpus <= 0.0:
                raise ConfigError(
                    "--engine ray: expected a free CPU in the Ray cluster, found none (other "
                    "work holds them all)"
                )
            actors = self.actors or max(1, int(cpus))
            groups = [{"group": g, "first_row": first} for g, first in row_groups(reader)]
            # One item per row group: the actors read their row groups themselves, in the
            # slices the in-process engine uses, so both compute alike.
            dataset = ray.data.from_items(groups, override_num_blocks=max(1, len(groups)))
            scored = dataset.map_batches(
                _RowGroupScorer,
                fn_constructor_kwargs={
                    "project_root": str(project.root.resolve()),
                    "ref": ref,
                    "runtime": self._runtime(),
                    "source": str(source.resolve()),
                    "columns": columns,
                    "keep": list(self.keep),
                    "batch_rows": self.batch_rows,
                },
                batch_size=1,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=min(1.0, cpus / actors),
            )
            try:
                yield from _in_input_order(
                    scored.iter_batches(batch_format="pyarrow", batch_size=None)
                )
            except Exception as exc:
                cause = _readyml_cause(exc)
                if cause is None:
                    raise
                raise _copy(cause) from exc
        finally:
            if session.connected:
                ray.shutdown()


class _RowGroupScorer:
    """A Ray Data actor: loads the predictor once, then scores the row groups it is given."""

    def __init__(
        self,
        *,
        project_root: str,
        ref: str,
        runtime: RuntimeRequest,
        source: str,
        columns: list[str],
        keep: list[str],
        batch_rows: int,
    ) -> None:
        self.predictor = load_predictor(Path(project_root), ref, runtime)
        self.reader = pq.ParquetFile(source)
        self.columns = columns
        self.keep = keep
        self.batch_rows = batch_rows

    def __call__(self, items: pa.Table) -> pa.Table:
        tables = []
        for item in items.to_pylist():
            first_row = int(item["first_row"])
            scored = pa.concat_tables(
                score_row_group(
                    self.predictor,
                    self.reader,
                    int(item["group"]),
                    first_row=first_row,
                    columns=self.columns,
                    keep=self.keep,
                    batch_rows=self.batch_rows,
                )
            )
            rows = np.arange(first_row, first_row + scored.num_rows, dtype=np.int64)
            tables.append(scored.append_column(_POSITION, pa.array(rows)))
        return pa.concat_tables(tables)


def _in_input_order(tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """The scored tables in input order (by their position column, then dropped).

    Ray Data keeps the order here (``preserve_order``); this holds early arrivals back should
    it not, so the output never depends on it.
    """
    waiting: dict[int, pa.Table] = {}
    expected = 0
    for table in tables:
        if table.num_rows == 0:
            continue
        waiting[int(table.column(_POSITION)[0].as_py())] = table
        while expected in waiting:
            ready = waiting.pop(expected)
            expected += ready.num_rows
            yield ready.drop_columns([_POSITION])
    if waiting:
        raise RuntimeError(f"batch prediction on Ray: rows from {expected} never arrived")


def row_groups(reader: pq.ParquetFile) -> list[tuple[int, int]]:
    """Each row group's index and the input row of its first row."""
    starts = []
    first_row = 0
    for group in range(reader.metadata.num_row_groups):
        starts.append((group, first_row))
        first_row += reader.metadata.row_group(group).num_rows
    return starts


def score_row_group(
    predictor: Predictor,
    reader: pq.ParquetFile,
    group: int,
    *,
    first_row: int,
    columns: Sequence[str],
    keep: Sequence[str],
    batch_rows: int,
) -> Iterator[pa.Table]:
    """The scored batches of one row group, ``batch_rows`` rows at a time.

    Both engines slice the input this way, so each model call sees the same rows.
    """
    for batch in reader.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns):
        table = pa.Table.from_batches([batch])
        yield score_table(predictor, table, keep=keep, first_row=first_row)
        first_row += table.num_rows


def load_predictor(root: Path, ref: str, runtime: RuntimeRequest = "native") -> Predictor:
    """Load ``ref`` from the project at ``root`` with its checked-in schema (as the server does)."""
    project = Project.load(root)
    project.workspace.mkdir(parents=True, exist_ok=True)
    schema_path = project.root / SCHEMA_FILE
    schema = load_schema(schema_path) if schema_path.exists() else None
    return Predictor.load(
        open_registry(project.workspace),
        ref,
        schema=schema,
        runtime=runtime,
        trusted_types=project.trusted_types(),
    )


# -- checking and converting the input ----------------------------------------------------


def _open_parquet(source: Path) -> pq.ParquetFile:
    if not source.is_file():
        raise DataError(f"input {source}: expected a Parquet file, found no such file")
    try:
        return pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"input {source}: expected a Parquet file, found {exc}") from None


def _accepts(feature: Feature, kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    types = pa.types
    checks = {
        "number": (types.is_integer, types.is_floating),
        "integer": (types.is_integer, types.is_floating),
        "boolean": (types.is_boolean,),
        "string": (types.is_string, types.is_large_string),
        "datetime": (types.is_timestamp, types.is_date, types.is_string, types.is_large_string),
    }[feature.kind]
    return any(bool(check(kind)) for check in checks)


def check_columns(
    predictor: Predictor, schema: pa.Schema, *, source: Path, keep: Sequence[str] = ()
) -> None:
    """Every feature (and kept column) is in ``schema``, each feature of a compatible type.

    Raises:
        DataError: A column is missing or of the wrong type; the message names it.
    """
    if predictor.layout == "tensor":
        raise DataError(
            f"model {predictor.name}:{predictor.version}: expected a model of table columns, "
            "found one that takes a tensor; batch prediction reads tabular Parquet data"
        )
    present = set(schema.names)
    shown = ", ".join(schema.names[:10]) + (", ..." if len(schema.names) > 10 else "")
    for feature in predictor.features:
        if feature.name not in present:
            raise DataError(
                f"input {source}: column {feature.name!r}: expected the model's feature "
                f"({_EXPECTED[feature.kind]}), found no such column (columns: {shown})"
            )
        kind = schema.field(feature.name).type
        if not _accepts(feature, kind):
            raise DataError(
                f"input {source}: column {feature.name!r}: expected {_EXPECTED[feature.kind]}, "
                f"found {kind}"
            )
    for name in keep:
        if name not in present:
            raise DataError(
                f"input {source}: --keep {name!r}: expected a column of the input, found no "
                f"such column (columns: {shown})"
            )


def check_null_counts(predictor: Predictor, reader: pq.ParquetFile, *, source: Path) -> None:
    """No nulls in a non-nullable feature, per the Parquet statistics (where written).

    Raises:
        DataError: A non-nullable feature column holds nulls; the message counts them.
    """
    metadata = reader.metadata
    paths = {metadata.schema.column(i).path: i for i in range(metadata.num_columns)}
    for feature in predictor.features:
        index = paths.get(feature.name)
        if feature.nullable or index is None:
            continue
        nulls = 0
        for group in range(metadata.num_row_groups):
            statistics = metadata.row_group(group).column(index).statistics
            if statistics is not None and statistics.has_null_count:
                nulls += statistics.null_count
        if nulls:
            raise DataError(
                f"input {source}: column {feature.name!r}: expected no nulls (the schema does "
                f"not allow them), found {nulls}"
            )


def model_input(
    predictor: Predictor, table: pa.Table, *, first_row: int | None = None
) -> Array | pd.DataFrame:
    """The model input for ``table``, typed as the server types request values.

    Args:
        predictor: The model.
        table: Columns named as the features (others are ignored).
        first_row: The input row of the table's first row, for error messages.

    Raises:
        DataError: A value does not fit its feature (a null where none is allowed, a
            fractional value in an integer feature).
    """
    if predictor.layout == "numeric":
        columns = [_float_column(table.column(f.name)) for f in predictor.features]
        block = np.column_stack(columns) if columns else np.empty((table.num_rows, 0))
        for index, feature in enumerate(predictor.features):
            # As the server's numeric block: a nullable integer feature may be null (NaN).
            _check_column(feature, block[:, index], first_row, nulls=feature.nullable)
        return block
    return pd.DataFrame(
        {f.name: _typed_column(f, table.column(f.name), first_row) for f in predictor.features}
    )


def score_table(
    predictor: Predictor, table: pa.Table, *, keep: Sequence[str] = (), first_row: int | None = None
) -> pa.Table:
    """Predict the rows of ``table``: kept columns, ``prediction``, then ``proba_<class>``.

    Raises:
        DataError: A value does not fit its feature (see :func:`model_input`).
    """
    prediction = predictor.predict_input(model_input(predictor, table, first_row=first_row))
    columns: dict[str, pa.Array | pa.ChunkedArray] = {name: table.column(name) for name in keep}
    columns[PREDICTION] = pa.array(prediction.labels)
    if prediction.proba is not None and predictor.classes is not None:
        for index, label in enumerate(predictor.classes.tolist()):
            columns[f"proba_{label}"] = pa.array(prediction.proba[:, index], pa.float64())
    return pa.table(columns)


def _float_column(column: pa.ChunkedArray) -> Array:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    values: Array = column.cast(pa.float64()).to_numpy()
    return values


def _check_column(feature: Feature, values: Array, first_row: int | None, *, nulls: bool) -> None:
    nan = np.isnan(values)
    if not nulls:
        _raise_at(feature, nan, None, first_row)
    if feature.kind == "integer":
        finite = np.where(nan, 0.0, values)
        _raise_at(feature, finite != np.floor(finite), values, first_row)


def _raise_at(feature: Feature, bad: Array, values: Array | None, first_row: int | None) -> None:
    if not bad.any():
        return
    index = int(np.flatnonzero(bad)[0])
    found = "null" if values is None else f"{float(values[index])!r}"
    where = f" (row {first_row + index})" if first_row is not None else ""
    raise DataError(
        f"column {feature.name!r}: expected {feature.expected}, found {found}{where}; "
        f"{int(bad.sum())} such value(s) in this batch"
    )


def _typed_column(feature: Feature, column: pa.ChunkedArray, first_row: int | None) -> Array:
    """One feature as the server's typed column (see ``Feature.check_values``)."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if feature.kind in ("number", "integer"):
        values = _float_column(column)
        # As the server's typed columns: an integer feature is never null.
        _check_column(
            feature, values, first_row, nulls=feature.nullable and feature.kind == "number"
        )
        if feature.kind == "number":
            return values
        integers: Array = column.cast(pa.int64(), safe=False).to_numpy()
        return integers
    nulls: Array = column.is_null().to_numpy(zero_copy_only=False)
    if not feature.nullable:
        _raise_at(feature, nulls, None, first_row)
    if feature.kind == "boolean":
        # A null boolean becomes False, as numpy turns the server's None into False.
        filled: Array = pc.fill_null(column, False).to_numpy(zero_copy_only=False)
        return filled.astype(np.bool_)
    if feature.kind == "datetime":
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            try:
                return np.array(column.to_pylist(), dtype="datetime64[ns]")
            except ValueError as exc:
                raise DataError(
                    f"column {feature.name!r}: expected {feature.expected}, found a value "
                    f"numpy cannot read ({exc})"
                ) from None
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            column = column.cast(pa.timestamp(column.type.unit))
        stamps: Array = column.cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False)
        return stamps.astype("datetime64[ns]")
    strings: Array = column.to_numpy(zero_copy_only=False)
    return strings.astype(object)


def _readyml_cause(exc: BaseException) -> ReadymlError | None:
    """The readyml error an actor raised, from the chain of exceptions Ray wraps it in."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        # Ray's task errors keep the actor's exception as ``cause``; their own message is
        # the remote traceback, so the cause is looked at first.
        cause = getattr(current, "cause", None)
        if isinstance(cause, BaseException) and id(cause) not in seen:
            current = cause
            continue
        if isinstance(current, ReadymlError):
            return current
        current = current.__cause__ or current.__context__
    return None


def _copy(error: ReadymlError) -> ReadymlError:
    """The same error, raised afresh on the driver (its class when it takes one message).

    Ray appends its retry advice to the message; readyml's messages are one line.
    """
    message = (str(error).splitlines() or [type(error).__name__])[0]
    try:
        return type(error)(message)
    except TypeError:
        return ReadymlError(message)


def _write(tables: Iterator[pa.Table], path: Path, *, row_id: bool) -> int:
    """Write the scored tables to ``path`` as they come; return the number of rows."""
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    rows = 0
    try:
        for table in tables:
            if row_id:
                ids = pa.array(np.arange(rows, rows + table.num_rows, dtype=np.int64))
                table = table.add_column(0, ROW_ID, ids)
            if writer is None or schema is None:
                schema = table.schema
                writer = pq.ParquetWriter(path, schema)
            elif table.schema != schema:
                table = table.cast(schema)
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    if rows == 0:
        raise DataError("input: expected at least one row, found none")
    return rows
