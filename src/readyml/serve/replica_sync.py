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
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from readyml.serve.workers import ModelChange, empty_state, record_change

# The Ray namespace of the actor, so that replicas (in Serve's namespace) find it by name.
NAMESPACE = "readyml"
# Seconds without a beat after which a replica is taken for gone.
ALIVE_S = 5.0


class ReplicaSync:
    """The desired state and the replicas' acknowledgements (the body of a Ray actor)."""

    def __init__(self) -> None:
        self.desired: dict[str, Any] = empty_state()
        self.acks: dict[str, dict[str, Any]] = {}
        self.beats: dict[str, float] = {}

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
        now = time.monotonic()
        return {
            replica: ack
            for replica, ack in self.acks.items()
            if now - self.beats.get(replica, 0.0) <= ALIVE_S
        }


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
