"""Request and prediction logging to Parquet partitions, for monitoring.

Layout (append-only; one file per flush per partition, written under a temporary name and
renamed, so a reader never sees half a file)::

    {root}/model={name}/version={v}/hour=YYYYMMDDHH/part-{unique}.parquet

Columns: ``request_id`` (string), ``ts`` (timestamp, UTC, arrival at the batcher), ``model``
(string), ``version`` (int64), one column per input feature typed as the signature,
``prediction``, ``proba_<class>`` per class (classifiers), ``latency_ms`` (float64, arrival
to prediction), ``status`` (int32, 200: every logged request was answered), ``rss_mb``
(float64, the server process's resident memory when the rows were turned into a table;
absent where ``/proc`` is not available). A request of N rows gives N log rows with one id.
Columns are required (Parquet's ``REQUIRED``, no definition levels) but for the features
the schema declares nullable.

The batcher hands every answered batch to :meth:`RequestLog.record_batch` on the event loop,
with its requests (their ids are the batcher's tags) in order: one call a batch, not one a
request. The batch's rows are copied once into its model version's store (row-major arrays
that grow by doubling, one contiguous copy a batch; the batch's label array is kept), and
each logged request adds its fields to compact buffers (ids as UTF-8 text, times as
doubles), so no Python object is held per request or row and the batch is let go at once.
The event loop hands its buffers over every :data:`SEAL_INTERVAL_S` (:meth:`RequestLog.seal`,
a swap), so recording takes no lock. Every ``flush_interval_s`` a background thread turns
what was handed over into Arrow tables (each store block transposed once, straight into
contiguous columns; one gather first unless every row is logged in order) and writes one file
per model version and hour, in Parquet without the GIL. When the buffer is full the rows are
dropped and counted; a failed copy, conversion or write is counted and never reaches a request.
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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from readyml.predict import Prediction, Predictor
from readyml.serve.batching import Queued

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
# Columns with min/max statistics: the ones readers filter on (monitoring windows by ``ts``,
# label joins by ``request_id``). On every feature they cost a fifth of the write.
STATISTICS_COLUMNS = ["request_id", "ts", "model", "version", "prediction", "latency_ms", "status"]
SEAL_INTERVAL_S = 0.05  # how often the server's event loop hands recorded rows to the writer
NEWLINE = ord("\n")  # ends each logged id: ids are printable (the server's, or a caller's
# checked X-Request-Id), so none holds one
MIN_STORE_ROWS = 256  # rows a version's first buffers have room for
TRANSPOSE_ROWS = 2048  # rows transposed at a time: a few hundred KB, held in a core's cache
CONVERT_REQUESTS = 8192  # requests turned into one Arrow table at a time
# The C library's allocator for the log's Arrow buffers. With pyarrow's default (mimalloc)
# the writer thread spent 1.3-2 times the CPU per row inside a loaded server, though both
# cost the same in isolation: perhaps pages given back between flushes; measured, not explained.
_POOL = pa.system_memory_pool()
# Feature-major buffers kept from one write for the next: at most this many bytes, so that a
# model with thousands of features keeps nothing between writes rather than hundreds of MB.
SCRATCH_BYTES = 32 << 20


class _Scratch:
    """Feature-major buffers the writer transposes into, reused from one write to the next.

    A fresh buffer of a few MB a table cost the transpose two to four times its time in
    first-touch page faults and cold memory (measured); a reused one is written in place.
    The writer thread's alone: buffers lent for a write's tables are given back once the
    write is done, when no Arrow array points into them any more.
    """

    def __init__(self) -> None:
        self.free: list[np.ndarray] = []
        self.lent: list[np.ndarray] = []

    def take(self, columns: int, rows: int) -> np.ndarray:
        """A C-ordered ``columns`` x ``rows`` array (a view of a kept buffer when one fits)."""
        for index, buffer in enumerate(self.free):
            if buffer.shape[0] == columns and buffer.shape[1] >= rows:
                del self.free[index]
                self.lent.append(buffer)
                return buffer[:, :rows]
        buffer = np.empty((columns, 1 << max(10, (rows - 1).bit_length())))
        self.lent.append(buffer)
        return buffer[:, :rows]

    def give_back(self) -> None:
        """Keep the lent buffers for the next write, the largest first, within
        :data:`SCRATCH_BYTES`."""
        kept: list[np.ndarray] = []
        room = SCRATCH_BYTES
        for buffer in sorted(self.lent + self.free, key=lambda buffer: -buffer.nbytes):
            if buffer.nbytes <= room:
                kept.append(buffer)
                room -= buffer.nbytes
        self.free, self.lent = kept, []


class _Store:
    """The rows of the batches one version's requests were answered in, copied once a batch.

    Numeric features and probabilities go into row-major arrays that double as they fill:
    a batch is one contiguous copy on the event loop, and the writer transposes a whole
    table's rows at once (~0.02 us a row), where a transposing copy a batch cost the event
    loop three times as much. Labels are kept as each batch's array, not as a string a row.
    A mixed batch's frame is kept by reference, with the rows kept. The batch itself is let
    go as soon as its answers are sent: holding thousands of batches until a conversion cost
    the server more than the copy.
    """

    __slots__ = ("capacity", "features", "frames", "labels", "mixed", "proba", "rows")

    def __init__(self, predictor: Predictor, capacity: int) -> None:
        self.rows = 0
        self.capacity = capacity
        self.mixed = predictor.layout == "mixed"
        self.features = (
            np.empty((capacity, len(predictor.features))) if predictor.layout == "numeric" else None
        )
        self.proba = (
            np.empty((capacity, len(predictor.classes)))
            if predictor.has_proba and predictor.classes is not None
            else None
        )
        self.labels: list[np.ndarray] = []  # each batch's labels: one array, no object a row
        self.frames: list[tuple[Any, int, int]] = []  # (inputs, start, stop) of mixed batches

    def add(self, prediction: Prediction, start: int, stop: int) -> int:
        """Copy rows ``start:stop`` of a batch; return where they begin in the store."""
        base = self.rows
        end = base + stop - start
        if end > self.capacity:
            self._grow(end)
        whole = start == 0 and stop == prediction.rows
        if self.features is not None:
            inputs = prediction.inputs
            if type(inputs) is not np.ndarray:
                inputs = np.asarray(inputs)
            self.features[base:end] = inputs if whole else inputs[start:stop]
        elif self.mixed:
            self.frames.append((prediction.inputs, start, stop))
        if self.proba is not None:
            proba = prediction.proba
            if proba is None:
                self.proba[base:end] = np.nan
            else:
                self.proba[base:end] = proba if whole else proba[start:stop]
        labels = prediction.labels
        self.labels.append(labels if whole else labels[start:stop])
        self.rows = end
        return base

    def _grow(self, needed: int) -> None:
        """Make room for ``needed`` rows: at least twice the capacity, the rows kept."""
        self.capacity = max(needed, 2 * self.capacity)
        for name in ("features", "proba"):
            old = getattr(self, name)
            if old is not None:
                grown = np.empty((self.capacity, old.shape[1]))
                grown[: self.rows] = old[: self.rows]
                setattr(self, name, grown)


class _Pending:
    """What one model version recorded since the last seal: the rows of its batches, and
    its requests field by field, grouped in runs of consecutive rows in the store.

    A batch whose requests are all logged is one run; with sampling, each logged request is
    a run of its own. No Python object is kept per request: ids go into one UTF-8 buffer, a
    newline after each, and times into arrays of doubles. Holding each request's id string
    and arrival float until a conversion cost the server ~2.5 % more CPU a request than
    letting them go when answered (measured; most likely the allocator handing out fresh,
    cold memory while they were held).
    """

    __slots__ = (
        "arrived_s",
        "counts",
        "ids",
        "predictor",
        "run_base",
        "run_finished_s",
        "run_requests",
        "run_to_wall_s",
        "store",
    )

    def __init__(self, predictor: Predictor, capacity: int) -> None:
        self.predictor = predictor
        self.store = _Store(predictor, capacity)
        self.ids = bytearray()  # each request's id in UTF-8, then a newline
        self.counts: list[int] = []  # rows of each request (small ints: shared objects)
        self.arrived_s = array("d")  # monotonic
        self.run_base = array("q")  # the run's first row in the store
        self.run_requests = array("q")
        self.run_finished_s = array("d")  # monotonic
        self.run_to_wall_s = array("d")  # wall clock minus monotonic clock at that time

    @property
    def requests(self) -> int:
        return len(self.counts)

    def add_run(
        self,
        base: int,
        ids: bytes,
        counts: list[int],
        arrived_s: list[float],
        finished_s: float,
        to_wall_s: float,
    ) -> None:
        """Requests whose rows follow one another in the store from ``base``; ``ids`` is
        their ids joined by newlines."""
        self.ids += ids
        self.ids.append(NEWLINE)
        self.counts.extend(counts)
        self.arrived_s.extend(arrived_s)
        self.run_base.append(base)
        self.run_requests.append(len(counts))
        self.run_finished_s.append(finished_s)
        self.run_to_wall_s.append(to_wall_s)


class RequestLog:
    """Sampled, bounded, background request logging.

    :meth:`record_batch` and :meth:`seal` are called from one thread (the server's event loop);
    the writer thread started by :meth:`start` converts what was sealed and writes it every
    ``flush_interval_s``. Recording takes no lock: the writer never touches the buffers being
    appended to until a seal hands them over.

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
        self._capacity: dict[Predictor, int] = {}  # rows of each version's last buffers
        self._sealed: list[_Pending] = []
        # Rows held are recorded minus taken (written or failed): the recording thread counts
        # the first, the writer (under the write lock) the second, so neither loses an update.
        self._recorded_rows = 0
        self._taken_rows = 0
        self._lock = threading.Lock()  # the handover of sealed buffers
        self._write_lock = threading.Lock()  # one conversion or write at a time
        self._scratch = _Scratch()  # under the write lock
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.written_rows = 0
        self.dropped_rows = 0
        # Failed rows, counted apart by the thread that failed them (one writer each).
        self._failed_rows = {"record": 0, "writer": 0}
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

    def record_batch(
        self,
        predictor: Predictor,
        prediction: Prediction,
        requests: list[Queued[Any, Any]],
        finished_s: float,
    ) -> None:
        """Buffer the sampled requests of one answered batch, if there is room; never raises.

        The requests' rows are consecutive in ``prediction``, in order. A request's tag is
        its id; one without (``None`` or empty: a shadow copy, a caller gone) is not logged.
        Arrivals and ``finished_s`` are monotonic seconds; the latency logged is arrival to
        prediction.
        """
        to_wall_s = time.time() - finished_s
        ids = [request.tag for request in requests]
        rows = prediction.rows
        # A request has at least one row, so as many requests as rows is a row each.
        one_each = len(ids) == rows
        counts = [1] * rows if one_each else [request.rows for request in requests]
        if (
            self.sample_rate >= 1.0
            and all(ids)  # no request without an id (twice as fast as `None not in ids`)
            and (one_each or sum(counts) == rows)
            and self._recorded_rows - self._taken_rows + rows <= self.buffer_rows
        ):  # the usual case: the whole batch, one copy and one run
            pending = self._pending_for(predictor)
            try:
                joined_ids = "\n".join(ids).encode()
                base = pending.store.add(prediction, 0, rows)
            except Exception as exc:  # logging must never fail a request
                self._fail(predictor.name, rows, "copy", exc, taken=False)
                return
            self._recorded_rows += rows
            arrived_s = [request.arrived_s for request in requests]
            pending.add_run(base, joined_ids, counts, arrived_s, finished_s, to_wall_s)
            return
        start = 0
        for request in requests:
            self._record_one(predictor, prediction, request, start, finished_s, to_wall_s)
            start += request.rows

    def _record_one(
        self,
        predictor: Predictor,
        prediction: Prediction,
        request: Queued[Any, Any],
        start: int,
        finished_s: float,
        to_wall_s: float,
    ) -> None:
        """Buffer one request of a batch (rows from ``start``) if tagged, sampled and room."""
        rows = request.rows
        if not request.tag or (self.sample_rate < 1.0 and random.random() >= self.sample_rate):
            return
        if self._recorded_rows - self._taken_rows + rows > self.buffer_rows:
            self.dropped_rows += rows
            self._outcome(predictor.name, "dropped", rows)
            return
        pending = self._pending_for(predictor)
        try:
            joined_ids = request.tag.encode()
            base = pending.store.add(prediction, start, start + rows)
        except Exception as exc:  # logging must never fail a request
            self._fail(predictor.name, rows, "copy", exc, taken=False)
            return
        self._recorded_rows += rows
        pending.add_run(base, joined_ids, [rows], [request.arrived_s], finished_s, to_wall_s)

    def _pending_for(self, predictor: Predictor) -> _Pending:
        pending = self._pending.get(predictor)
        if pending is None:
            capacity = self._capacity.get(predictor, MIN_STORE_ROWS)
            pending = self._pending[predictor] = _Pending(predictor, capacity)
        return pending

    def seal(self) -> None:
        """Hand what was recorded so far to the writer; call from the recording thread."""
        if self._pending:
            pending, self._pending = self._pending, {}
            # The next buffers start as large as these grew: no doubling in the steady state.
            self._capacity = {
                predictor: max(MIN_STORE_ROWS, part.store.rows)
                for predictor, part in pending.items()
            }
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
            try:
                tables = self._convert_sealed()
                started_s = time.thread_time()
                written = 0
                for (predictor, hour_index), parts in tables.items():
                    written += self._write(predictor, hour_index, parts)
                self.cpu_s += time.thread_time() - started_s
            finally:
                tables = {}  # the tables point into the scratch buffers: let them go first
                self._scratch.give_back()
            return written

    def _convert_sealed(self) -> dict[tuple[Predictor, int], list[pa.Table]]:
        """What was sealed as Arrow tables, by model version and hour."""
        with self._lock:
            sealed, self._sealed = self._sealed, []
        tables: dict[tuple[Predictor, int], list[pa.Table]] = {}
        if not sealed:
            return tables
        started_s = time.thread_time()
        rss_mb = process_rss_mb()  # one sample per conversion: enough for a leak's slope
        for predictor, run in _runs(sealed):
            try:
                hours = _hours(_columns_of(run))
            except Exception as exc:  # logging must never take the server down
                self._fail(predictor.name, sum(sum(part.counts) for part in run), "conversion", exc)
                continue
            for hour_index, columns in hours:
                try:
                    table = _table_of(predictor, columns, rss_mb, self._scratch)
                except Exception as exc:
                    self._fail(predictor.name, int(columns.counts.sum()), "conversion", exc)
                    continue
                tables.setdefault((predictor, hour_index), []).append(table)
        self.cpu_s += time.thread_time() - started_s
        return tables

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
                write_statistics=STATISTICS_COLUMNS,
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

    @property
    def failed_rows(self) -> int:
        """Rows that could not be copied, converted or written."""
        return sum(self._failed_rows.values())

    def _fail(
        self, model: str, rows: int, step: str, exc: Exception, *, taken: bool = True
    ) -> None:
        if taken:  # buffered rows: the writer's; they make room again
            self._failed_rows["writer"] += rows
            self._taken_rows += rows
        else:
            self._failed_rows["record"] += rows
        self._outcome(model, "failed", rows)
        with contextlib.suppress(OSError, ValueError):
            print(f"readyml: request log {step} failed: {exc}", file=sys.stderr)

    def _outcome(self, model: str, outcome: str, rows: int) -> None:
        if self.on_outcome is not None:
            with contextlib.suppress(Exception):
                self.on_outcome(model, outcome, rows)

    def _run(self) -> None:
        while not self._stopping:
            # Sealed buffers wait for the write, then are converted and written in one go: with
            # no Python object held a request, converting every 0.25 s as well cost the server
            # ~2 % more CPU a request (each conversion's fixed cost, in a cold cache).
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self.write_sealed()
        self.write_sealed()


def process_rss_mb() -> float | None:
    """This process's resident memory in MB (Linux ``/proc``); ``None`` elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            resident_pages = int(handle.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class _Joined(NamedTuple):
    """The stores of one run of buffers, end to end."""

    rows: int
    features: list[np.ndarray] | None  # row-major blocks, one a store
    proba: list[np.ndarray] | None  # row-major blocks, one a store
    labels: np.ndarray
    frames: list[tuple[Any, int, int]]


class _Columns(NamedTuple):
    """Requests of one partition, field by field, and the rows they point into."""

    joined: _Joined
    positions: np.ndarray
    counts: np.ndarray
    request_ids: pa.Array
    ts_s: np.ndarray
    latency_ms: np.ndarray

    def take(self, mask: np.ndarray) -> _Columns:
        """The requests where ``mask`` is true."""
        return _Columns(
            self.joined,
            self.positions[mask],
            self.counts[mask],
            self.request_ids.filter(pa.array(mask)),
            self.ts_s[mask],
            self.latency_ms[mask],
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
        if sum(part.requests for part in run) >= CONVERT_REQUESTS:
            runs.append((pending.predictor, open_runs.pop(pending.predictor)))
    runs.extend(open_runs.items())
    return runs


def _columns_of(parts: list[_Pending]) -> _Columns:
    """Sealed buffers of one model version joined: each request's position in the joined
    store, arrival on the wall clock and latency, computed from its run."""

    def joined(field: str, dtype: Any) -> np.ndarray:
        arrays = [np.frombuffer(getattr(part, field), dtype) for part in parts]
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    def blocks(field: str) -> list[np.ndarray] | None:
        arrays = [getattr(part.store, field) for part in parts]
        if arrays[0] is None:
            return None
        return [array[: part.store.rows] for array, part in zip(arrays, parts, strict=True)]

    sizes = np.array([part.store.rows for part in parts], dtype=np.int64)
    run_base = joined("run_base", np.int64)
    if len(parts) > 1:  # each buffer's runs, shifted past the stores before it
        runs = [len(part.run_base) for part in parts]
        run_base = run_base + np.repeat(np.cumsum(sizes) - sizes, runs)
    run_requests = joined("run_requests", np.int64)
    counts = np.fromiter(chain.from_iterable(part.counts for part in parts), np.int64)
    # Each request's first row: its run's base plus the rows of the run's requests before it.
    starts = np.cumsum(counts) - counts
    run_first = np.cumsum(run_requests) - run_requests
    positions = np.repeat(run_base - starts[run_first], run_requests) + starts
    arrived_s = joined("arrived_s", np.float64)
    finished_s = np.repeat(joined("run_finished_s", np.float64), run_requests)
    to_wall_s = np.repeat(joined("run_to_wall_s", np.float64), run_requests)
    store = _Joined(
        int(sizes.sum()),
        blocks("features"),
        blocks("proba"),
        _labels_of(parts),
        list(chain.from_iterable(part.store.frames for part in parts)),
    )
    return _Columns(
        store,
        positions,
        counts,
        _id_array(b"".join(part.ids for part in parts), len(counts)),
        arrived_s + to_wall_s,
        (finished_s - arrived_s) * 1000,
    )


def _labels_of(parts: list[_Pending]) -> np.ndarray:
    """The labels of every batch in the stores, end to end (numpy promotes their types)."""
    blocks = [block for part in parts for block in part.store.labels]
    return np.concatenate(blocks) if blocks else np.array([])


def _id_array(data: bytes, requests: int) -> pa.Array:
    """The ids of ``requests`` requests from their UTF-8 text, a newline after each."""
    if not requests:
        return pa.array([], pa.string())
    ids = pc.split_pattern(pa.array([data[:-1]], pa.string()), "\n", memory_pool=_POOL)
    flat = ids.flatten()
    if len(flat) != requests:
        raise ValueError(f"expected {requests} request ids, found {len(flat)} (one has a newline)")
    return flat


def _hours(columns: _Columns) -> list[tuple[int, _Columns]]:
    """Requests split by the hour they arrived in (hours since the epoch).

    Usually every request of a flush is of one hour, checked without a loop in Python.
    """
    if not len(columns.counts):
        return []
    hours = (columns.ts_s // 3600).astype(np.int64)
    first, last = int(hours.min()), int(hours.max())
    if first == last:
        return [(first, columns)]
    return [(hour, columns.take(hours == hour)) for hour in np.unique(hours).tolist()]


def _table_of(
    predictor: Predictor, entries: _Columns, rss_mb: float | None, scratch: _Scratch
) -> pa.Table:
    """The Arrow table of one partition's requests.

    Each block of the joined store is gathered once, or not at all when the requests are
    every row of their batches in order (the usual case), and transposed once, so that each
    column is a contiguous array Arrow takes without a copy: a few array operations per
    table, not per request.
    """
    repeat = entries.counts
    one_row_each = int(repeat.max()) == 1
    rows = _rows(entries.positions, repeat, one_row_each, entries.joined.rows)
    total = len(repeat) if one_row_each else int(repeat.sum())

    def per_row(values: np.ndarray) -> np.ndarray:
        return values if one_row_each else np.repeat(values, repeat)

    ids = entries.request_ids
    if not one_row_each:
        ids = ids.take(pa.array(np.repeat(np.arange(len(repeat)), repeat)))
    columns: dict[str, pa.Array] = {
        "request_id": ids,
        "ts": pa.array(
            (per_row(entries.ts_s) * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC")
        ),
        "model": pa.repeat(pa.scalar(predictor.name, pa.string()), total, memory_pool=_POOL),
        "version": pa.array(np.full(total, predictor.version, dtype=np.int64)),
    }
    joined = entries.joined
    if joined.features is not None:
        columns.update(_numeric_columns(predictor, _feature_major(joined.features, rows, scratch)))
    elif predictor.layout == "mixed":
        columns.update(_mixed_columns(predictor, joined.frames, rows))
    labels = pa.array(
        joined.labels if joined.labels.ndim == 1 else joined.labels.tolist(), memory_pool=_POOL
    )
    columns["prediction"] = labels if rows is None else labels.take(rows)
    if joined.proba is not None and predictor.classes is not None:
        proba = _feature_major(joined.proba, rows, scratch)
        for index, label in enumerate(predictor.classes.tolist()):
            columns[f"proba_{label}"] = pa.array(proba[index], pa.float64())
    columns["latency_ms"] = pa.array(per_row(entries.latency_ms), pa.float64())
    columns["status"] = pa.array(np.full(total, 200, dtype=np.int32))  # answered requests
    if rss_mb is not None:
        columns["rss_mb"] = pa.array(np.full(total, rss_mb), pa.float64())
    return _required_where_possible(predictor, columns)


def _required_where_possible(predictor: Predictor, columns: dict[str, pa.Array]) -> pa.Table:
    """The table, every column without nulls marked required but the nullable features.

    A required column has no definition levels to encode: a fifth of the Parquet write for
    numeric features (measured). A nullable feature stays optional in every file, so a
    version's files share one schema; a column that turns out to hold nulls anyway is
    written optional rather than refused.
    """
    optional = {feature.name for feature in predictor.features if feature.nullable}
    fields = [
        pa.field(name, array.type, nullable=name in optional or array.null_count > 0)
        for name, array in columns.items()
    ]
    return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields))


def _feature_major(
    blocks: list[np.ndarray], rows: np.ndarray | None, scratch: _Scratch
) -> np.ndarray:
    """The logged rows of row-major ``blocks`` (end to end), one contiguous row a column.

    With every row in order, each block is transposed straight into its place: one pass,
    block by block while it is in cache, where joining first and then transposing the whole
    copied every value twice and read it column by column from memory.
    """
    if rows is not None:
        joined = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        return np.ascontiguousarray(joined[rows].T)
    out = scratch.take(blocks[0].shape[1], sum(len(block) for block in blocks))
    start = 0
    for block in blocks:
        for first in range(0, len(block), TRANSPOSE_ROWS):
            part = block[first : first + TRANSPOSE_ROWS]
            out[:, start : start + len(part)] = part.T
            start += len(part)
    return out


def _rows(
    positions: np.ndarray, repeat: np.ndarray, one_row_each: bool, stored: int
) -> np.ndarray | None:
    """Each logged row's index in the joined store; ``None`` when it is every row in order."""
    if one_row_each:
        rows = positions
    else:  # requests of several rows: each row's position within its request
        within = np.arange(int(repeat.sum())) - np.repeat(np.cumsum(repeat) - repeat, repeat)
        rows = np.repeat(positions, repeat) + within
    if len(rows) == stored and bool((rows == np.arange(stored)).all()):
        return None
    return rows


def _numeric_columns(predictor: Predictor, block: np.ndarray) -> dict[str, pa.Array]:
    """One Arrow column per feature from a feature-major block (no copy without nulls)."""
    columns: dict[str, pa.Array] = {}
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
            columns[feature.name] = pa.array(values, pa.float64(), mask=nulls, memory_pool=_POOL)
    return columns


def _mixed_columns(
    predictor: Predictor, frames: list[tuple[Any, int, int]], rows: np.ndarray | None
) -> dict[str, pa.Array]:
    """One Arrow column per feature, typed as the signature, from the batches' frames."""
    columns: dict[str, pa.Array] = {}
    for feature in predictor.features:
        parts = [_column(frame, feature.name)[start:stop] for frame, start, stop in frames]
        values = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if rows is not None:
            values = values[rows]
        data: Any = values.tolist() if values.dtype == object else values
        arrow_type = _ARROW_TYPES[feature.kind]
        columns[feature.name] = pa.array(data, arrow_type, from_pandas=True, memory_pool=_POOL)
    return columns


def _column(inputs: Any, name: str) -> np.ndarray:
    """One feature of a mixed batch (a DataFrame, or a dict of arrays) as a numpy array."""
    column = inputs[name]
    return column if isinstance(column, np.ndarray) else column.to_numpy()
