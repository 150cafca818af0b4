"""Several worker processes behind one port: repository changes reach every worker, a scrape
sums them all, and SIGTERM lets every request in flight finish."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sklearn.linear_model import LogisticRegression

from readyml.serve.rollout import RolloutManager
from readyml.serve.server import report_paused_rollouts
from readyml.serve.workers import (
    ACKS_FOLDER,
    STATE_FILE,
    Apply,
    FolderStore,
    ModelChange,
    WorkerGroup,
    WorkersLagging,
    empty_state,
    record_change,
)

from .conftest import ROW, TOKEN, Server, serve_process, train_iris
from .test_rollout import register

AUTH = {"Authorization": f"Bearer {TOKEN}"}
WORKERS = "2"
# Seconds a server may take to drain or stop (the box may be busy).
CONVERGE_TIMEOUT_S = 30.0
# Answers, each on a new connection, several at once, that must all show a change just
# answered: the kernel hands each connection to either worker, mostly to an idle one.
AGREEING = 40
PROBES_AT_ONCE = 4
SERVING = {"request_log": {"enabled": False}, "access_log": False}


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An iris project with versions 1 (champion) and 2."""
    root = train_iris(tmp_path_factory.mktemp("iris-workers"), serving=SERVING)
    register(root, lambda: LogisticRegression(max_iter=500, C=0.5))
    return root


@pytest.fixture(scope="module")
def workers_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's TMPDIR, where the supervisor makes the folder its workers share."""
    return tmp_path_factory.mktemp("workers-tmp")


@pytest.fixture(scope="module")
def workers_server(two_versions: Path, workers_tmp: Path) -> Iterator[Server]:
    tmp = {"TMPDIR": str(workers_tmp)}
    with serve_process(two_versions, "--workers", WORKERS, env_extra=tmp) as started:
        yield started


def acknowledged(workers_tmp: Path, key: str = "iris") -> tuple[int, list[int]]:
    """The seq of the last change of ``key`` recorded, and the one each worker made."""
    (shared,) = workers_tmp.glob("readyml-serve-*")
    recorded = json.loads((shared / STATE_FILE).read_text())["models"][key]["seq"]
    acks = [json.loads(path.read_text()) for path in (shared / ACKS_FOLDER).glob("*.json")]
    return recorded, [ack["applied"].get(key, 0) for ack in acks]


def fresh(server: Server) -> httpx.Client:
    """A client that opens a new connection for every request."""
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(base_url=server.url, timeout=30.0, limits=limits)


def assert_everywhere(server: Server, expected: object, read: str = "versions") -> None:
    """:data:`AGREEING` answers of ``GET /v2/models/iris``, each on a new connection, give
    ``expected`` (a list of versions, or a status when the model is not served).

    No waiting: a change is answered only once every worker has made it.
    """

    def probe(_: int) -> list[object]:
        seen: list[object] = []
        with fresh(server) as client:
            for _ in range(AGREEING // PROBES_AT_ONCE):
                answer = client.get("/v2/models/iris")
                ok = answer.status_code == 200
                seen.append(answer.json().get(read) if ok else answer.status_code)
        return seen

    with concurrent.futures.ThreadPoolExecutor(PROBES_AT_ONCE) as pool:
        seen = [answer for part in pool.map(probe, range(PROBES_AT_ONCE)) for answer in part]
    assert seen == [expected] * AGREEING


def test_repository_changes_reach_every_worker(workers_server: Server, workers_tmp: Path) -> None:
    with fresh(workers_server) as client:
        loaded = client.post(
            "/v2/repository/models/iris/load", json={"parameters": {"version": 2}}, headers=AUTH
        )
        assert loaded.status_code == 200, loaded.text
        # Answered once every worker has made it (each acknowledges in the shared folder).
        recorded, made = acknowledged(workers_tmp)
        assert made == [recorded] * int(WORKERS)
        assert loaded.json() == {"name": "iris", "version": "2", "state": "READY", "workers": 2}
        assert_everywhere(workers_server, ["2"])  # answered once every worker serves it
        for _ in range(6):
            index = client.post("/v2/repository/index", json={}, headers=AUTH).json()
            assert {"name": "iris", "version": "2", "state": "READY"} in index

        # `readyml rollback --url` reloads the champion (version 1) on every worker too.
        rolled = client.post(
            "/v2/management/rollback", json={"model": "iris", "reload": True}, headers=AUTH
        )
        assert rolled.status_code == 200, rolled.text
        assert rolled.json()["version"] == 1
        assert_everywhere(workers_server, ["1"])

        unloaded = client.post("/v2/repository/models/iris/unload", headers=AUTH)
        assert unloaded.status_code == 200, unloaded.text
        recorded, made = acknowledged(workers_tmp)
        assert made == [recorded] * int(WORKERS)
        assert_everywhere(workers_server, 404)
        for _ in range(6):
            index = client.post("/v2/repository/index", json={}, headers=AUTH).json()
            assert {"name": "iris", "state": "UNAVAILABLE", "reason": "not loaded"} in index

        again = client.post("/v2/repository/models/iris/load", json={}, headers=AUTH)
        assert again.status_code == 200, again.text
        assert_everywhere(workers_server, ["1"])


def test_a_pinned_version_reaches_every_worker(workers_server: Server, workers_tmp: Path) -> None:
    with fresh(workers_server) as client:
        pinned = client.post(
            "/v2/repository/models/iris/load",
            json={"parameters": {"version": 2, "pin": True}},
            headers=AUTH,
        )
        assert pinned.status_code == 200, pinned.text
        recorded, made = acknowledged(workers_tmp, "iris:2")
        assert made == [recorded] * int(WORKERS)
        assert_everywhere(workers_server, ["1", "2"])
        unpinned = client.post(
            "/v2/repository/models/iris/unload", json={"parameters": {"version": 2}}, headers=AUTH
        )
        assert unpinned.status_code == 200, unpinned.text
        assert_everywhere(workers_server, ["1"])


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


def test_a_worker_replaced_after_a_crash_serves_the_changes_made_before(
    two_versions: Path, tmp_path: Path
) -> None:
    tmp = {"TMPDIR": str(tmp_path)}
    with serve_process(two_versions, "--workers", WORKERS, env_extra=tmp) as server:
        with fresh(server) as client:
            loaded = client.post(
                "/v2/repository/models/iris/load", json={"parameters": {"version": 2}}, headers=AUTH
            )
            assert loaded.status_code == 200, loaded.text
        (shared,) = tmp_path.glob("readyml-serve-*")
        before = worker_pids(shared)
        assert len(before) == int(WORKERS)
        crashed = before[0]
        seen: list[object] = []
        probing = threading.Event()
        probing.set()

        def probe() -> None:  # on new connections, through the crash and the replacement
            with fresh(server) as client:
                while probing.is_set():
                    try:
                        answer = client.get("/v2/models/iris")
                    except httpx.TransportError:  # a connection the crashed worker held
                        continue
                    ok = answer.status_code == 200
                    seen.append(answer.json()["versions"] if ok else answer.status_code)

        prober = threading.Thread(target=probe)
        prober.start()
        os.kill(crashed, signal.SIGKILL)
        # The supervisor starts a replacement; it acknowledges once it has caught up.
        deadline = time.monotonic() + CONVERGE_TIMEOUT_S
        while time.monotonic() < deadline:
            recorded, made = acknowledged(tmp_path)
            pids = worker_pids(shared)
            if crashed not in pids and len(pids) == int(WORKERS) and min(made) == recorded:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"no replacement caught up; workers {worker_pids(shared)}")
        time.sleep(1.0)  # the replacement takes connections too
        probing.clear()
        prober.join(timeout=30)
        assert_everywhere(server, ["2"])
    # The replacement took no connection before it served every change made before it.
    assert seen and all(answer == ["2"] for answer in seen), [a for a in seen if a != ["2"]]


def worker_pids(shared: Path) -> list[int]:
    """The pids of the live workers, from their acknowledgements."""
    pids = []
    for path in sorted((shared / ACKS_FOLDER).glob("*.json")):
        pid = int(json.loads(path.read_text())["pid"])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        pids.append(pid)
    return pids


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


async def ignore(change: ModelChange) -> None:
    """Make nothing: a worker whose own changes are not under test."""


@contextlib.asynccontextmanager
async def two_workers(
    folder: Path, apply_there: Apply, *, poll_s: float = 0.05
) -> AsyncIterator[tuple[WorkerGroup, WorkerGroup]]:
    """Two started workers: ``here``, which makes the changes (its own checks an hour
    apart), and ``there``, which makes them after it every ``poll_s``; stopped after."""
    here = WorkerGroup(folder=folder, workers=2, poll_s=3600.0, worker_id="here")
    there = WorkerGroup(
        folder=folder, workers=2, poll_s=poll_s, worker_id="there", stream=io.StringIO()
    )
    await here.start(ignore)
    await there.start(apply_there)
    try:
        yield here, there
    finally:
        await here.stop()
        await there.stop()


def test_a_change_published_by_one_worker_is_made_by_the_others(tmp_path: Path) -> None:
    made: dict[str, list[ModelChange]] = {"a": [], "b": []}

    async def scenario() -> None:
        groups = {
            name: WorkerGroup(folder=tmp_path, workers=2, poll_s=3600.0) for name in ("a", "b")
        }
        for name, group in groups.items():

            async def apply(change: ModelChange, name: str = name) -> None:
                made[name].append(change)

            await group.start(apply)
        a, b = groups["a"], groups["b"]
        async with a.changing():
            await a.publish(ModelChange(name="iris", action="load", ref="iris@champion", version=2))
        async with b.changing():  # b catches up before its own change
            await b.publish(ModelChange(name="iris", action="unload"))
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


def test_a_worker_catching_up_makes_the_current_version_before_the_pinned_ones(
    tmp_path: Path,
) -> None:
    made: list[tuple[str, int, bool]] = []

    async def scenario() -> dict[str, Any]:
        first = WorkerGroup(folder=tmp_path, workers=2, poll_s=3600.0, worker_id="first")
        await first.publish(ModelChange(name="iris", action="load", ref="iris:1", version=1))
        await first.publish(
            ModelChange(name="iris", action="load", ref="iris:4", version=4, pinned=True)
        )
        await first.publish(
            ModelChange(name="iris", action="load", ref="iris:3", version=3, pinned=True)
        )
        # iris:3 becomes current: no longer pinned, and recorded after iris:4's pin.
        await first.publish(ModelChange(name="iris", action="load", ref="iris:3", version=3))
        later = WorkerGroup(folder=tmp_path, workers=2, poll_s=3600.0, worker_id="later")

        async def apply(change: ModelChange) -> None:
            made.append((change.action, change.version, change.pinned))

        await later.start(apply)
        async with later.changing():
            pass
        await later.stop()
        state: dict[str, Any] = json.loads((tmp_path / STATE_FILE).read_text())
        return state

    state = asyncio.run(scenario())
    assert sorted(state["models"]) == ["iris", "iris:4"]
    assert made == [("load", 3, False), ("load", 4, True)]


def test_unloading_every_version_drops_the_pinned_ones_from_the_desired_state() -> None:
    state = empty_state()
    record_change(state, ModelChange(name="iris", action="load", ref="iris:1", version=1))
    record_change(state, ModelChange(name="iris", action="load", version=2, pinned=True))
    unpinned = record_change(state, ModelChange(name="iris", action="unload", version=2))
    assert unpinned.seq == 3 and sorted(state["models"]) == ["iris", "iris:2"]
    record_change(state, ModelChange(name="iris", action="unload"))
    assert list(state["models"]) == ["iris"] and state["models"]["iris"]["action"] == "unload"
    assert state["seq"] == 4


def test_a_change_that_fails_is_tried_again(tmp_path: Path) -> None:
    attempts: list[int] = []
    stream = io.StringIO()

    async def scenario() -> None:
        first = WorkerGroup(folder=tmp_path, workers=2, poll_s=3600.0)
        second = WorkerGroup(folder=tmp_path, workers=2, poll_s=3600.0, stream=stream)

        async def flaky(change: ModelChange) -> None:
            attempts.append(change.seq)
            if len(attempts) == 1:
                raise OSError("store unreachable")

        await first.start(ignore)
        await second.start(flaky)
        await first.publish(ModelChange(name="iris", action="load", ref="iris:3", version=3))
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


def test_a_change_is_answered_once_every_worker_has_made_it(tmp_path: Path) -> None:
    made: list[ModelChange] = []

    async def slow(change: ModelChange) -> None:
        await asyncio.sleep(0.3)  # a model load
        made.append(change)

    async def scenario() -> None:
        async with two_workers(tmp_path, slow) as (here, _):
            async with here.changing():
                change = await here.publish(
                    ModelChange(name="iris", action="load", ref="iris:2", version=2)
                )
            assert made == []
            await here.follow(change, timeout_s=30.0)
            assert [c.seq for c in made] == [change.seq]  # made there before the answer

    asyncio.run(scenario())


def test_a_change_that_fails_on_another_worker_is_a_503_naming_it(tmp_path: Path) -> None:
    async def broken(change: ModelChange) -> None:
        raise MemoryError("no room for the model")

    async def scenario() -> WorkersLagging:
        async with two_workers(tmp_path, broken) as (here, _):
            change = await here.publish(
                ModelChange(name="iris", action="load", ref="iris:2", version=2)
            )
            started = time.monotonic()
            with pytest.raises(WorkersLagging) as caught:
                await here.follow(change, timeout_s=60.0)
            assert time.monotonic() - started < 30.0  # a failure is not waited out
        return caught.value

    error = asyncio.run(scenario())
    assert error.status_code == 503
    assert str(error) == (
        "workers: expected all 2 to serve 'iris' version 2 within 60 s, found 1 that do "
        "(worker there: failed (MemoryError: no room for the model)); the change stays "
        "recorded and the others keep trying"
    )


def test_a_failure_that_passes_on_the_next_poll_is_not_answered(tmp_path: Path) -> None:
    attempts: list[int] = []

    async def once_unreachable(change: ModelChange) -> None:
        attempts.append(change.seq)
        if len(attempts) == 1:
            raise OSError("store unreachable")

    async def scenario() -> None:
        async with two_workers(tmp_path, once_unreachable, poll_s=0.2) as (here, _):
            change = await here.publish(ModelChange(name="iris", action="unload"))
            await here.follow(change, timeout_s=30.0)  # no 503: made at the second try

    asyncio.run(scenario())
    assert attempts == [1, 1]


def test_a_tick_that_keeps_failing_is_reported_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class GoneStore(FolderStore):
        """The store of a server whose driver went away (Ray's actor with it)."""

        async def state(self, seen: object) -> tuple[object, dict[str, Any]] | None:
            raise ConnectionError("the sync actor is gone")

    async def scenario() -> None:
        group = WorkerGroup(store=GoneStore(tmp_path), workers=2, poll_s=0.01)

        await group.start(ignore)
        await asyncio.sleep(0.2)  # about 20 ticks
        await group.stop()

    asyncio.run(scenario())
    assert capsys.readouterr().err.count("readyml: workers: tick failed") == 1


def test_a_worker_that_does_not_follow_in_time_is_named(tmp_path: Path) -> None:
    async def scenario() -> str:
        here = WorkerGroup(folder=tmp_path, workers=3, poll_s=3600.0, worker_id="here")
        asleep = WorkerGroup(folder=tmp_path, workers=3, poll_s=3600.0, worker_id="asleep")

        await here.start(ignore)
        await asleep.start(ignore)
        await asyncio.sleep(0.05)  # both past their first check, the next in an hour
        change = await here.publish(ModelChange(name="iris", action="unload"))
        with pytest.raises(WorkersLagging) as caught:
            await here.follow(change, timeout_s=0.2)
        await here.stop()
        await asleep.stop()
        return str(caught.value)

    assert asyncio.run(scenario()) == (
        "workers: expected all 3 to stop serving 'iris' within 0.2 s, found 1 that do "
        "(worker #3: not started yet; worker asleep: not made yet); the change stays recorded "
        "and the others keep trying"
    )


def test_a_worker_that_ended_is_not_waited_for(tmp_path: Path) -> None:
    ended = subprocess.Popen(["true"])
    ended.wait()  # reaped: its pid runs nothing now
    (tmp_path / ACKS_FOLDER).mkdir()
    stale = {"pid": ended.pid, "applied": {}, "failed": {}}
    (tmp_path / ACKS_FOLDER / "gone.json").write_text(json.dumps(stale))

    async def scenario() -> None:
        async with two_workers(tmp_path, ignore) as (here, _):
            change = await here.publish(ModelChange(name="iris", action="unload"))
            await here.follow(change, timeout_s=30.0)

    asyncio.run(scenario())


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
