"""Prometheus metrics of the server, in a registry of its own (served at ``/metrics``).

Per-request counts and latencies are the hot path: they are kept in plain dicts (the event
loop is their only writer) and turned into Prometheus families only when scraped, which
costs about a microsecond per request instead of two locked updates.

With several worker processes (``serving.workers`` > 1) a scrape reaches one of them, so
each worker keeps its values where every other can read them (:class:`WorkerMetrics`):
prometheus_client's multiprocess files in the folder the supervisor names in
``PROMETHEUS_MULTIPROC_DIR`` before the workers start. A scrape then answers the sum over
the workers, whichever one answers: counters and histograms are summed,
``readyml_queue_rows`` over the live workers (``livesum``), and the versions served
(``readyml_model_load_seconds``, which must lose a replaced version's series) come from a
small JSON file per worker, as their union with the slowest worker's load time.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from readyml.errors import ServeError

# Request latency buckets (seconds): 0.5 ms to 10 s.
LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
)
# Batch size buckets (rows).
BATCH_BUCKETS_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
CONTENT_TYPE = CONTENT_TYPE_LATEST
# The environment variable that puts prometheus_client in multiprocess mode (read at import).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Each worker's versions served, as JSON, in the multiprocess folder ({pid}: the worker's).
SERVED_FILE = "served_{pid}.json"


class ServerMetrics:
    """Every metric the server exports.

    Example:
        >>> metrics = ServerMetrics()
        >>> metrics.count("iris", "1", "/predict", 200, 0.003)
        >>> b"readyml_requests_total" in metrics.render()
        True
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # What is served now, as (model, version, load seconds): read at scrape time, so a
        # version that stopped serving leaves no series behind.
        self.served: Callable[[], Iterable[tuple[str, str, float]]] = lambda: ()
        # CPU seconds spent by the request log's writer so far (read at scrape time).
        self.log_cpu_s: Callable[[], float] = lambda: 0.0
        # (model, version, route, status) -> answered requests
        self._requests: dict[tuple[str, str, str, int], int] = {}
        # (model, version, route) -> [count per latency bucket, ..., +Inf count, sum of seconds]
        self._latency: dict[tuple[str, str, str], list[float]] = {}
        self.registry.register(_RequestCollector(self))
        self.batch_size = Histogram(
            "readyml_batch_size_rows",
            "Rows per model call.",
            ["model"],
            buckets=BATCH_BUCKETS_ROWS,
            registry=self.registry,
        )
        self.batch_latency = Histogram(
            "readyml_batch_latency_seconds",
            "Model call duration per batch.",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.queue_rows = Gauge(
            "readyml_queue_rows",
            "Rows waiting for a batch.",
            ["model"],
            registry=self.registry,
            multiprocess_mode="livesum",  # the rows waiting in every live worker
        )
        self.rejected = Counter(
            "readyml_rejected_requests",
            "Requests refused before reaching the model, by reason.",
            ["model", "reason"],
            registry=self.registry,
        )
        self.log_rows = Counter(
            "readyml_request_log_rows",
            "Rows of the request log, by outcome (written, dropped, failed).",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.alias_reloads = Counter(
            "readyml_alias_reloads",
            "Moves of a served alias acted on, by outcome (swapped, refused, conflict, error).",
            ["model", "outcome"],
            registry=self.registry,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def count(self, model: str, version: str, route: str, status: int, latency_s: float) -> None:
        """Count one answered request and observe its latency."""
        key = (model, version, route, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        buckets = self._latency.get((model, version, route))
        if buckets is None:
            buckets = self._latency[(model, version, route)] = [0.0] * (len(LATENCY_BUCKETS_S) + 2)
        buckets[bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
        buckets[-1] += latency_s

    def collect_requests(self) -> Iterator[Metric]:
        """The request counter and latency histogram families (for the registry)."""
        requests = CounterMetricFamily(
            "readyml_requests",
            "Requests answered, by model, version, route and HTTP status.",
            labels=["model", "version", "route", "status"],
        )
        for (model, version, route, status), value in list(self._requests.items()):
            requests.add_metric([model, version, route, str(status)], value)
        yield requests
        latency = HistogramMetricFamily(
            "readyml_request_latency_seconds",
            "Time from the request's arrival to its answer, by model, version and route.",
            labels=["model", "version", "route"],
        )
        for (model, version, route), buckets in list(self._latency.items()):
            cumulative = 0.0
            points = []
            for bound, count in zip(
                [*map(str, LATENCY_BUCKETS_S), "+Inf"], buckets[:-1], strict=True
            ):
                cumulative += count
                points.append((bound, cumulative))
            latency.add_metric([model, version, route], points, sum_value=buckets[-1])
        yield latency
        load = GaugeMetricFamily(
            "readyml_model_load_seconds",
            "Seconds it took to load each model version being served.",
            labels=["model", "version"],
        )
        for model, version, seconds in self.served():
            load.add_metric([model, version], seconds)
        yield load
        yield CounterMetricFamily(
            "readyml_request_log_cpu_seconds",
            "CPU seconds the request log has spent turning logged rows into tables and files.",
            value=self.log_cpu_s(),
        )

    def reject(self, model: str, reason: str) -> None:
        """Count a request refused for ``reason`` (overloaded, invalid, unauthorized, ...)."""
        self.rejected.labels(model, reason).inc()

    def batch(self, model: str, rows: int, service_s: float, queue_rows: int) -> None:
        """Observe one batch."""
        key = ("batch", model)
        children = self._children.get(key)
        if children is None:
            children = (
                self.batch_size.labels(model),
                self.batch_latency.labels(model),
                self.queue_rows.labels(model),
            )
            self._children[key] = children
        children[0].observe(rows)
        children[1].observe(service_s)
        children[2].set(queue_rows)

    def render(self) -> bytes:
        """This process's metrics in Prometheus' text format."""
        return generate_latest(self.registry)

    async def share(self) -> None:
        """Make this process's values readable by the server's other processes, where it
        has some (called every tick and before a model change is acknowledged)."""
        return None  # one process: a scrape reads the values in memory

    async def scrape(self) -> bytes:
        """What ``/metrics`` answers: the whole server's metrics (this process's, here)."""
        return self.render()


class _RequestCollector(Collector):
    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics.collect_requests()


class WorkerMetrics(ServerMetrics):
    """The metrics of one of several worker processes; a scrape answers the sum over all.

    Requests are counted in prometheus_client's multiprocess values (a few microseconds a
    request instead of one: each update writes the worker's memory-mapped file), which
    :class:`~prometheus_client.multiprocess.MultiProcessCollector` reads for every worker
    at scrape time. What the base class reads at scrape time through callbacks is published
    by :meth:`publish`, which the worker calls every tick and before it answers a scrape:
    the request log's CPU seconds as a counter's increments, the versions served as
    ``served_{pid}.json``.

    Args:
        folder: The multiprocess folder (``PROMETHEUS_MULTIPROC_DIR``), shared by the workers.

    Raises:
        ServeError: prometheus_client was imported before ``PROMETHEUS_MULTIPROC_DIR`` was
            set, so this process's values would stay in memory, out of the other workers' reach.
    """

    def __init__(self, *, folder: Path) -> None:
        if not getattr(values.ValueClass, "_multiprocess", False):
            raise ServeError(
                f"{MULTIPROC_ENV}: expected it set before prometheus_client is imported, "
                f"found {os.environ.get(MULTIPROC_ENV)!r} and single-process values"
            )
        super().__init__()
        self.folder = folder
        self.requests = Counter(
            "readyml_requests",
            "Requests answered, by model, version, route and HTTP status.",
            ["model", "version", "route", "status"],
            registry=None,
        )
        self.latency = Histogram(
            "readyml_request_latency_seconds",
            "Time from the request's arrival to its answer, by model, version and route.",
            ["model", "version", "route"],
            buckets=LATENCY_BUCKETS_S,
            registry=None,
        )
        self.log_cpu = Counter(
            "readyml_request_log_cpu_seconds",
            "CPU seconds the request log has spent turning logged rows into tables and files.",
            registry=None,
        )
        self._request_children: dict[tuple[str, str, str, int], Any] = {}
        self._latency_children: dict[tuple[str, str, str], Any] = {}
        self._log_cpu_published = 0.0
        self._served_published: list[tuple[str, str, float]] | None = None

    def count(self, model: str, version: str, route: str, status: int, latency_s: float) -> None:
        """Count one answered request and observe its latency."""
        key = (model, version, route, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(*key)
        counter.inc()
        histogram = self._latency_children.get(key[:3])
        if histogram is None:
            histogram = self._latency_children[key[:3]] = self.latency.labels(*key[:3])
        histogram.observe(latency_s)

    def publish(self) -> None:
        """Write what the other workers read of this one: log CPU seconds, versions served."""
        cpu_s = self.log_cpu_s()
        if cpu_s > self._log_cpu_published:
            self.log_cpu.inc(cpu_s - self._log_cpu_published)
            self._log_cpu_published = cpu_s
        served = sorted(self.served())
        if served != self._served_published:
            path = self.folder / SERVED_FILE.format(pid=os.getpid())
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(served))
            os.replace(temporary, path)  # a scrape reads the old list or the new, never half
            self._served_published = served

    async def share(self) -> None:
        """:meth:`publish`."""
        self.publish()

    def render(self) -> bytes:
        """Every worker's metrics, summed, in Prometheus' text format."""
        self.publish()
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.folder))  # type: ignore[no-untyped-call]
        registry.register(_ServedCollector(self.folder))
        return generate_latest(registry)


def forget_worker(folder: Path, pid: int) -> None:
    """Drop what a worker that ended left in the multiprocess ``folder`` but its counts.

    Its live gauges (queue rows) and its versions served go; its counters and histograms
    stay in the sums, as Prometheus expects of counters.
    """
    mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]
    (folder / SERVED_FILE.format(pid=pid)).unlink(missing_ok=True)


class _ServedCollector(Collector):
    """``readyml_model_load_seconds`` from every worker's ``served_{pid}.json``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def collect(self) -> Iterator[Metric]:
        seconds: dict[tuple[str, str], float] = {}
        for path in self.folder.glob(SERVED_FILE.format(pid="*")):
            with contextlib.suppress(FileNotFoundError):  # its worker ended meanwhile
                for model, version, load_s in json.loads(path.read_text()):
                    seconds[(model, version)] = max(load_s, seconds.get((model, version), 0.0))
        load = GaugeMetricFamily(
            "readyml_model_load_seconds",
            "Seconds it took to load each model version being served.",
            labels=["model", "version"],
        )
        for (model, version), value in sorted(seconds.items()):
            load.add_metric([model, version], value)
        yield load
