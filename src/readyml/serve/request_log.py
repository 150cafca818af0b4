"""Request and prediction logging to Parquet partitions, for monitoring.

Layout (append-only; one file per flush per partition, written under a temporary name and
renamed, so a reader never sees half a file)::

    {root}/model={name}/version={v}/hour=YYYYMMDDHH/part-{unique}.parquet

Columns: ``request_id`` (string), ``ts`` (timestamp, UTC, arrival), ``model`` (string),
``version`` (int64), one column per input feature typed as the signature, ``prediction``,
``proba_<class>`` per class (classifiers), ``latency_ms`` (float64, arrival to prediction),
``status`` (int32, the HTTP status), ``rss_mb`` (float64, the server process's resident memory
when the rows were turned into a table; absent where ``/proc`` is not available). A request
of N rows gives N log rows with one id.

Recording is a sampled append of a request's fields to its model version's buffer: one
growing array per field (``array.array`` for numbers, a list for ids and batches), so no
object is made per request and a conversion reads a few contiguous arrays, not thousands of
scattered objects gone cold in the cache. The request's inputs are not copied: the buffer
keeps the batch it was answered in, and the conversion gathers each logged row's features from
the batches' arrays. The server's event loop, the only thread that records, hands its
buffers over every :data:`SEAL_INTERVAL_S` (:meth:`RequestLog.seal`, a swap), so recording
takes no lock. A background thread turns what was handed over into Arrow tables every
:data:`CONVERT_INTERVAL_S`, which lets the batches go, and every ``flush_interval_s`` writes
one file per model version and hour: a few dozen array operations per table, the write in
Parquet without the GIL. When the buffer is full the rows are dropped and counted; a failed
conversion or write is counted and never reaches a request.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import threading
import time
import uuid
from array import array
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import chain
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
SEAL_INTERVAL_S = 0.05  # how often the server's event loop hands recorded rows to the writer
CONVERT_REQUESTS = 8192  # requests turned into one Arrow table at a time
# How often the writer thread turns sealed buffers into tables between writes. Holding the
# batches for a whole flush interval (2 s) cost the server ~2 us more CPU a request at c64
# than letting them go every 0.25 s; every 0.1 s cost ~1 us more (smaller tables). Measured;
# the memory held is the likely cause, not shown.
CONVERT_INTERVAL_S = 0.25
# The C library's allocator for the log's Arrow buffers. With pyarrow's default (mimalloc)
# the writer thread spent 1.3-2 times the CPU per row inside a loaded server, though both
# cost the same in isolation: perhaps pages given back between flushes; measured, not explained.
_POOL = pa.system_memory_pool()


class _Pending:
    """The requests of one model version recorded since the last seal, one array per field."""

    __slots__ = (
        "counts",
        "latency_ms",
        "offsets",
        "predictions",
        "predictor",
        "request_ids",
        "status",
        "ts_s",
    )

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.predictions: list[Prediction] = []
        self.offsets = array("q")
        self.counts = array("q")
        self.request_ids: list[str] = []
        self.ts_s = array("d")
        self.latency_ms = array("d")
        self.status = array("i")


class RequestLog:
    """Sampled, bounded, background request logging.

    :meth:`record` and :meth:`seal` are called from one thread (the server's event loop);
    the writer thread started by :meth:`start` converts what was sealed every
    :data:`CONVERT_INTERVAL_S` and writes it every ``flush_interval_s``. Recording takes no
    lock: the writer never touches the buffers being appended to until a seal hands them over.

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
        self._pending: dict[Predictor, _Pending] = {}  # the recording thread's alone
        self._sealed: list[_Pending] = []
        # Rows held are recorded minus taken (written or failed): the recording thread counts
        # the first, the writer (under the write lock) the second, so neither loses an update.
        self._recorded_rows = 0
        self._taken_rows = 0
        self._tables: dict[tuple[Predictor, int], list[pa.Table]] = {}  # converted, unwritten
        self._lock = threading.Lock()  # the handover of sealed buffers
        self._write_lock = threading.Lock()  # one conversion or write at a time
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.written_rows = 0
        self.dropped_rows = 0
        self.failed_rows = 0
        # CPU seconds of conversions and writes: the log's whole cost beyond the appends.
        self.cpu_s = 0.0

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="readyml-request-log", daemon=True
            )
            self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Seal what was recorded, write it and stop the writer thread.

        Call once nothing records any more: it seals from the calling thread.
        """
        self.seal()
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def record(
        self,
        predictor: Predictor,
        prediction: Prediction,
        offset: int,
        rows: int,
        request_id: str,
        ts_s: float,
        latency_ms: float,
        status: int,
    ) -> None:
        """Buffer one request's rows if sampled and if there is room; never raises.

        The request's rows are rows ``offset:offset + rows`` of ``prediction``, the batch
        it was answered in; ``ts_s`` is its arrival (seconds since the epoch).
        """
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            return
        if self._recorded_rows - self._taken_rows + rows > self.buffer_rows:
            self.dropped_rows += rows
            self._outcome(predictor.name, "dropped", rows)
            return
        self._recorded_rows += rows
        pending = self._pending.get(predictor)
        if pending is None:
            pending = self._pending[predictor] = _Pending(predictor)
        pending.predictions.append(prediction)
        pending.offsets.append(offset)
        pending.counts.append(rows)
        pending.request_ids.append(request_id)
        pending.ts_s.append(ts_s)
        pending.latency_ms.append(latency_ms)
        pending.status.append(status)

    def seal(self) -> None:
        """Hand what was recorded so far to the writer; call from the recording thread."""
        if self._pending:
            pending, self._pending = self._pending, {}
            with self._lock:
                self._sealed.extend(pending.values())

    def flush(self) -> int:
        """Seal and write what was recorded (from the recording thread); return rows written."""
        self.seal()
        return self.write_sealed()

    def write_sealed(self) -> int:
        """Convert what was sealed, then write every table held (the writer thread calls this,
        every ``flush_interval_s``); return rows written."""
        with self._write_lock:
            self._convert_sealed()
            tables, self._tables = self._tables, {}
            started_s = time.thread_time()
            written = 0
            for (predictor, hour_index), parts in tables.items():
                written += self._write(predictor, hour_index, parts)
            self.cpu_s += time.thread_time() - started_s
            return written

    def convert_sealed(self) -> None:
        """Turn what was sealed into Arrow tables, to be written at the next write."""
        with self._write_lock:
            self._convert_sealed()

    def _convert_sealed(self) -> None:
        with self._lock:
            sealed, self._sealed = self._sealed, []
        if not sealed:
            return
        started_s = time.thread_time()
        rss_mb = process_rss_mb()  # one sample per conversion: enough for a leak's slope
        for predictor, run in _runs(sealed):
            for hour_index, columns in _hours(_columns_of(run)):
                try:
                    table = _table_of(predictor, columns, rss_mb)
                except Exception as exc:  # logging must never take the server down
                    self._fail(predictor.name, int(columns.counts.sum()), "conversion", exc)
                    continue
                self._tables.setdefault((predictor, hour_index), []).append(table)
        self.cpu_s += time.thread_time() - started_s

    def _write(self, predictor: Predictor, hour_index: int, parts: list[pa.Table]) -> int:
        """Write one partition's tables as one file; return the rows written."""
        name, rows = predictor.name, sum(int(part.num_rows) for part in parts)
        hour = datetime.fromtimestamp(hour_index * 3600, UTC).strftime("%Y%m%d%H")
        folder = self.root / f"model={name}" / f"version={predictor.version}" / f"hour={hour}"
        unique = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:12]}"
        temporary = folder / f".part-{unique}.parquet.tmp"
        try:
            table = pa.concat_tables(parts, promote_options="default", memory_pool=_POOL)
            folder.mkdir(parents=True, exist_ok=True)
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
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            self._fail(name, rows, "write", exc)
            return 0
        self.written_rows += rows
        self._taken_rows += rows
        self._outcome(name, "written", rows)
        return rows

    def _fail(self, model: str, rows: int, step: str, exc: Exception) -> None:
        self.failed_rows += rows
        self._taken_rows += rows
        self._outcome(model, "failed", rows)
        with contextlib.suppress(OSError, ValueError):
            print(f"readyml: request log {step} failed: {exc}", file=sys.stderr)

    def _outcome(self, model: str, outcome: str, rows: int) -> None:
        if self.on_outcome is not None:
            with contextlib.suppress(Exception):
                self.on_outcome(model, outcome, rows)

    def _run(self) -> None:
        write_at_s = time.monotonic() + self.flush_interval_s
        while not self._stopping:
            self._wake.wait(min(CONVERT_INTERVAL_S, self.flush_interval_s))
            self._wake.clear()
            if time.monotonic() >= write_at_s:
                self.write_sealed()
                write_at_s = time.monotonic() + self.flush_interval_s
            else:
                self.convert_sealed()
        self.write_sealed()


def process_rss_mb() -> float | None:
    """This process's resident memory in MB (Linux ``/proc``); ``None`` elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            resident_pages = int(handle.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class _Columns(NamedTuple):
    """Requests of one partition, field by field."""

    predictions: list[Prediction]
    offsets: np.ndarray
    counts: np.ndarray
    request_ids: list[str]
    ts_s: np.ndarray
    latency_ms: np.ndarray
    status: np.ndarray

    def take(self, mask: np.ndarray) -> _Columns:
        """The requests where ``mask`` is true."""
        chosen = np.flatnonzero(mask).tolist()
        return _Columns(
            [self.predictions[index] for index in chosen],
            self.offsets[mask],
            self.counts[mask],
            [self.request_ids[index] for index in chosen],
            self.ts_s[mask],
            self.latency_ms[mask],
            self.status[mask],
        )


def _runs(sealed: list[_Pending]) -> list[tuple[Predictor, list[_Pending]]]:
    """Sealed buffers by model version, in runs of about :data:`CONVERT_REQUESTS` requests.

    A run is converted in one piece: long enough for the fixed cost of a table to vanish,
    short enough that no single array operation holds the GIL from the event loop for long.
    """
    runs: list[tuple[Predictor, list[_Pending]]] = []
    open_runs: dict[Predictor, list[_Pending]] = {}
    for pending in sealed:
        run = open_runs.setdefault(pending.predictor, [])
        run.append(pending)
        if sum(len(part.offsets) for part in run) >= CONVERT_REQUESTS:
            runs.append((pending.predictor, open_runs.pop(pending.predictor)))
    runs.extend(open_runs.items())
    return runs


def _columns_of(parts: list[_Pending]) -> _Columns:
    """Sealed buffers of one model version joined, as numpy arrays (no copy for one)."""

    def joined(field: str, dtype: Any) -> np.ndarray:
        arrays = [np.frombuffer(getattr(part, field), dtype=dtype) for part in parts]
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    return _Columns(
        list(chain.from_iterable(part.predictions for part in parts)),
        joined("offsets", np.int64),
        joined("counts", np.int64),
        list(chain.from_iterable(part.request_ids for part in parts)),
        joined("ts_s", np.float64),
        joined("latency_ms", np.float64),
        joined("status", np.intc).astype(np.int32, copy=False),
    )


def _hours(columns: _Columns) -> list[tuple[int, _Columns]]:
    """Requests split by the hour they arrived in (hours since the epoch).

    Usually every request of a flush is of one hour, checked without a loop in Python.
    """
    if not columns.predictions:
        return []
    hours = (columns.ts_s // 3600).astype(np.int64)
    first, last = int(hours.min()), int(hours.max())
    if first == last:
        return [(first, columns)]
    return [(hour, columns.take(hours == hour)) for hour in np.unique(hours).tolist()]


def _table_of(predictor: Predictor, entries: _Columns, rss_mb: float | None) -> pa.Table:
    """The Arrow table of one partition's requests.

    Every logged row is located among the distinct batches its requests were answered in;
    each column is then one gather from the batches' arrays stacked end to end (or none,
    when the requests are every row of their batches in order, the usual case), so the cost
    is a few array operations per table, not per request.
    """
    repeat = entries.counts
    one_row_each = int(repeat.max()) == 1
    batches, rows = _locate(entries.predictions, entries.offsets, repeat)
    total = len(repeat) if one_row_each else int(repeat.sum())

    def per_row(values: np.ndarray) -> np.ndarray:
        return values if one_row_each else np.repeat(values, repeat)

    ids: Any = entries.request_ids
    if not one_row_each:
        ids = np.repeat(np.array(ids, dtype=object), repeat)
    columns: dict[str, pa.Array] = {
        "request_id": pa.array(ids, pa.string(), memory_pool=_POOL),
        "ts": pa.array(
            (per_row(entries.ts_s) * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC")
        ),
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
    columns["status"] = pa.array(per_row(entries.status), pa.int32())
    if rss_mb is not None:
        columns["rss_mb"] = pa.array(np.full(total, rss_mb), pa.float64())
    return pa.table(columns)


def _locate(
    predictions: list[Prediction], offsets: np.ndarray, repeat: np.ndarray
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
    first = starts[rank[which]] + offsets
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
