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
from readyml.serve.metrics import ServerMetrics
from readyml.serve.replica_sync import ActorStore, MetricsUnavailable, ReplicaMetrics, ReplicaSync
from readyml.serve.workers import ModelChange, WorkerGroup


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


def _exposition(requests: int, queue_rows: int) -> str:
    metrics = ServerMetrics()
    for _ in range(requests):
        metrics.count("iris", "1", "/predict", 200, 0.002)
    metrics.batch("iris", rows=1, service_s=0.001, queue_rows=queue_rows)
    return metrics.render().decode()


def _summed(exposition: bytes) -> dict[str, float]:
    """Requests and queued rows in a summed exposition."""
    found = {"requests": 0.0, "queue_rows": 0.0}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            if sample.name == "readyml_requests_total":
                found["requests"] += sample.value
            elif sample.name == "readyml_queue_rows":
                found["queue_rows"] += sample.value
    return found


def test_an_ended_replica_keeps_its_counts_and_a_retired_one_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    sync = ReplicaSync()
    sync.report_metrics("node-a:11", _exposition(1, queue_rows=1))
    sync.report_metrics("node-b:11", _exposition(2, queue_rows=2))
    now[0] += replica_sync.ALIVE_S - 1
    sync.report_metrics("node-a:11", _exposition(3, queue_rows=4))  # replaces the one before
    assert _summed(sync.metrics()) == {"requests": 5, "queue_rows": 6}
    now[0] += 2  # b ended: its counts stay, its queue does not
    assert _summed(sync.metrics()) == {"requests": 5, "queue_rows": 4}
    now[0] += replica_sync.RETIRED_S - 3  # a ended, b is folded into the retired counts
    assert _summed(sync.metrics()) == {"requests": 5, "queue_rows": 0}
    assert list(sync.expositions) == ["node-a:11"]
    sync.report_metrics("node-c:12", _exposition(7, queue_rows=1))
    now[0] += replica_sync.RETIRED_S + 1  # a and c are folded in as well
    assert _summed(sync.metrics()) == {"requests": 12, "queue_rows": 0}
    assert sync.expositions == {}


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


def test_a_scrape_the_actor_does_not_answer_is_a_503_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replica_sync, "METRICS_TIMEOUT_S", 0.05)
    metrics = _replica_metrics(ReplicaSync(), "node-a:11")

    async def hang(*args: Any) -> None:
        await asyncio.sleep(60)

    monkeypatch.setattr(metrics.store, "report_metrics", hang)
    with pytest.raises(MetricsUnavailable, match=r"unreachable \(no answer in 0.05 s\)$"):
        asyncio.run(metrics.scrape())


def test_a_stopping_replica_shares_the_counts_of_its_last_moments() -> None:
    sync = ReplicaSync()
    metrics = _replica_metrics(sync, "node-a:11")
    group = WorkerGroup(store=metrics.store, workers=2, metrics=metrics, worker_id="node-a:11")

    async def answer_then_stop() -> None:
        await metrics.share()  # a tick
        metrics.count("iris", "1", "/predict", 200, 0.002)  # answered during the drain
        await group.stop()
        await group.share_last()

    asyncio.run(answer_then_stop())
    assert _summed(sync.metrics())["requests"] == 1
