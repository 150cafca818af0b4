"""Request and prediction logging to Parquet partitions, for monitoring.

Layout (append-only; one file per flush per partition, written under a temporary name and
renamed, so a reader never sees half a file)::

    {root}/model={name}/version={v}/hour=YYYYMMDDHH/part-{unique}.parquet

Columns: ``request_id`` (string), ``ts`` (timestamp, UTC, arrival), ``model`` (string),
``version`` (int64), one column per input feature typed as the signature, ``prediction``,
``proba_<class>`` per class (classifiers), ``latency_ms`` (float64, arrival to prediction),
``status`` (int32, the HTTP status), ``rss_mb`` (float64, the server process's resident memory
when the rows were written; absent where ``/proc`` is not available). A request of N rows
gives N log rows with one id.

Recording is a sampled append to a bounded buffer on the event loop (about a microsecond).
Under load the server's event loop turns what was recorded into Arrow tables
(:meth:`RequestLog.compact`, checked every :data:`COMPACT_INTERVAL_S`, done once
:data:`COMPACT_ROWS` rows wait: about a millisecond, on batches still in cache), and a
background thread joins and writes them, work Arrow and Parquet do mostly without the GIL;
what is left at a flush the thread converts itself. Building every table in the writer
thread made it trade the GIL with the event loop every few hundred microseconds for tens of
milliseconds a flush, at two to three times the CPU of the same work done in one piece.
When the buffer is full the rows are dropped and counted; a failed conversion or write is
counted and never reaches a request.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from readyml.predict import Prediction, Predictor

# Arrow type of each signature dtype family.
_ARROW_TYPES: dict[str, pa.DataType] = {
    "number": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "datetime": pa.timestamp("ns"),
}

# Columns whose values repeat enough for Parquet's dictionary encoding to pay.
DICTIONARY_COLUMNS = ["model", "prediction"]
COMPACT_INTERVAL_S = 0.05  # how often the event loop checks for rows to turn into tables
# Rows converted at once: a table costs ~0.4 ms whatever its length, 0.6 µs a row beyond.
COMPACT_ROWS = 2048
# The C library's allocator for the log's Arrow buffers. With pyarrow's default (mimalloc)
# the writer thread spent 1.3-2 times the CPU per row inside a loaded server, though both
# cost the same in isolation: perhaps pages given back between flushes; measured, not explained.
_POOL = pa.system_memory_pool()

PartitionKey = tuple[str, int, int]  # model, version, hour (hours since the epoch)


class LogEntry(NamedTuple):
    """One request's rows, waiting to be written: rows ``offset:offset + rows`` of a batch.

    The request's inputs are read from ``prediction.inputs`` (the batch the model saw), so a
    flush gathers each logged row from a handful of batch arrays, not one request at a time.
    """

    predictor: Predictor
    prediction: Prediction
    offset: int
    rows: int
    request_id: str
    ts_s: float
    latency_ms: float
    status: int


class RequestLog:
    """Sampled, bounded, background request logging.

    Args:
        root: The ``logs`` folder.
        sample_rate: Fraction of requests logged (0 to 1).
        buffer_rows: Rows held before new ones are dropped.
        flush_interval_s: How often the writer thread writes what is buffered.
        compression: Parquet codec of the files (``snappy``, ``zstd``, ``lz4``, ``gzip`` or
            ``none``).
        on_outcome: Called with ``(model, outcome, rows)``: written, dropped or failed.
    """

    def __init__(
        self,
        *,
        root: Path,
        sample_rate: float = 1.0,
        buffer_rows: int = 100_000,
        flush_interval_s: float = 2.0,
        compression: str = "snappy",
        on_outcome: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.sample_rate = sample_rate
        self.buffer_rows = buffer_rows
        self.flush_interval_s = flush_interval_s
        self.compression = compression
        self.on_outcome = on_outcome
        self._entries: list[LogEntry] = []
        self._tables: list[_Tabulated] = []
        self._buffered_rows = 0  # since the last flush, against buffer_rows
        self._waiting_rows = 0  # recorded and not yet turned into a table
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.written_rows = 0
        self.dropped_rows = 0
        self.failed_rows = 0
        # CPU seconds spent turning entries into tables (event loop) and files (writer
        # thread): the log's whole cost beyond the append per request.
        self.compact_cpu_s = 0.0
        self.write_cpu_s = 0.0

    @property
    def cpu_s(self) -> float:
        """CPU seconds spent turning recorded rows into tables and files."""
        return self.compact_cpu_s + self.write_cpu_s

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="readyml-request-log", daemon=True
            )
            self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is buffered and stop the writer thread."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def record(self, entry: LogEntry) -> None:
        """Buffer one request's rows if sampled and if there is room; never raises."""
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            return
        if self._buffered_rows + entry.rows > self.buffer_rows:
            self.dropped_rows += entry.rows
            self._outcome(entry.predictor.name, "dropped", entry.rows)
            return
        # list.append is atomic under the GIL; the writer swaps the list under the lock.
        self._entries.append(entry)
        self._buffered_rows += entry.rows
        self._waiting_rows += entry.rows

    def compact(self, min_rows: int = 1) -> None:
        """Turn the rows recorded so far into Arrow tables, if at least ``min_rows`` wait.

        The event loop calls this (with :data:`COMPACT_ROWS`), where ``record`` runs.
        """
        if self._waiting_rows < min_rows:
            return
        with self._lock:
            entries, self._entries = self._entries, []
            self._waiting_rows = 0
        if not entries:
            return
        started_s = time.thread_time()
        tables = self._tabulate(entries)
        with self._lock:
            self._tables.extend(tables)
        self.compact_cpu_s += time.thread_time() - started_s

    def flush(self) -> int:
        """Write the buffered rows now (the writer thread calls this); return rows written."""
        with self._lock:
            entries, self._entries = self._entries, []
            tables, self._tables = self._tables, []
            self._buffered_rows = 0
            self._waiting_rows = 0
        tables += self._tabulate(entries)
        partitions: dict[PartitionKey, list[_Tabulated]] = defaultdict(list)
        for tabulated in tables:
            partitions[tabulated.key].append(tabulated)
        written = 0
        for (name, version, hour_index), parts in partitions.items():
            rows = sum(part.rows for part in parts)
            hour = datetime.fromtimestamp(hour_index * 3600, UTC).strftime("%Y%m%d%H")
            try:
                table = pa.concat_tables(
                    [part.table for part in parts], promote_options="default", memory_pool=_POOL
                )
                folder = self.root / f"model={name}" / f"version={version}" / f"hour={hour}"
                folder.mkdir(parents=True, exist_ok=True)
                unique = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:12]}"
                temporary = folder / f".part-{unique}.parquet.tmp"
                # Dictionary pages only where values repeat: on float features and ids they
                # cost three quarters of the write and save nothing.
                pq.write_table(
                    table,
                    temporary,
                    use_dictionary=DICTIONARY_COLUMNS,
                    compression=self.compression,
                    memory_pool=_POOL,
                )
                temporary.rename(folder / f"part-{unique}.parquet")
            except Exception as exc:  # logging must never take the server down
                self._fail(name, rows, "write", exc)
                continue
            written += rows
            self.written_rows += rows
            self._outcome(name, "written", rows)
        return written

    def _tabulate(self, entries: list[LogEntry]) -> list[_Tabulated]:
        """One table per partition of ``entries``; a partition that fails is counted."""
        rss_mb = process_rss_mb()  # one sample per table: enough for monitor-6's leak slope
        tables: list[_Tabulated] = []
        for key, columns in _partitions(entries):
            rows = sum(columns.counts)
            try:
                tables.append(_Tabulated(key, rows, _table_of(columns, rss_mb)))
            except Exception as exc:  # logging must never take the server down
                self._fail(key[0], rows, "conversion", exc)
        return tables

    def _fail(self, model: str, rows: int, step: str, exc: Exception) -> None:
        self.failed_rows += rows
        self._outcome(model, "failed", rows)
        with contextlib.suppress(OSError, ValueError):
            print(f"readyml: request log {step} failed: {exc}", file=sys.stderr)

    def _outcome(self, model: str, outcome: str, rows: int) -> None:
        if self.on_outcome is not None:
            with contextlib.suppress(Exception):
                self.on_outcome(model, outcome, rows)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self._timed_flush()
        self._timed_flush()

    def _timed_flush(self) -> None:
        started_s = time.thread_time()
        self.flush()
        self.write_cpu_s += time.thread_time() - started_s


class _Tabulated(NamedTuple):
    """Rows of one partition turned into a table, waiting to be written."""

    key: PartitionKey
    rows: int
    table: pa.Table


def process_rss_mb() -> float | None:
    """This process's resident memory in MB (Linux ``/proc``); ``None`` elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            resident_pages = int(handle.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class _Columns(NamedTuple):
    """Entries of one partition, field by field (``zip(*entries)``)."""

    predictors: tuple[Predictor, ...]
    predictions: tuple[Prediction, ...]
    offsets: tuple[int, ...]
    counts: tuple[int, ...]
    request_ids: tuple[str, ...]
    ts_s: tuple[float, ...]
    latency_ms: tuple[float, ...]
    status: tuple[int, ...]


def _partitions(entries: list[LogEntry]) -> list[tuple[PartitionKey, _Columns]]:
    """``entries`` split by model version and hour, each as columns.

    Usually every entry is of one version and hour, checked without a loop in Python.
    """
    if not entries:
        return []
    columns = _Columns(*zip(*entries, strict=True))
    first = columns.predictors[0]
    hours = np.array(columns.ts_s) // 3600
    if columns.predictors.count(first) == len(entries) and hours.min() == hours.max():
        return [((first.name, first.version, int(hours[0])), columns)]
    groups: dict[PartitionKey, list[LogEntry]] = defaultdict(list)
    for entry in entries:
        predictor = entry.predictor
        groups[(predictor.name, predictor.version, int(entry.ts_s // 3600))].append(entry)
    return [(key, _Columns(*zip(*group, strict=True))) for key, group in groups.items()]


def to_table(entries: list[LogEntry], *, rss_mb: float | None = None) -> pa.Table:
    """The Arrow table of entries of one model version (see the module docstring)."""
    return _table_of(_Columns(*zip(*entries, strict=True)), rss_mb)


def _table_of(entries: _Columns, rss_mb: float | None) -> pa.Table:
    """The Arrow table of one partition's entries.

    Every logged row is located among the distinct batches its requests were answered in;
    each column is then one gather from the batches' arrays stacked end to end (or none,
    when the entries are every row of their batches in order, the usual case), so the cost
    is a few array operations per table, not per request.
    """
    predictor = entries.predictors[0]
    predictions, offsets, counts = entries.predictions, entries.offsets, entries.counts
    repeat = np.array(counts, dtype=np.int64)
    one_row_each = int(repeat.max()) == 1
    batches, rows = _locate(predictions, offsets, repeat)
    total = len(offsets) if one_row_each else int(repeat.sum())

    def per_row(values: tuple[Any, ...], dtype: Any = None) -> np.ndarray:
        array = np.array(values, dtype=dtype)
        return array if one_row_each else np.repeat(array, repeat)

    ids: Any = entries.request_ids if one_row_each else per_row(entries.request_ids, object)
    ts_us = (per_row(entries.ts_s) * 1e6).astype(np.int64)
    columns: dict[str, pa.Array] = {
        "request_id": pa.array(ids, pa.string(), memory_pool=_POOL),
        "ts": pa.array(ts_us, pa.timestamp("us", tz="UTC")),
        "model": pa.repeat(pa.scalar(predictor.name, pa.string()), total, memory_pool=_POOL),
        "version": pa.array(np.full(total, predictor.version, dtype=np.int64)),
    }
    if predictor.layout != "tensor":
        columns.update(_feature_columns(predictor, batches, rows))
    labels = _gather([batch.labels for batch in batches], rows)
    prediction = labels.tolist() if labels.dtype.kind in "OU" else labels
    columns["prediction"] = pa.array(prediction, memory_pool=_POOL)
    probas = [batch.proba for batch in batches]
    if (
        predictor.has_proba
        and predictor.classes is not None
        and all(proba is not None for proba in probas)
    ):
        proba = _gather([p for p in probas if p is not None], rows).T.copy()
        for index, label in enumerate(predictor.classes.tolist()):
            columns[f"proba_{label}"] = pa.array(proba[index], pa.float64())
    columns["latency_ms"] = pa.array(per_row(entries.latency_ms), pa.float64())
    columns["status"] = pa.array(per_row(entries.status, np.int32), pa.int32())
    if rss_mb is not None:
        columns["rss_mb"] = pa.array(np.full(total, rss_mb), pa.float64())
    return pa.table(columns)


def _locate(
    predictions: tuple[Prediction, ...], offsets: tuple[int, ...], repeat: np.ndarray
) -> tuple[list[Prediction], np.ndarray | None]:
    """The distinct batches, in order of first appearance, and each logged row's index in
    them stacked end to end; ``None`` for the index when it is every row in order."""
    ids = np.fromiter(map(id, predictions), dtype=np.int64, count=len(predictions))
    _, first_seen, which = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first_seen, kind="stable")  # unique sorts by id; restore arrival
    batches = [predictions[index] for index in first_seen[order].tolist()]
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    sizes = np.array([batch.rows for batch in batches], dtype=np.int64)
    starts = np.cumsum(sizes) - sizes
    first = starts[rank[which]] + np.array(offsets, dtype=np.int64)
    if int(repeat.max()) == 1:
        rows = first
    else:  # requests of several rows: each row's position within its request
        within = np.arange(int(repeat.sum())) - np.repeat(np.cumsum(repeat) - repeat, repeat)
        rows = np.repeat(first, repeat) + within
    if len(rows) == int(sizes.sum()) and bool((rows == np.arange(len(rows))).all()):
        return batches, None
    return batches, rows


def _gather(arrays: list[np.ndarray], rows: np.ndarray | None) -> np.ndarray:
    """Rows ``rows`` (all when None) of the arrays stacked end to end."""
    joined = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    if rows is None:
        return joined
    gathered: np.ndarray = joined[rows]
    return gathered


def _feature_columns(
    predictor: Predictor, batches: list[Prediction], rows: np.ndarray | None
) -> dict[str, pa.Array]:
    columns: dict[str, pa.Array] = {}
    inputs = [batch.inputs for batch in batches]
    if predictor.layout == "numeric":
        # Stacked feature-major, batch by batch (each small block transposes in cache), so
        # that every column is contiguous and Arrow takes it without a copy of its own.
        block = np.concatenate([np.asarray(part).T for part in inputs], axis=1)
        if rows is not None:
            block = block[:, rows]
        missing = np.isnan(block).any(axis=1).tolist()
        for index, feature in enumerate(predictor.features):
            values = block[index]
            nulls = np.isnan(values) if missing[index] else None
            if feature.kind == "integer":
                whole = values if nulls is None else np.where(nulls, 0, values)
                columns[feature.name] = pa.array(
                    whole.astype(np.int64), pa.int64(), mask=nulls, memory_pool=_POOL
                )
            else:
                columns[feature.name] = pa.array(
                    values, pa.float64(), mask=nulls, memory_pool=_POOL
                )
        return columns
    for feature in predictor.features:
        values = _gather([_column(part, feature.name) for part in inputs], rows)
        arrow_type = _ARROW_TYPES[feature.kind]
        data: Any = values.tolist() if values.dtype == object else values
        columns[feature.name] = pa.array(data, arrow_type, from_pandas=True, memory_pool=_POOL)
    return columns


def _column(inputs: Any, name: str) -> np.ndarray:
    """One feature of a mixed batch (a DataFrame, or a dict of arrays) as a numpy array."""
    column = inputs[name]
    return column if isinstance(column, np.ndarray) else column.to_numpy()
