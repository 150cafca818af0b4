"""The demo's canary step: roll a second blessed version out against a real server process.

The server serves the champion; the candidate (the newest other blessed version) is
deployed with short canary steps while a client thread replays the champion's recorded
input rows; the controller promotes or rolls back on its own. Nothing is trained here.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from readyml.config import Project
from readyml.errors import ServeError
from readyml.registry import CHAMPION, Registry
from readyml.serve.demo import STOP_TIMEOUT_S, demo_server
from readyml.serve.management_client import rollback_model

# Short steps so that the demo's rollout takes seconds (production uses readyml.yaml's).
DEMO_ROLLOUT: dict[str, Any] = {
    "steps": [25.0, 50.0, 100.0],
    "step_duration_s": 0.5,
    "min_requests": 10,
    "tick_s": 0.1,
    "latency_slack_ms": 50.0,
}
# Longest wait for the controller's final decision (s).
DECISION_TIMEOUT_S = 60.0
_FINAL = ("promoted", "rolled_back")


def _call(url: str, token: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result
    except urllib.error.HTTPError as error:
        raise ServeError(f"{url}: server answered {error.code}: {error.read().decode()}") from None


def canary_demo(project: Project, registry: Registry, *, drill: bool = False) -> dict[str, Any]:
    """Canary-roll the newest non-champion blessed version; return the decisions.

    With ``drill``, a promoted candidate then goes through a rollback drill under the same
    traffic: the previous champion is rolled back in (registry and server, timed, evidence
    ``infra-7``), and the candidate is promoted again.

    Returns:
        ``model``, ``stable_version``, ``candidate_version``, final ``state``, the
        ``decisions`` (action, weight, reason with the numbers), ``requests`` sent, and the
        ``drill`` (the rollback's versions and seconds; ``None`` without one).

    Raises:
        ServeError: There is no second blessed version, or the server did not start.
    """
    name = project.spec.name
    champion = registry.get(f"{name}@{CHAMPION}")
    others = [
        v
        for v in registry.list_versions(name)
        if v.status == "blessed" and v.version != champion.version
    ]
    if not others:
        raise ServeError(f"model {name!r}: expected a blessed version besides the champion")
    candidate = max(others, key=lambda v: v.version)
    rows = [dict(row) for row in champion.input_example] or [
        dict(row) for row in candidate.input_example
    ]
    token = secrets.token_hex(16)
    env = {**os.environ, project.spec.serving.token_env: token}
    rolled: dict[str, Any] | None = None
    stop = threading.Event()
    sent = [0]

    def traffic(url: str) -> None:
        body = json.dumps(rows).encode()
        while not stop.is_set():
            request = urllib.request.Request(
                f"{url}/predict", data=body, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    answer.read()
            except (urllib.error.URLError, OSError):
                time.sleep(0.01)
            sent[0] += 1

    with demo_server(project, env=env) as url:
        client = threading.Thread(target=traffic, args=(url,), daemon=True)
        client.start()
        try:
            body = {
                "model": name,
                "version": candidate.version,
                "mode": "canary",
                "rollout": DEMO_ROLLOUT,
            }
            state = _call(f"{url}/v2/management/deploy", token, body)
            deadline = time.monotonic() + DECISION_TIMEOUT_S
            while state.get("state") not in _FINAL and time.monotonic() < deadline:
                time.sleep(0.1)
                rollouts = _call(f"{url}/v2/management/rollout", token)["rollouts"]
                state = next((r for r in rollouts if r["model"] == name), state)
            if drill and state.get("state") == "promoted":
                rolled = _rollback_drill(project, registry, url, token, candidate.version)
        finally:
            stop.set()
            client.join(timeout=STOP_TIMEOUT_S)
    return {
        "model": name,
        "stable_version": champion.version,
        "candidate_version": candidate.version,
        "state": state.get("state"),
        "decisions": state.get("decisions", []),
        "requests": sent[0],
        "drill": rolled,
    }


def _rollback_drill(
    project: Project, registry: Registry, url: str, token: str, version: int
) -> dict[str, Any]:
    """Roll the champion back (timed, recorded), then promote ``version`` again."""
    name = project.spec.name
    token_env = project.spec.serving.token_env
    previous = os.environ.get(token_env)
    os.environ[token_env] = token  # the management client reads the token from there
    try:
        result = rollback_model(
            registry,
            name,
            project=name,
            who="readyml-demo",
            reason="rollback drill",
            url=url,
            token_env=token_env,
        )
        registry.promote(f"{name}:{version}", who="readyml-demo", reason="after the drill")
        _call(f"{url}/v2/management/rollback", token, {"model": name, "reload": True})
    finally:
        if previous is None:
            os.environ.pop(token_env, None)
        else:
            os.environ[token_env] = previous
    return result
