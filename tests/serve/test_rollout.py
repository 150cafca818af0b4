"""Rollouts against real server processes: infra validation, canary, shadow, rollback, resume."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from readyml.cli.rollout import app as rollout_cli
from readyml.config import Project
from readyml.flavors.sklearn import SklearnModel
from readyml.registry import Registry
from readyml.serve.rollout import (
    IllegalTransition,
    RolloutState,
    transition,
)
from readyml.train import open_project_registry
from support import iris_frame

from .conftest import ROW, TOKEN, Server, serve_process, train_iris

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Seconds a test waits for the controller to reach a decision.
DECISION_TIMEOUT_S = 30.0
# A fixed, unbalanced batch (5 setosa, 3 versicolor, 1 virginica rows), so that a healthy
# candidate's predictions match the stable version's exactly and a shifted one's do not.
BATCH_ROWS = [0, 1, 2, 3, 4, 50, 51, 52, 100]
FAST_STEPS: dict[str, Any] = {
    "steps": [25, 50, 100],
    "step_duration_s": 0.2,
    "min_requests": 8,
    "tick_s": 0.05,
    "latency_slack_ms": 200.0,
    "max_latency_ratio": 10.0,
}


def registry_of(root: Path) -> Registry:
    return open_project_registry(Project.load(root))


def register(root: Path, make: Callable[[], LogisticRegression], *, shift: bool = False) -> int:
    """Fit ``make()`` on iris (labels skewed to virginica when ``shift``); register it blessed."""
    frame = iris_frame()
    features = frame.drop(columns=["species"])
    labels = frame["species"].copy()
    if shift:
        keep = labels.index.isin([0, 60])
        labels[~keep] = "virginica"
    model = SklearnModel(estimator=make()).fit(features, labels)
    with tempfile.TemporaryDirectory() as tmp:
        written = model.save(Path(tmp))
        version = registry_of(root).register(
            "iris",
            files={path.name: path for path in written},
            model_fingerprint=f"iris-{time.monotonic_ns()}",
            signature=model.signature(),
            input_example=[ROW],
            tags={"flavor": "sklearn"},
            status="blessed",
        )
    return version.version


def register_nan(root: Path) -> int:
    """A version whose probabilities are all NaN (its coefficients are)."""
    frame = iris_frame()
    model = SklearnModel(estimator=LogisticRegression(max_iter=500))
    model.fit(frame.drop(columns=["species"]), frame["species"])
    estimator: Any = model.model_
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    final.coef_ = np.full_like(final.coef_, np.nan)
    with tempfile.TemporaryDirectory() as tmp:
        written = model.save(Path(tmp))
        version = registry_of(root).register(
            "iris",
            files={path.name: path for path in written},
            model_fingerprint="iris-nan",
            signature=model.signature(),
            input_example=[ROW],
            tags={"flavor": "sklearn"},
            status="blessed",
        )
    return version.version


def infer_body() -> dict[str, Any]:
    frame = iris_frame().drop(columns=["species"])
    data = frame.iloc[BATCH_ROWS].to_numpy(dtype=float).tolist()
    return {"inputs": [{"name": "x", "shape": [len(data), 4], "datatype": "FP64", "data": data}]}


class Traffic:
    """A thread sending the fixed batch until stopped; keeps (status, version) per answer."""

    def __init__(self, server: Server, *, headers: dict[str, str] | None = None) -> None:
        self.server = server
        self.headers = headers or {}
        self.answers: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        body = infer_body()
        with self.server.client() as client:
            while not self._stop.is_set():
                answer = client.post("/v2/models/iris/infer", json=body, headers=self.headers)
                version = answer.json().get("model_version", "") if answer.is_success else ""
                self.answers.append((answer.status_code, version))

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def rollout_state(client: httpx.Client) -> dict[str, Any]:
    answer = client.get("/v2/management/rollout", headers=AUTH)
    assert answer.status_code == 200, answer.text
    rollouts: list[dict[str, Any]] = answer.json()["rollouts"]
    return rollouts[0] if rollouts else {}


def wait_for(client: httpx.Client, states: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + DECISION_TIMEOUT_S
    while time.monotonic() < deadline:
        state = rollout_state(client)
        if state.get("state") in states:
            return state
        time.sleep(0.05)
    pytest.fail(f"rollout did not reach {states}: {rollout_state(client)}")


def deploy(client: httpx.Client, version: int, **extra: Any) -> httpx.Response:
    body = {"model": "iris", "version": version, "rollout": FAST_STEPS, **extra}
    return client.post("/v2/management/deploy", json=body, headers=AUTH)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    yield train_iris(tmp_path, serving={"request_log": {"enabled": False}, "access_log": False})


def test_illegal_transitions_have_their_own_message() -> None:
    assert transition(RolloutState.SHADOW, RolloutState.CANARY, "m") is RolloutState.CANARY
    with pytest.raises(IllegalTransition, match="cannot return to shadowing"):
        transition(RolloutState.CANARY, RolloutState.SHADOW, "m")
    with pytest.raises(IllegalTransition, match="finished \\(promoted\\)"):
        transition(RolloutState.PROMOTED, RolloutState.ROLLED_BACK, "m")


def test_management_routes_need_the_token(project: Path) -> None:
    with serve_process(project) as server, server.client() as client:
        assert client.get("/v2/management/rollout").status_code == 401
        answer = client.post("/v2/management/deploy", json={"model": "iris", "version": 1})
        assert answer.status_code == 401
        assert client.post("/v2/management/rollback", json={"model": "iris"}).status_code == 401


def test_candidate_failing_infra_validation_never_receives_traffic(project: Path) -> None:
    broken = register_nan(project)
    with serve_process(project) as server, server.client() as client:
        with Traffic(server) as traffic:
            answer = deploy(client, broken)
            time.sleep(0.3)
        assert answer.status_code == 422, answer.text
        assert "NaN" in answer.json()["error"]
        assert rollout_state(client) == {}
    assert traffic.answers and {v for _, v in traffic.answers} == {"1"}
    evidence = registry_of(project).list_evidence("iris", test_id="infra-6")
    failed = [e for e in evidence if e.version == broken]
    assert failed and not failed[0].passed and "NaN" in failed[0].details["reason"]


def test_canary_of_shifted_candidate_is_rolled_back_with_the_reason(project: Path) -> None:
    shifted = register(project, lambda: LogisticRegression(max_iter=500), shift=True)
    with serve_process(project) as server, server.client() as client:
        with Traffic(server) as traffic:
            assert deploy(client, shifted).status_code == 200
            final = wait_for(client, {"rolled_back"})
    assert {status for status, _ in traffic.answers} == {200}
    decision = final["decisions"][-1]
    assert decision["action"] == "rollback" and "divergence" in decision["reason"]
    registry = registry_of(project)
    assert registry.get("iris@champion").version == 1
    audit = [e.reason for e in registry.history("iris", "canary")]
    assert any("rollback" in reason and "Jensen-Shannon" in reason for reason in audit)
    executed = registry.list_evidence("iris", test_id="infra-7")
    assert executed and executed[-1].passed and executed[-1].details["seconds"] < 1.0


def test_healthy_candidate_is_promoted_through_every_step(project: Path) -> None:
    healthy = register(project, lambda: LogisticRegression(max_iter=500, C=0.9))
    with serve_process(project) as server, server.client() as client:
        with Traffic(server) as traffic:
            assert deploy(client, healthy).status_code == 200
            final = wait_for(client, {"promoted"})
            time.sleep(0.2)
    assert {status for status, _ in traffic.answers} == {200}
    assert traffic.answers[-1][1] == str(healthy)
    actions = [(d["action"], d["weight"]) for d in final["decisions"]]
    assert actions == [("start", 25), ("advance", 50), ("advance", 100), ("promote", 100)]
    registry = registry_of(project)
    assert registry.get("iris@champion").version == healthy
    promotion = registry.history("iris", "champion")[-1]
    assert promotion.who == "readyml-rollout" and "divergence 0.0" in promotion.reason
    canary = registry.list_evidence("iris", test_id="infra-6")
    assert any(e.passed and e.version == healthy for e in canary)


def test_shadow_answers_with_stable_and_records_the_candidate(project: Path) -> None:
    candidate = register(project, lambda: LogisticRegression(max_iter=500, C=0.9))
    with serve_process(project) as server, server.client() as client:
        spec = {**FAST_STEPS, "shadow_s": 60.0}
        assert deploy(client, candidate, mode="shadow", rollout=spec).status_code == 200
        with Traffic(server) as traffic:
            time.sleep(1.0)
        state = rollout_state(client)
    assert state["state"] == "shadow"
    assert {version for _, version in traffic.answers} == {"1"}
    mirrored = state["window"]["candidate"]["requests"]
    assert mirrored >= len(traffic.answers) - 2 > 0


def test_rollback_command_is_instant_and_tells_the_server(project: Path) -> None:
    healthy = register(project, lambda: LogisticRegression(max_iter=500, C=0.9))
    registry_of(project).promote(f"iris:{healthy}", who="tests", reason="to roll back")
    runner = CliRunner()
    with serve_process(project) as server, server.client() as client:
        before = client.post("/v2/models/iris/infer", json=infer_body()).json()
        result = runner.invoke(
            rollout_cli,
            [
                "rollback",
                "iris",
                "--project",
                str(project),
                "--url",
                server.url,
                "--reason",
                "bad numbers",
                "--format",
                "json",
            ],
            env={"READYML_SERVE_TOKEN": TOKEN},
        )
        assert result.exit_code == 0, result.output
        after = client.post("/v2/models/iris/infer", json=infer_body()).json()
    report = json.loads(result.output)
    assert before["model_version"] == str(healthy) and after["model_version"] == "1"
    assert report["to_version"] == 1 and report["seconds"] < 1.0
    evidence = registry_of(project).list_evidence("iris", test_id="infra-7")
    assert evidence[-1].details["seconds"] == report["seconds"]


def test_rollout_state_survives_a_restart(project: Path) -> None:
    candidate = register(project, lambda: LogisticRegression(max_iter=500, C=0.9))
    slow = {**FAST_STEPS, "step_duration_s": 600.0}
    with serve_process(project) as server, server.client() as client:
        assert deploy(client, candidate, rollout=slow).status_code == 200
        assert deploy(client, candidate).status_code == 409
    with serve_process(project) as server, server.client() as client:
        state = rollout_state(client)
        assert state["state"] == "canary" and state["candidate_version"] == candidate
        assert state["weight"] == 25
        with Traffic(server) as traffic:
            time.sleep(0.5)
        assert {version for _, version in traffic.answers} == {"1", str(candidate)}
        answer = client.post("/v2/management/promote", json={"model": "iris"}, headers=AUTH)
        assert answer.status_code == 200 and answer.json()["state"] == "promoted"
