"""``readyml rollback --url``: a running rollout is aborted, and nothing moves on a failure."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner, Result

from readyml.cli.rollout import app as rollout_cli

from .conftest import TOKEN, Server, serve_process, train_iris
from .test_rollout import FAST_STEPS, deploy, register, registry_of, rollout_state, served_version

SERVING: dict[str, Any] = {"request_log": {"enabled": False}, "access_log": False}
# A canary that stays at its first step (half the traffic) until it is stopped.
HELD_CANARY: dict[str, Any] = {**FAST_STEPS, "steps": [50, 100], "step_duration_s": 600.0}


def rollback(root: Path, url: str, *extra: str, token: str = TOKEN) -> Result:
    arguments = ["rollback", "iris", "--project", str(root), "--url", url, *extra]
    return CliRunner().invoke(rollout_cli, arguments, env={"READYML_SERVE_TOKEN": token})


def versions_served(client: httpx.Client, requests: int = 30) -> set[str]:
    return {served_version(client) for _ in range(requests)}


def start_held_canary(server: Server, client: httpx.Client, candidate: int) -> None:
    """Deploy ``candidate`` as a canary and wait until it answers live requests."""
    answer = deploy(client, candidate, rollout=HELD_CANARY)
    assert answer.status_code == 200, answer.text
    assert str(candidate) in versions_served(client, 60), server.log.read_text()


def test_rollback_during_a_canary_aborts_it_and_leaves_champion_alone(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving=SERVING)
    candidate = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    registry = registry_of(root)
    registry.promote(f"iris:{candidate}", who="tests", reason="ship")
    registry.rollback("iris", who="tests", reason="v2 bad")  # champion 1 -> 2 -> 1
    moves = len(registry.history("iris", "champion"))
    with serve_process(root) as server, server.client() as client:
        start_held_canary(server, client, candidate)
        result = rollback(root, server.url, "--reason", "abort the canary", "--format", "json")
        assert result.exit_code == 0, result.output
        assert versions_served(client) == {"1"}
        state = rollout_state(client)
    report = json.loads(result.output)
    assert report["action"] == f"aborted the rollout of version {candidate}"
    assert (report["from_version"], report["to_version"], report["registry"]) == (
        candidate,
        1,
        "unchanged",
    )
    assert registry.get("iris@champion").version == 1
    assert len(registry.history("iris", "champion")) == moves
    assert state["state"] == "rolled_back" and state["decisions"][-1]["reason"] == (
        "abort the canary"
    )
    assert registry.history("iris", "canary")[-1].reason == "rollback: abort the canary"
    assert (
        registry.list_evidence("iris", test_id="infra-7")[-1].details["action"]
        == (report["action"])
    )


def test_rollback_during_a_canary_keeps_the_moved_champion_then_rolls_it_back(
    tmp_path: Path,
) -> None:
    root = train_iris(tmp_path, serving=SERVING)
    stable = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    candidate = register(root, lambda: LogisticRegression(max_iter=500, C=0.8))
    registry = registry_of(root)
    registry.promote(f"iris:{stable}", who="tests", reason="champion moved once")
    with serve_process(root) as server, server.client() as client:
        start_held_canary(server, client, candidate)
        aborted = rollback(root, server.url, "--format", "json")
        assert aborted.exit_code == 0, aborted.output
        assert versions_served(client) == {str(stable)}
        assert registry.get("iris@champion").version == stable
        # No rollout runs any more: the next rollback moves champion back and serves it.
        again = rollback(root, server.url, "--format", "json")
        assert again.exit_code == 0, again.output
        assert versions_served(client) == {"1"}
    assert json.loads(aborted.output)["to_version"] == stable
    report = json.loads(again.output)
    assert (report["action"], report["from_version"], report["to_version"]) == (
        "rolled champion back",
        stable,
        1,
    )
    assert registry.get("iris@champion").version == 1


def test_failed_rollback_leaves_champion_where_it_was(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving=SERVING)
    stable = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    registry = registry_of(root)
    registry.promote(f"iris:{stable}", who="tests", reason="champion moved once")
    moves = len(registry.history("iris", "champion"))
    for url, expected in (
        ("http://127.0.0.1:9", "expected a running server"),
        ("ftp://127.0.0.1:9", "url: expected the http:// or https:// URL"),
    ):
        result = rollback(root, url)
        assert result.exit_code == 2 and expected in result.output, result.output
        assert len(registry.history("iris", "champion")) == moves
    with serve_process(root) as server, server.client() as client:
        refused = rollback(root, server.url, token="wrong")
        assert refused.exit_code == 2, refused.output
        assert "answered 401" in refused.output
        assert len(refused.output.strip().splitlines()) == 1
        assert len(registry.history("iris", "champion")) == moves
        # The server accepts the token but cannot load version 1 (its files are corrupt):
        # champion moved to 1 first, so the move is undone and the error says so.
        kept = {a.key for a in registry.get(f"iris:{stable}").artifacts}
        for artifact in registry.get("iris:1").artifacts:
            if artifact.key not in kept:
                (Path(registry.artifacts.root) / artifact.key).write_bytes(b"corrupt")
        failed = rollback(root, server.url)
        assert failed.exit_code == 2, failed.output
        assert f"champion moved back to version {stable} (rollback undone)" in failed.output
        assert len(failed.output.strip().splitlines()) == 1
        assert versions_served(client) == {str(stable)}
    history = registry.history("iris", "champion")
    assert registry.get("iris@champion").version == stable
    assert [(event.from_version, event.to_version) for event in history[moves:]] == [
        (stable, 1),
        (1, stable),
    ]
    assert history[-1].reason.startswith("undo rollback: the server refused it: ")


def test_non_http_url_is_refused_at_once(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving=SERVING)
    started_s = time.monotonic()
    for arguments in (
        ["deploy", "iris:1", "--url", "ftp://127.0.0.1:9"],
        ["rollout", "--url", "file:///tmp"],
        ["rollback", "iris", "--url", "ftp://127.0.0.1:9"],
    ):
        result = CliRunner().invoke(rollout_cli, [*arguments, "--project", str(root)])
        assert result.exit_code == 2, result.output
        assert "url: expected the http:// or https:// URL of a running server, found" in (
            result.output
        )
        assert len(result.output.strip().splitlines()) == 1
    assert time.monotonic() - started_s < 5.0
    assert len(registry_of(root).history("iris", "champion")) == 1
