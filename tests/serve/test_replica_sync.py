"""The Ray replicas' shared state, as an actor holds it (tested here without Ray; the Ray
scenario in ``test_ray_engine.py`` runs it as an actor between two replicas)."""

from __future__ import annotations

import dataclasses
import time

import pytest

from readyml.serve import replica_sync
from readyml.serve.replica_sync import ReplicaSync
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
