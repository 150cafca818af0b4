"""Several worker processes behind one port: repository changes reach every worker, a scrape
sums them all, and SIGTERM lets every request in flight finish."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from sklearn.linear_model import LogisticRegression

from readyml.serve.rollout import RolloutManager
from readyml.serve.server import report_paused_rollouts
from readyml.serve.workers import STATE_FILE, SYNC_POLL_S, ModelChange, WorkerGroup

from .conftest import ROW, TOKEN, Server, serve_process, train_iris
from .test_rollout import register

AUTH = {"Authorization": f"Bearer {TOKEN}"}
WORKERS = "2"
# Seconds a change may take to reach every worker (a poll is 0.5 s; the box may be busy).
CONVERGE_TIMEOUT_S = 30.0
# Answers in a row, each on a new connection, that must agree before a change counts as
# everywhere (the kernel hands each connection to either worker).
AGREEING = 20
SERVING = {"request_log": {"enabled": False}, "access_log": False}


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An iris project with versions 1 (champion) and 2."""
    root = train_iris(tmp_path_factory.mktemp("iris-workers"), serving=SERVING)
    register(root, lambda: LogisticRegression(max_iter=500, C=0.5))
    return root


@pytest.fixture(scope="module")
def workers_server(two_versions: Path) -> Iterator[Server]:
    with serve_process(two_versions, "--workers", WORKERS) as started:
        yield started


def fresh(server: Server) -> httpx.Client:
    """A client that opens a new connection for every request."""
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(base_url=server.url, timeout=30.0, limits=limits)


def wait_until_everywhere(server: Server, expected: object, read: str = "versions") -> None:
    """Poll ``GET /v2/models/iris`` until :data:`AGREEING` answers in a row give ``expected``
    (a list of versions, or a status when the model is not served)."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    seen: list[object] = []
    with fresh(server) as client:
        while time.monotonic() < deadline:
            answer = client.get("/v2/models/iris")
            seen.append(
                answer.json().get(read) if answer.status_code == 200 else answer.status_code
            )
            if seen[-AGREEING:] == [expected] * AGREEING:
                # The kernel hands new connections mostly to one worker, so the agreeing
                # answers may all be one worker's; the others follow within a poll or two.
                time.sleep(3 * SYNC_POLL_S)
                return
    pytest.fail(f"workers did not agree on {expected!r}; last answers: {seen[-AGREEING:]}")


def test_repository_changes_reach_every_worker(workers_server: Server) -> None:
    with fresh(workers_server) as client:
        loaded = client.post(
            "/v2/repository/models/iris/load", json={"parameters": {"version": 2}}, headers=AUTH
        )
        assert loaded.status_code == 200, loaded.text
        assert loaded.json() == {"name": "iris", "version": "2", "state": "READY", "workers": 2}
        # The index catches up before it answers: every worker reports the load at once.
        for _ in range(6):
            index = client.post("/v2/repository/index", json={}, headers=AUTH).json()
            assert {"name": "iris", "version": "2", "state": "READY"} in index
        wait_until_everywhere(workers_server, ["2"])

        # `readyml rollback --url` reloads the champion (version 1) on every worker too.
        rolled = client.post(
            "/v2/management/rollback", json={"model": "iris", "reload": True}, headers=AUTH
        )
        assert rolled.status_code == 200, rolled.text
        assert rolled.json()["version"] == 1
        wait_until_everywhere(workers_server, ["1"])

        unloaded = client.post("/v2/repository/models/iris/unload", headers=AUTH)
        assert unloaded.status_code == 200, unloaded.text
        wait_until_everywhere(workers_server, 404)
        for _ in range(6):
            index = client.post("/v2/repository/index", json={}, headers=AUTH).json()
            assert {"name": "iris", "state": "UNAVAILABLE", "reason": "not loaded"} in index

        again = client.post("/v2/repository/models/iris/load", json={}, headers=AUTH)
        assert again.status_code == 200, again.text
        wait_until_everywhere(workers_server, ["1"])


def test_rollouts_are_refused_with_several_workers(workers_server: Server) -> None:
    with fresh(workers_server) as client:
        for route, body in (
            ("/v2/management/deploy", {"model": "iris", "version": 2, "mode": "direct"}),
            ("/v2/management/promote", {"model": "iris"}),
        ):
            answer = client.post(route, json=body, headers=AUTH)
            assert answer.status_code == 409, answer.text
            assert "expected a server with one worker process, found 2" in answer.json()["error"]


def test_metrics_are_summed_over_workers(workers_server: Server) -> None:
    sent = 40
    with fresh(workers_server) as client:
        before = client.get("/metrics").text
        for _ in range(sent):
            assert client.post("/predict", json=[ROW]).status_code == 200
        for _ in range(6):  # whichever worker answers the scrape
            text = client.get("/metrics").text
            assert predict_requests(text) == predict_requests(before) + sent
            rows = sample_sum(text, "readyml_batch_size_rows_sum")
            assert rows == sample_sum(before, "readyml_batch_size_rows_sum") + sent
            load = [line for line in text.splitlines() if line.startswith("readyml_model_load_")]
            assert len(load) == 1 and 'model="iris"' in load[0], load


def predict_requests(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("readyml_requests_total{") and 'route="/predict"' in line
    )


def sample_sum(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name)] in "{ "
    )


def test_sigterm_lets_requests_in_flight_finish(two_versions: Path) -> None:
    clients = 8
    body = json.dumps([ROW]).encode()
    sending = threading.Barrier(clients + 1)
    release = threading.Event()
    answers: list[object] = []

    def slow_body() -> Iterator[bytes]:
        yield body[:10]
        sending.wait()  # every client is half-way through its request
        release.wait(timeout=CONVERGE_TIMEOUT_S)  # the server receives SIGTERM meanwhile
        yield body[10:]

    with serve_process(two_versions, "--workers", WORKERS) as server:

        def ask(client: httpx.Client) -> None:
            try:
                answer = client.post(
                    "/predict",
                    content=slow_body(),
                    headers={"content-type": "application/json", "content-length": str(len(body))},
                )
                answers.append(answer.status_code)
            except httpx.HTTPError as exc:
                answers.append(repr(exc))

        connected = [server.client() for _ in range(clients)]
        for client in connected:  # each on its own open connection before the signal
            assert client.get("/v2/health/ready").status_code == 200
        threads = [threading.Thread(target=ask, args=(client,)) for client in connected]
        for thread in threads:
            thread.start()
        sending.wait(timeout=30)
        server.process.send_signal(signal.SIGTERM)
        # While the requests in flight are still unanswered, the port stops taking new
        # connections, as with one worker: refused, not queued for no worker and reset at exit.
        refused = port_refuses(server, deadline_s=CONVERGE_TIMEOUT_S)
        release.set()
        for thread in threads:
            thread.join(timeout=30)
        for client in connected:
            client.close()
        assert server.process.wait(timeout=30) == 0

    assert refused
    assert answers == [200] * clients


def port_refuses(server: Server, *, deadline_s: float) -> bool:
    """Whether connecting to the server is refused within ``deadline_s`` (connect, close)."""
    address = httpx.URL(server.url)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address.host, address.port or 80), timeout=1.0).close()
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


# -- the desired-state file, without processes ------------------------------------------


def test_a_change_published_by_one_worker_is_made_by_the_others(tmp_path: Path) -> None:
    made: dict[str, list[ModelChange]] = {"a": [], "b": []}

    async def scenario() -> None:
        groups = {
            name: WorkerGroup(folder=tmp_path, workers=2, poll_s=3600.0) for name in ("a", "b")
        }
        for name, group in groups.items():

            async def apply(change: ModelChange, name: str = name) -> None:
                made[name].append(change)

            group.start(apply)
        a, b = groups["a"], groups["b"]
        async with a.changing():
            a.publish(ModelChange(name="iris", action="load", ref="iris@champion", version=2))
        async with b.changing():  # b catches up before its own change
            b.publish(ModelChange(name="iris", action="unload"))
        async with a.changing():
            pass
        async with b.changing():  # nothing new: b made the last change itself
            pass
        for group in groups.values():
            await group.stop()

    asyncio.run(scenario())
    assert [(c.action, c.version, c.seq) for c in made["b"]] == [("load", 2, 1)]
    assert [(c.action, c.seq) for c in made["a"]] == [("unload", 2)]
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["seq"] == 2 and state["models"]["iris"]["action"] == "unload"


def test_a_change_that_fails_is_tried_again(tmp_path: Path) -> None:
    attempts: list[int] = []
    stream = io.StringIO()

    async def scenario() -> None:
        first = WorkerGroup(folder=tmp_path, workers=2, poll_s=3600.0)
        second = WorkerGroup(folder=tmp_path, workers=2, poll_s=3600.0, stream=stream)

        async def ignore(change: ModelChange) -> None:
            pass

        async def flaky(change: ModelChange) -> None:
            attempts.append(change.seq)
            if len(attempts) == 1:
                raise OSError("store unreachable")

        first.start(ignore)
        second.start(flaky)
        first.publish(ModelChange(name="iris", action="load", ref="iris:3", version=3))
        for _ in range(3):
            async with second.changing():
                pass
        await first.stop()
        await second.stop()
        assert second.applied == {"iris": 1}

    asyncio.run(scenario())
    assert attempts == [1, 1]
    (line,) = stream.getvalue().splitlines()  # reported once
    assert json.loads(line)["error"] == "OSError: store unreachable"


def test_a_persisted_rollout_stays_paused_with_several_workers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Rollouts:
        def status(self) -> dict[str, list[dict[str, str]]]:
            return {
                "rollouts": [
                    {"model": "iris", "state": "canary"},
                    {"model": "churn", "state": "promoted"},
                ]
            }

    report_paused_rollouts(cast(RolloutManager, Rollouts()), 2)
    assert capsys.readouterr().err.splitlines() == [
        "readyml: rollout of 'iris' paused: rollouts run with one worker, found 2; restart "
        "with --workers 1 to resume it"
    ]
