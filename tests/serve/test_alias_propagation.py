"""Many servers, one registry: a moved alias reaches every server, and no request fails.

The integration test runs two ``readyml serve`` processes, each in its own project folder,
on one PostgreSQL metadata store and one S3-compatible artifact store; the unit-level tests
drive one server's :class:`AliasWatcher` tick by tick, in process, on a local registry.
"""

from __future__ import annotations

import asyncio
import doctest
import io
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from readyml.cli.models import app as models_cli
from readyml.config import Project
from readyml.registry import ModelVersion, Registry
from readyml.serve import alias_watch
from readyml.serve.alias_watch import ReloadOutcome
from readyml.serve.app import ServingApp
from readyml.serve.server import build_app
from readyml.types import ModelRef

from .conftest import TOKEN, Server, serve_process, train_iris
from .test_rollout import Traffic, infer_body, register, register_nan, registry_of

POLL_S = 0.5
SERVING: dict[str, Any] = {
    "alias_poll_s": POLL_S,
    "request_log": {"enabled": False},
    "access_log": False,
}
# Longest wait for a moved alias to reach every server (s): a few polls plus loading the
# version from S3 and validating it, on a busy two-core machine.
PROPAGATION_TIMEOUT_S = 20.0


def test_doctests_pass() -> None:
    result = doctest.testmod(alias_watch)
    assert result.failed == 0 and result.attempted > 0


# -- real processes on PostgreSQL and S3 ---------------------------------------------------


def copy_project(root: Path, dest: Path) -> Path:
    """The project's files (spec, schema, data) in another folder, with no workspace."""
    shutil.copytree(root, dest, ignore=shutil.ignore_patterns(".readyml", "server-*.log"))
    return dest


def answered_version(server: Server) -> str:
    with server.client() as client:
        answer = client.post("/v2/models/iris/infer", json=infer_body())
    assert answer.status_code == 200, answer.text
    version: str = answer.json()["model_version"]
    return version


def wait_until_serving(servers: Sequence[Server], version: int) -> float:
    """Seconds until every server answers with ``version``."""
    started_s = time.monotonic()
    waiting = list(servers)
    while waiting:
        waiting = [server for server in waiting if answered_version(server) != str(version)]
        if time.monotonic() - started_s > PROPAGATION_TIMEOUT_S:
            logs = "\n".join(server.log.read_text(errors="replace")[-2000:] for server in waiting)
            pytest.fail(f"version {version} did not reach {[s.url for s in waiting]}:\n{logs}")
        time.sleep(0.05)
    return time.monotonic() - started_s


def changes(versions: list[str]) -> list[str]:
    """The versions in the order they first appear after a change: ``1 1 2 2 1`` → ``1 2 1``."""
    return [v for index, v in enumerate(versions) if index == 0 or v != versions[index - 1]]


@pytest.mark.postgres
@pytest.mark.s3
@pytest.mark.slow
def test_champion_moves_reach_every_server_without_a_failed_request(
    tmp_path: Path, pg_database_url: str, s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("READYML_STORE_URL", pg_database_url)
    monkeypatch.setenv("READYML_ARTIFACTS_URL", s3_url)
    first = train_iris(tmp_path / "first", serving=SERVING)
    second = copy_project(first, tmp_path / "second")
    candidate = register(first, lambda: LogisticRegression(max_iter=500, C=0.5))
    registry = registry_of(first)
    assert registry.store.dialect == "postgresql"
    assert registry.artifacts.url_for("x").startswith("s3://")

    with serve_process(first) as one, serve_process(second) as two:
        servers = [one, two]
        with Traffic(one) as traffic_one, Traffic(two) as traffic_two:
            wait_until_serving(servers, 1)
            registry.promote(f"iris:{candidate}", who="tests", reason="second version")
            promoted_s = wait_until_serving(servers, candidate)
            result = CliRunner().invoke(
                models_cli,
                ["rollback", "iris", "--project", str(second), "--reason", "back to one"],
            )
            assert result.exit_code == 0, result.output
            rolled_back_s = wait_until_serving(servers, 1)
            time.sleep(POLL_S)  # traffic on version 1 after the rollback
        metrics = []
        for server in servers:
            with server.client() as client:
                metrics.append(client.get("/metrics").text)

    assert promoted_s < PROPAGATION_TIMEOUT_S and rolled_back_s < PROPAGATION_TIMEOUT_S
    for traffic in (traffic_one, traffic_two):
        failed = [answer for answer in traffic.answers if answer[0] != 200]
        assert len(traffic.answers) > 20 and failed == []
        versions = [version for _, version in traffic.answers]
        assert set(versions) == {"1", str(candidate)}
        # Each server swapped once each way: no answer from a half-loaded or flapping table.
        assert changes(versions) == ["1", str(candidate), "1"]
    for text in metrics:
        assert 'readyml_alias_reloads_total{model="iris",outcome="swapped"} 2.0' in text
        assert 'outcome="error"' not in text


# -- one server's watcher, tick by tick ------------------------------------------------------


class FlakyRegistry(Registry):
    """A project's registry whose reads fail while ``down`` is set, as in a store outage."""

    def __init__(self, inner: Registry) -> None:
        super().__init__(inner.store, inner.artifacts)
        self.down = False

    def get(self, ref: str | ModelRef) -> ModelVersion:
        if self.down:
            raise OperationalError("SELECT aliases", {}, ConnectionRefusedError("refused"))
        return super().get(ref)


def local_app(root: Path, registry: Registry, models: Sequence[str] = ()) -> ServingApp:
    return build_app(Project.load(root), models=models, registry=registry, token=TOKEN)


async def served(app: ServingApp) -> str:
    """The version that answers a prediction request now."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
        answer = await client.post("/v2/models/iris/infer", json=infer_body())
    assert answer.status_code == 200, answer.text
    version: str = answer.json()["model_version"]
    return version


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_registry_error_during_a_poll_keeps_the_server_serving(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving=SERVING)
    second = register(root, lambda: LogisticRegression(max_iter=500, C=0.5))
    registry = FlakyRegistry(registry_of(root))
    app = local_app(root, registry)
    watcher = app.alias_watcher
    assert watcher is not None and watcher.poll_s == POLL_S
    watcher.stream = stream = io.StringIO()

    async def scenario() -> None:
        try:
            registry.promote(f"iris:{second}", who="tests", reason="move while down")
            registry.down = True
            assert await watcher.poll() == {"iris": ReloadOutcome.ERROR}
            assert await watcher.poll() == {"iris": ReloadOutcome.ERROR}
            assert await served(app) == "1"
            registry.down = False
            assert await watcher.poll() == {"iris": ReloadOutcome.SWAPPED}
            assert await served(app) == str(second)
            assert await watcher.poll() == {"iris": ReloadOutcome.UNCHANGED}
        finally:
            await app.shutdown()

    asyncio.run(scenario())
    text = app.metrics.render().decode()
    assert 'readyml_alias_reloads_total{model="iris",outcome="error"} 2.0' in text
    assert 'readyml_alias_reloads_total{model="iris",outcome="swapped"} 1.0' in text
    errors, swap = lines(stream)[:2], lines(stream)[2]
    assert all("OperationalError" in line["error"] for line in errors)
    assert swap["outcome"] == "swapped" and (swap["from_version"], swap["to_version"]) == (1, 2)


def test_failed_ticks_back_off_up_to_a_limit() -> None:
    assert alias_watch.backoff_s(0.5, 0) == 0.5
    assert alias_watch.backoff_s(0.5, 3) == 4.0
    assert alias_watch.backoff_s(0.5, 1000) == alias_watch.MAX_BACKOFF_S
    assert alias_watch.backoff_s(60.0, 5) == 60.0


def test_model_served_by_version_is_never_moved(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving=SERVING)
    second = register(root, lambda: LogisticRegression(max_iter=500, C=0.5))
    registry = registry_of(root)
    app = local_app(root, registry, models=["iris:1"])
    assert app.alias_watcher is not None and app.alias_watcher.followed == {}

    async def scenario() -> None:
        try:
            registry.promote(f"iris:{second}", who="tests", reason="not followed")
            assert app.alias_watcher is not None
            assert await app.alias_watcher.poll() == {}
            assert await served(app) == "1"
        finally:
            await app.shutdown()

    asyncio.run(scenario())


def test_version_failing_infra_validation_is_refused_once(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving=SERVING)
    broken = register_nan(root)
    registry = registry_of(root)
    app = local_app(root, registry)
    watcher = app.alias_watcher
    assert watcher is not None
    watcher.stream = io.StringIO()

    async def scenario() -> None:
        try:
            registry.promote(f"iris:{broken}", who="tests", reason="passes the gate, not infra")
            assert await watcher.poll() == {"iris": ReloadOutcome.REFUSED}
            assert await watcher.poll() == {"iris": ReloadOutcome.UNCHANGED}
            assert await served(app) == "1"
        finally:
            await app.shutdown()

    asyncio.run(scenario())
    refused = [e for e in registry.list_evidence("iris", test_id="infra-6") if e.version == broken]
    assert len(refused) == 1 and not refused[0].passed


def test_running_rollout_decides_and_the_watcher_waits(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving=SERVING)
    second = register(root, lambda: LogisticRegression(max_iter=500, C=0.5))
    registry = registry_of(root)
    app = local_app(root, registry)
    watcher, rollouts = app.alias_watcher, app.rollouts
    assert watcher is not None and rollouts is not None
    watcher.stream = io.StringIO()

    async def scenario() -> None:
        try:
            overrides = {"step_duration_s": 600.0}
            await rollouts.deploy("iris", second, mode="canary", overrides=overrides)
            registry.promote(f"iris:{second}", who="tests", reason="during the rollout")
            assert await watcher.poll() == {"iris": ReloadOutcome.SKIPPED}
            assert app.table.get("iris").version == 1
            await rollouts.rollback("iris", reason="by hand")
            assert await watcher.poll() == {"iris": ReloadOutcome.SWAPPED}
            assert await served(app) == str(second)
        finally:
            await app.shutdown()

    asyncio.run(scenario())
