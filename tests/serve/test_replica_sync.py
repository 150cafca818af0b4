"""The Ray replicas' shared state, as an actor holds it (tested here without Ray; the Ray
scenario in ``test_ray_engine.py`` runs it as an actor between two replicas)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from readyml.serve import replica_sync
from readyml.serve.replica_sync import ActorStore, MetricsUnavailable, ReplicaMetrics, ReplicaSync
from readyml.serve.workers import ModelChange


def test_changes_are_recorded_in_order_and_the_state_is_only_read_when_it_moved() -> None:
    sync = ReplicaSync()
    assert sync.state(None) is None  # nothing recorded yet
    load = ModelChange(name="iris", action="load", ref="iris:2", version=2)
    recorded = sync.record(dataclasses.asdict(load))
    assert recorded["seq"] == 1 and recorded["version"] == 2
    pinned = sync.record({"name": "iris", "action": "load", "version": 3, "pinned": True})
    assert pinned["seq"] == 2
    found = sync.state(None)
    assert found is not None
    seq, state = found
    assert seq == 2 and sorted(state["models"]) == ["iris", "iris:3"]
    assert sync.state(seq) is None  # unchanged since


def test_replicas_that_stop_beating_are_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    sync = ReplicaSync()
    sync.acknowledge("node-a:11", {"applied": {"iris": 1}, "failed": {}})
    sync.acknowledge("node-b:11", {"applied": {}, "failed": {}})
    now[0] += replica_sync.ALIVE_S - 1
    sync.beat("node-a:11")  # still alive while it loads a model
    now[0] += 2
    assert list(sync.acknowledgements()) == ["node-a:11"]
    assert sync.acknowledgements()["node-a:11"]["applied"] == {"iris": 1}


def test_an_ended_replicas_metrics_are_kept_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    sync = ReplicaSync()
    sync.report_metrics("node-a:11", "a")
    sync.report_metrics("node-b:11", "b")
    now[0] += replica_sync.ALIVE_S - 1
    sync.beat("node-a:11")
    sync.report_metrics("node-a:11", "a2")  # the latest replaces the one before
    assert sync.metrics() == (["a2", "b"], [])
    now[0] += 2
    assert sync.metrics() == (["a2"], ["b"])  # its counts stay summed, its gauges go


class _LocalActor:
    """A ReplicaSync behind Ray's call syntax: ``handle.method.remote(...)`` is awaitable."""

    def __init__(self, sync: ReplicaSync) -> None:
        self.sync = sync

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.sync, name)

        async def call(*args: Any) -> Any:
            return method(*args)

        return SimpleNamespace(remote=call)


def _replica_metrics(sync: ReplicaSync, replica_id: str) -> ReplicaMetrics:
    store = ActorStore("readyml-sync-test")
    store._actor = _LocalActor(sync)
    return ReplicaMetrics(store, replica_id)


def _requests(exposition: bytes) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition.decode())
        if family.name == "readyml_requests"
        for sample in family.samples
    )


def test_a_scrape_on_either_replica_answers_both_replicas_requests() -> None:
    sync = ReplicaSync()
    a, b = _replica_metrics(sync, "node-a:11"), _replica_metrics(sync, "node-b:12")
    for _ in range(3):
        a.count("iris", "1", "/predict", 200, 0.002)
    asyncio.run(a.share())  # a tick
    b.count("iris", "1", "/predict", 200, 0.002)
    # b's own requests are counted as of the scrape; a's as of its last tick.
    assert _requests(asyncio.run(b.scrape())) == 4
    assert _requests(asyncio.run(a.scrape())) == 4
    a.count("iris", "1", "/predict", 200, 0.002)
    assert _requests(asyncio.run(a.scrape())) == 5


def test_a_scrape_without_the_actor_fails_rather_than_answer_one_replica() -> None:
    store = ActorStore("readyml-sync-gone")

    def gone() -> Any:
        raise ValueError("Failed to look up actor 'readyml-sync-gone' in namespace 'readyml'")

    store._handle = gone  # type: ignore[method-assign]
    metrics = ReplicaMetrics(store, "node-a:11")
    metrics.count("iris", "1", "/predict", 200, 0.002)
    with pytest.raises(MetricsUnavailable) as raised:
        asyncio.run(metrics.scrape())
    assert raised.value.status_code == 503
    assert str(raised.value) == (
        "metrics: expected every replica's from the run's sync actor 'readyml-sync-gone', "
        "found it unreachable (ValueError: Failed to look up actor 'readyml-sync-gone' in "
        "namespace 'readyml')"
    )
