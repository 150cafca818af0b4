"""Adaptive batching: group concurrent requests into one model call, sized by load and a target.

Policy (learned from Triton's dynamic batcher, Clipper's AIMD and BentoML's dispatcher):

1. **Work-conserving dispatch.** One inference worker (a thread) per process. When it is idle
   and a request arrives, the dispatch runs at the end of the event loop's current pass, so the
   requests parsed in the same pass go together and a lone request waits for no timer
   (Triton's default ``max_queue_delay`` of 0). While the worker runs a batch, new
   requests queue; when it finishes, everything queued, up to the batch limit, becomes the next
   batch. Batch size therefore follows load by itself: about arrival rate × service time.
2. **AIMD batch limit** (Clipper). ``batch_limit_rows`` starts at ``max_batch_rows``. After
   each batch its service time is compared with ``batch_budget_s``, half the latency target
   (a request waits for at most the batch before it, then runs in its own): over budget, the
   limit is multiplied by ``backoff_factor``; under, it grows by ``additive_step_rows``. This
   keeps a slow model (a 200-tree ensemble, a CNN on CPU) inside the latency target.
3. **Optional wait** (``max_wait_s`` > 0; BentoML-style). When the worker is idle but the
   queue holds fewer rows than the limit, the dispatcher waits up to ``max_wait_s`` for more,
   but only while requests arrive faster than that (``arrival_gap_s``, an EWMA of the gap
   between arrivals, is below ``max_wait_s``), while requests overlap (some arrived while the
   last batch ran: a client that sends its next request only after the answer gains nothing
   from a wait), and while the oldest request still meets the target. On a CPU model this
   rarely helps, so the default is 0; on a GPU it fills batches.
4. **Early load shedding.** A request is refused with :class:`QueueFull` (503 + Retry-After)
   when the queue already holds ``max_queue_rows`` rows or when the predicted queueing delay
   exceeds ``max_queue_delay_s``. Accepted requests therefore see bounded latency under
   overload. A batch costs a fixed part plus a part per row (:class:`BatchCost`: a least-squares
   line through recent batches); the queue is predicted to run as batches of the current
   limit. One cost per row learnt from one-row batches, where a model's fixed cost dominates,
   overestimated a burst of large requests some fifty-fold and shed them needlessly.
5. **Failure isolation.** If a batch of several requests fails, each request is run again
   alone, so one bad input fails only its own request.

The batcher knows nothing of HTTP: parts in, results out, errors as exceptions on the futures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from readyml.errors import Overloaded

P = TypeVar("P")
R = TypeVar("R")

# Weight of the newest sample in the exponentially weighted moving averages.
EWMA_WEIGHT = 0.2
# Initial guess of the service time per row (s) before any batch ran; also the prior of the
# per-row cost while every batch seen had the same size (so it cannot be told from the fixed part).
INITIAL_ROW_TIME_S = 1e-4
# Weight of the newest batch in the batch cost's line (a memory of some 20 batches).
COST_WEIGHT = 0.05
# Strength of the per-row prior, in rows² of batch-size variance.
COST_PRIOR_ROWS2 = 1.0


class BatchCost:
    """Service time of a batch as ``overhead_s + rows × row_s``, fitted to recent batches.

    An exponentially weighted least-squares line, with a ridge prior pulling ``row_s``
    towards :data:`INITIAL_ROW_TIME_S` while batch sizes barely vary.

    >>> cost = BatchCost()
    >>> for rows, seconds in [(1, 0.010), (64, 0.0163), (1, 0.010), (256, 0.0356)] * 20:
    ...     cost.add(rows, seconds)
    >>> round(cost.overhead_s * 1000, 1), round(cost.row_s * 1e6)
    (9.9, 100)
    """

    def __init__(self) -> None:
        self.overhead_s = 0.0
        self.row_s = INITIAL_ROW_TIME_S
        self._weight = 0.0
        self._mean_rows = 0.0
        self._mean_s = 0.0
        self._var_rows = 0.0
        self._cov = 0.0

    def add(self, rows: int, service_s: float) -> None:
        """Take one batch's size and service time into the line."""
        self._weight = (1 - COST_WEIGHT) * self._weight + COST_WEIGHT
        w = COST_WEIGHT / self._weight  # the first batch counts fully
        d_rows, d_s = rows - self._mean_rows, service_s - self._mean_s
        self._mean_rows += w * d_rows
        self._mean_s += w * d_s
        self._var_rows = (1 - w) * (self._var_rows + w * d_rows * d_rows)
        self._cov = (1 - w) * (self._cov + w * d_rows * d_s)
        row_s = (self._cov + COST_PRIOR_ROWS2 * INITIAL_ROW_TIME_S) / (
            self._var_rows + COST_PRIOR_ROWS2
        )
        self.row_s = max(0.0, row_s)
        self.overhead_s = self._mean_s - self.row_s * self._mean_rows
        if self.overhead_s < 0.0:  # a line through the origin fits better than a negative cost
            self.overhead_s = 0.0
            self.row_s = self._mean_s / max(self._mean_rows, 1.0)

    def seconds(self, rows: int, batch_rows: int) -> float:
        """Time to run ``rows`` rows as batches of at most ``batch_rows``."""
        if rows <= 0:
            return 0.0
        return math.ceil(rows / max(batch_rows, 1)) * self.overhead_s + rows * self.row_s


class QueueFull(Overloaded):
    """The batch queue is full, or its predicted delay is too long; retry after a while."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class BatchStats:
    """What the batcher reports after each batch (for metrics)."""

    rows: int
    requests: int
    service_s: float
    queue_rows: int


@dataclass
class Queued(Generic[P, R]):
    """One request in the queue: its part, rows, future and arrival (the batcher's clock).

    ``tag`` is what the caller passed to :meth:`AdaptiveBatcher.submit` (a request id for
    the request log); the batcher sets it to ``None`` when nobody awaits the answer any more.
    """

    part: P
    rows: int
    future: asyncio.Future[tuple[R, int]]
    arrived_s: float
    tag: Any = None
    alone: bool = False


@dataclass
class _Batch(Generic[P, R]):
    items: list[Queued[P, R]] = field(default_factory=list)
    rows: int = 0


class AdaptiveBatcher(Generic[P, R]):
    """Queue request parts and run them in batches on one worker thread.

    ``run_batch(parts)`` runs in the executor and returns one result for the whole batch;
    each request awaits ``(result, offset)``, the batch result and where its rows start.

    Args:
        run_batch: Called with the parts of one batch, off the event loop.
        executor: Where ``run_batch`` runs; one thread keeps the model single-threaded.
        max_batch_rows: Upper bound of rows in one batch (1 turns batching off).
        max_wait_s: How long an idle worker may wait for a fuller batch (0: never).
        latency_target_s: The per-request latency the batch limit is tuned to.
        max_queue_rows: Queued rows beyond which requests are shed.
        max_queue_delay_s: Predicted queueing delay beyond which requests are shed.
        on_batch: Called on the event loop after every batch (metrics).
        on_result: Called on the event loop after every batch that succeeded, with its
            result, its requests in order (their rows are consecutive in the result) and
            the clock when it finished (the request log).
        clock: Monotonic clock in seconds (a seam for tests).

    Example:
        >>> import asyncio, concurrent.futures
        >>> pool = concurrent.futures.ThreadPoolExecutor(1)
        >>> batcher = AdaptiveBatcher(run_batch=lambda parts: sum(parts, []), executor=pool)
        >>> async def main():
        ...     result, offset = await batcher.submit([1, 2], rows=2)
        ...     return result[offset:offset + 2]
        >>> asyncio.run(main())
        [1, 2]
    """

    def __init__(
        self,
        *,
        run_batch: Callable[[list[P]], R],
        executor: concurrent.futures.Executor,
        max_batch_rows: int = 256,
        max_wait_s: float = 0.0,
        latency_target_s: float = 0.020,
        max_queue_rows: int = 2048,
        max_queue_delay_s: float = 1.0,
        on_batch: Callable[[BatchStats], None] | None = None,
        on_result: Callable[[R, list[Queued[P, R]], float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch_rows = max_batch_rows
        self.max_wait_s = max_wait_s
        self.latency_target_s = latency_target_s
        self.max_queue_rows = max_queue_rows
        self.max_queue_delay_s = max_queue_delay_s
        self.on_batch = on_batch
        self.on_result = on_result
        self.clock = clock
        # Control-loop state.
        self.additive_step_rows = max(1, max_batch_rows // 16)
        self.backoff_factor = 0.75
        self.batch_budget_s = latency_target_s / 2
        self.batch_limit_rows = float(max_batch_rows)
        self.cost = BatchCost()
        self.arrival_gap_s = math.inf
        self.queued_rows = 0
        self._last_arrival_s: float | None = None
        self._queue: deque[Queued[P, R]] = deque()
        self._busy = False
        self._wait_handle: asyncio.TimerHandle | None = None
        self._dispatch_scheduled = False
        self._arrived_while_busy = 0
        self._overlapping = False
        self.waits = 0
        self._closed = False

    # -- submitting ---------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether a batch is running."""
        return self._busy

    def predicted_delay_s(self, rows: int = 0) -> float:
        """Queueing delay a new request of ``rows`` rows is expected to see."""
        return self.cost.seconds(self.queued_rows + rows, int(self.batch_limit_rows))

    async def submit(self, part: P, *, rows: int, tag: Any = None) -> tuple[R, int]:
        """Queue ``part`` (``rows`` rows) and wait for its batch's result and offset.

        ``tag`` travels with the request to ``on_result``.

        Raises:
            QueueFull: The queue is full or too slow; the error carries ``retry_after_s``.
            Overloaded: The batcher is closed (the model is being unloaded).
        """
        if self._closed:
            raise Overloaded("the model is being unloaded; retry on the new version")
        now = self.clock()
        if self.queued_rows and (
            self.queued_rows + rows > self.max_queue_rows
            or self.predicted_delay_s(rows) > self.max_queue_delay_s
        ):
            delay = self.predicted_delay_s(rows)
            raise QueueFull(
                f"server overloaded: this request's {rows} row(s) would make "
                f"{self.queued_rows + rows} rows queued (limit {self.max_queue_rows}) and a "
                f"predicted wait of {delay * 1000:.0f} ms (limit "
                f"{self.max_queue_delay_s * 1000:.0f} ms); retry later",
                retry_after_s=max(1.0, delay),
            )
        if self._last_arrival_s is not None:
            gap_s = now - self._last_arrival_s
            self.arrival_gap_s = (
                gap_s
                if math.isinf(self.arrival_gap_s)
                else (1 - EWMA_WEIGHT) * self.arrival_gap_s + EWMA_WEIGHT * gap_s
            )
        self._last_arrival_s = now
        loop = asyncio.get_running_loop()
        pending: Queued[P, R] = Queued(part, rows, loop.create_future(), now, tag)
        self._queue.append(pending)
        self.queued_rows += rows
        if self._busy:
            self._arrived_while_busy += 1
        if self._wait_handle is not None and self.queued_rows >= self.batch_limit_rows:
            self._wait_handle.cancel()
            self._wait_handle = None
        if not self._busy and self._wait_handle is None:
            self._schedule_dispatch(loop)
        return await pending.future

    def _schedule_dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Dispatch once the requests already handed to this loop pass have queued too.

        A burst becomes one batch, and a lone request waits for no timer.
        """
        if not self._dispatch_scheduled:
            self._dispatch_scheduled = True
            loop.call_soon(self._scheduled_dispatch, loop)

    def _scheduled_dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._dispatch_scheduled = False
        if not self._busy and self._wait_handle is None:
            self._maybe_dispatch(loop)

    # -- dispatching ----------------------------------------------------------------------

    def _maybe_dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._queue or self._busy:
            return
        if self.max_wait_s > 0 and self.queued_rows < self.batch_limit_rows:
            oldest_wait_s = self.clock() - self._queue[0].arrived_s
            remaining_wait_s = self.max_wait_s - oldest_wait_s
            meets_target = oldest_wait_s + self.max_wait_s + self._batch_time_s() <= (
                self.latency_target_s
            )
            arriving = self.arrival_gap_s < self.max_wait_s and self._overlapping
            if remaining_wait_s > 0 and arriving and meets_target:
                self.waits += 1
                self._wait_handle = loop.call_later(remaining_wait_s, self._wait_over, loop)
                return
        self._dispatch(loop)

    def _batch_time_s(self) -> float:
        return self.cost.seconds(int(self.batch_limit_rows), int(self.batch_limit_rows))

    def _wait_over(self, loop: asyncio.AbstractEventLoop) -> None:
        self._wait_handle = None
        if not self._busy:
            self._dispatch(loop)

    def _take(self) -> _Batch[P, R]:
        batch: _Batch[P, R] = _Batch()
        limit = max(1, int(self.batch_limit_rows))
        while self._queue:
            head = self._queue[0]
            if batch.items and (head.alone or batch.rows + head.rows > limit):
                break
            self._queue.popleft()
            if head.future.cancelled():
                self.queued_rows -= head.rows
                continue
            batch.items.append(head)
            batch.rows += head.rows
            if head.alone:
                break
        self.queued_rows -= batch.rows
        return batch

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._take()
        if not batch.items:
            return
        self._busy = True
        started_s = self.clock()
        parts = [item.part for item in batch.items]
        try:
            job = self.executor.submit(self.run_batch, parts)
        except RuntimeError as exc:  # the executor was shut down
            self._busy = False
            for item in batch.items:
                if not item.future.done():
                    item.future.set_exception(Overloaded(f"the model worker stopped ({exc})"))
            return
        job.add_done_callback(
            lambda done: loop.call_soon_threadsafe(self._finish, loop, batch, done, started_s)
        )

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: _Batch[P, R],
        done: concurrent.futures.Future[R],
        started_s: float,
    ) -> None:
        self._busy = False
        self._overlapping = self._arrived_while_busy > 0
        self._arrived_while_busy = 0
        finished_s = self.clock()
        service_s = finished_s - started_s
        self._adapt(batch.rows, service_s)
        error = done.exception()
        if error is not None and len(batch.items) > 1:
            # Isolate the bad input: run every request of the batch again, alone.
            for item in reversed(batch.items):
                item.alone = True
                self._queue.appendleft(item)
                self.queued_rows += item.rows
        else:
            offset = 0
            result = None if error is not None else done.result()
            for item in batch.items:
                if item.future.done():  # cancelled: its caller went away
                    item.tag = None
                elif error is not None:
                    item.future.set_exception(error)
                else:
                    item.future.set_result((result, offset))  # type: ignore[arg-type]
                offset += item.rows
        if self.on_batch is not None:
            self.on_batch(BatchStats(batch.rows, len(batch.items), service_s, self.queued_rows))
        if self._queue:
            self._schedule_dispatch(loop)
        # Last, so that the batcher's state is whole even if the hook fails.
        if error is None and self.on_result is not None:
            self.on_result(done.result(), batch.items, finished_s)

    def _adapt(self, rows: int, service_s: float) -> None:
        """AIMD on the batch limit; the batch cost's line."""
        self.cost.add(rows, service_s)
        if service_s > self.batch_budget_s:
            self.batch_limit_rows = max(1.0, self.batch_limit_rows * self.backoff_factor)
        else:
            self.batch_limit_rows = min(
                float(self.max_batch_rows), self.batch_limit_rows + self.additive_step_rows
            )

    # -- closing ------------------------------------------------------------------------

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Refuse new requests and wait until every queued and running one has finished."""
        self._closed = True
        deadline = self.clock() + timeout_s
        while (self._queue or self._busy) and self.clock() < deadline:
            await asyncio.sleep(0.005)

    def stats(self) -> dict[str, Any]:
        """The control loop's current quantities (for ``/v2/models/{name}`` and tests)."""
        return {
            "batch_limit_rows": int(self.batch_limit_rows),
            "max_batch_rows": self.max_batch_rows,
            "queued_rows": self.queued_rows,
            "row_time_ms": self.cost.row_s * 1000,
            "batch_overhead_ms": self.cost.overhead_s * 1000,
            "latency_target_ms": self.latency_target_s * 1000,
            "waits": self.waits,
        }
