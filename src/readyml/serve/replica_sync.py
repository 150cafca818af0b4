"""Keeping the Ray Serve replicas of one server in step, on one machine or several.

The replicas of ``readyml serve --engine ray`` may run on any node of a cluster, so they
share no folder: the desired state of the models and each replica's acknowledgement live in
a Ray actor instead (:class:`ReplicaSync`), created by the server's driver for the run
(``num_cpus=0``, so it takes no replica's place) and ended with it. Its methods run one at a
time, so recording a change is atomic. :class:`ActorStore` is the replicas' side: the
:class:`~readyml.serve.workers.SyncStore` that :class:`~readyml.serve.workers.WorkerGroup`
reads and writes, exactly as ``--workers`` processes use their folder.

A replica is alive while it beats: every tick (0.5 s) it says so, before catching up, so a
long model load does not make it look gone; one silent for :data:`ALIVE_S` (a replica that
Ray stopped or lost) is not waited for.

Metrics go the same way (:class:`ReplicaMetrics`): each replica sends the actor its own
exposition when it changed, every tick, before it acknowledges a change and as it stops,
and a scrape, whichever replica Ray's proxy gives it to, answers the sum over every
replica's latest, the others' at most a tick old. The actor sums them
(:func:`~readyml.serve.metrics_sum.sum_expositions`), so that parsing them never holds a
replica's event loop. An ended replica's counts stay in the sums, as Prometheus expects of
counters; one silent for :data:`RETIRED_S` is folded into one exposition of the ended
replicas' counts, so that a scrape's work does not grow with every replica Ray ever
replaced.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from readyml.errors import ServeError
from readyml.serve.metrics import ServerMetrics
from readyml.serve.metrics_sum import sum_expositions
from readyml.serve.workers import ModelChange, empty_state, record_change

# The Ray namespace of the actor, so that replicas (in Serve's namespace) find it by name.
NAMESPACE = "readyml"
# Seconds without a beat after which a replica is taken for gone.
ALIVE_S = 5.0
# Seconds without a beat after which an ended replica's counts join the retired ones'
# (long after ALIVE_S: a replica that came back after it would be counted twice).
RETIRED_S = 60.0
# Seconds a scrape waits for the actor before it answers 503.
METRICS_TIMEOUT_S = 5.0


class MetricsUnavailable(ServeError):
    """A scrape could not read the other replicas' metrics."""

    status_code = 503


class ReplicaSync:
    """The desired state, the replicas' acknowledgements and their metrics (the body of a
    Ray actor)."""

    def __init__(self) -> None:
        self.desired: dict[str, Any] = empty_state()
        self.acks: dict[str, dict[str, Any]] = {}
        self.beats: dict[str, float] = {}
        # Each replica's latest exposition, kept after it ended (its counts stay summed),
        # and the counts of the replicas retired since (one exposition).
        self.expositions: dict[str, str] = {}
        self.retired = ""

    def state(self, seen: int | None) -> tuple[int, dict[str, Any]] | None:
        """The state and its seq, or ``None`` when nothing was recorded or it is ``seen``."""
        seq = int(self.desired["seq"])
        if seq == 0 or seq == seen:
            return None
        return seq, self.desired

    def record(self, change: dict[str, Any]) -> dict[str, Any]:
        """Record ``change`` (a :class:`ModelChange` as a dict); return it as recorded."""
        return dataclasses.asdict(record_change(self.desired, ModelChange(**change)))

    def acknowledge(self, replica: str, ack: dict[str, Any]) -> None:
        """Keep ``ack`` as the replica's latest (a beat too)."""
        self.acks[replica] = ack
        self.beats[replica] = time.monotonic()

    def beat(self, replica: str) -> None:
        """Note that the replica is alive."""
        self.beats[replica] = time.monotonic()

    def acknowledgements(self) -> dict[str, dict[str, Any]]:
        """The latest acknowledgement of every replica that beat within :data:`ALIVE_S`."""
        return {replica: ack for replica, ack in self.acks.items() if self._alive(replica)}

    def report_metrics(self, replica: str, exposition: str) -> None:
        """Keep ``exposition`` as the replica's latest metrics (a beat too)."""
        self.expositions[replica] = exposition
        self.beats[replica] = time.monotonic()

    def metrics(self) -> bytes:
        """Every replica's latest metrics, summed (an ended one's counts, not its gauges)."""
        now = time.monotonic()
        for replica in [r for r in self.expositions if now - self.beats[r] > RETIRED_S]:
            folded = [self.retired, self.expositions.pop(replica)]
            self.retired = sum_expositions([], folded).decode()
        live: list[str] = []
        ended: list[str] = [self.retired]
        for replica, exposition in self.expositions.items():
            # One reading of the clock: a replica is live or ended, never both.
            (live if now - self.beats[replica] <= ALIVE_S else ended).append(exposition)
        return sum_expositions(live, ended)

    def _alive(self, replica: str) -> bool:
        return time.monotonic() - self.beats.get(replica, 0.0) <= ALIVE_S


class ActorStore:
    """A replica's :class:`~readyml.serve.workers.SyncStore`: the run's :class:`ReplicaSync`.

    Args:
        actor_name: The actor's name in :data:`NAMESPACE` (given by the driver).
    """

    def __init__(self, actor_name: str) -> None:
        self.actor_name = actor_name
        self._actor: Any = None

    def _handle(self) -> Any:
        if self._actor is None:
            import ray

            self._actor = ray.get_actor(self.actor_name, namespace=NAMESPACE)
        return self._actor

    async def state(self, seen: object) -> tuple[object, dict[str, Any]] | None:
        found: tuple[int, dict[str, Any]] | None = await self._handle().state.remote(seen)
        return found

    async def record(self, change: ModelChange) -> ModelChange:
        recorded: dict[str, Any] = await self._handle().record.remote(dataclasses.asdict(change))
        return ModelChange(**recorded)

    async def acknowledge(self, worker_id: str, ack: dict[str, Any]) -> None:
        await self._handle().acknowledge.remote(worker_id, ack)

    async def beat(self, worker_id: str) -> None:
        await self._handle().beat.remote(worker_id)

    async def acknowledgements(self) -> dict[str, dict[str, Any]]:
        acks: dict[str, dict[str, Any]] = await self._handle().acknowledgements.remote()
        return acks

    async def report_metrics(self, replica: str, exposition: str) -> None:
        """Send the replica's metrics (Prometheus text format)."""
        await self._handle().report_metrics.remote(replica, exposition)

    async def metrics(self) -> bytes:
        """Every replica's latest metrics, summed."""
        found: bytes = await self._handle().metrics.remote()
        return found


class ReplicaMetrics(ServerMetrics):
    """The metrics of one replica; a scrape answers the sum over the server's replicas.

    Args:
        store: The run's actor, as the replica reaches it.
        replica_id: This replica's name (as it acknowledges changes).
    """

    def __init__(self, store: ActorStore, replica_id: str) -> None:
        super().__init__()
        self.store = store
        self.replica_id = replica_id
        self._shared: bytes | None = None

    async def share(self) -> None:
        """Send this replica's metrics to the actor, when they changed since last sent."""
        exposition = self.render()
        if exposition != self._shared:
            await self.store.report_metrics(self.replica_id, exposition.decode())
            self._shared = exposition

    async def scrape(self) -> bytes:
        """Every replica's metrics, summed (this one's as of now).

        Raises:
            MetricsUnavailable: The actor did not answer: a partial sum would read as a
                counter reset, so the scrape fails instead (Prometheus marks it down).
        """
        try:
            async with asyncio.timeout(METRICS_TIMEOUT_S):
                await self.share()
                return await self.store.metrics()
        except Exception as exc:  # Ray's errors for a lost actor have no common base
            why = f"no answer in {METRICS_TIMEOUT_S:g} s" if isinstance(exc, TimeoutError) else ""
            raise MetricsUnavailable(
                f"metrics: expected every replica's from the run's sync actor "
                f"{self.store.actor_name!r}, found it unreachable "
                f"({why or f'{type(exc).__name__}: {exc}'})"
            ) from exc
