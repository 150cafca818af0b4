"""A client for a running server's management API (deploy, promote, rollback, rollout).

Used by the CLI and by retraining on alerts; plain ``urllib`` so it needs no extra package.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

from readyml.errors import AliasError, ReadymlError, ServeError
from readyml.registry import CHAMPION, AliasEvent, Registry
from readyml.registry.reports import keep_json_report, key_part, stamp
from readyml.types import Evidence

# Seconds a management call may take before the CLI gives up.
CALL_TIMEOUT_S = 60.0
ROLLOUT_PATH = "/v2/management/rollout"
ROLLBACK_PATH = "/v2/management/rollback"
# Rollout states in which the candidate still receives traffic or mirrored requests.
RUNNING_STATES = ("shadow", "canary")


class ManagementCallFailed(ServeError):
    """A management call to a running server failed or was refused.

    Args:
        message: What failed.
        answered: The server's HTTP status, when it answered at all.
    """

    status_code = 502

    def __init__(self, message: str, *, answered: int | None = None) -> None:
        super().__init__(message)
        self.answered = answered


def management_call(
    url: str, path: str, body: dict[str, Any] | None = None, *, token_env: str
) -> dict[str, Any]:
    """POST ``body`` (or GET when ``None``) to the server's management API with the token.

    Raises:
        ManagementCallFailed: ``url`` is not an http(s) URL, or the server is unreachable
            or answered an error.
    """
    check_url(url)
    headers = {"Content-Type": "application/json"}
    token = os.environ.get(token_env)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        headers=headers,
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        with contextlib.suppress(ValueError):
            text = json.loads(text).get("error", text)
        raise ManagementCallFailed(
            f"{url}{path}: server answered {error.code}: {text}", answered=error.code
        ) from None
    except (urllib.error.URLError, OSError) as error:
        raise ManagementCallFailed(
            f"{url}{path}: expected a running server, found {error}"
        ) from None


def check_url(url: str) -> None:
    """Refuse anything but an ``http://`` or ``https://`` URL with a host, at once.

    (``urllib`` would try other schemes, e.g. ``ftp://``, and time out only after a minute.)

    Raises:
        ManagementCallFailed: ``url`` is not such a URL.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ManagementCallFailed(
            f"url: expected the http:// or https:// URL of a running server, found {url!r}"
        )


def rollback_model(
    registry: Registry,
    name: str,
    *,
    project: str,
    who: str,
    reason: str,
    url: str | None = None,
    token_env: str = "READYML_SERVE_TOKEN",
) -> dict[str, Any]:
    """Roll ``name`` back: abort its running rollout, or move ``champion`` back.

    With ``url`` the server is asked first, with an authorized call, so that an unreachable
    server or a refused token fails before anything moves. When a rollout of ``name`` runs
    there, it is aborted: the stable version keeps serving and ``champion``, which the
    candidate never held, stays where it is. Otherwise ``champion`` moves back
    (``registry.rollback``) and the server is told to serve it; when the server refuses
    that, the move is undone (audited) before the error is raised.

    When the server serves another version than ``champion`` (it was given one directly:
    ``readyml deploy --mode direct``), or ``champion`` never moved, what is undone is that
    version: the server goes back to the champion, and the registry is left as it is.

    The wall time of the whole rollback is measured and recorded as evidence ``infra-7``
    (ML Test Score: models can be quickly and safely rolled back).

    Raises:
        AliasError: ``champion`` never moved and no ``url`` was given.
        ManagementCallFailed: the server is unreachable or refused the call.
    """
    started_s = time.monotonic()
    served: dict[str, Any] | None = None
    running = _running_rollout(url, name, token_env) if url is not None else None
    if url is not None and running is not None:
        served = _abort_rollout(url, name, running, reason=reason, token_env=token_env)
        action = f"aborted the rollout of version {running['candidate_version']}"
        from_version, to_version = running["candidate_version"], running["stable_version"]
        registry_state = "unchanged"
    elif url is not None:
        from_version, to_version, served = _rollback_champion(
            registry, name, url, who=who, reason=reason, token_env=token_env
        )
        action = "rolled champion back" if from_version is not None else "served champion again"
        registry_state = "rolled back" if from_version is not None else "unchanged"
    else:
        event = registry.rollback(name, who=who, reason=reason)
        from_version, to_version = event.from_version, event.to_version
        action, registry_state = "rolled champion back", "rolled back"
    result: dict[str, Any] = {
        "model": name,
        "action": action,
        "from_version": from_version,
        "to_version": to_version,
        "registry": registry_state,
        "server": url,
        "seconds": time.monotonic() - started_s,
    }
    details = {**result, "reason": reason, "served": served}
    key = f"rollbacks/{key_part(name)}/{stamp(datetime.now(UTC))}.json"
    # The rollback is done: a record that cannot be kept must not report it failed.
    artifact = keep_json_report(registry, key, {"who": who, **details}, what=f"rollback of {name}")
    registry.add_evidence(
        Evidence(
            test_id="infra-7",
            passed=True,
            automated=True,
            project=project,
            details=details,
            model_name=name,
            version=to_version,
            artifact=artifact,
        )
    )
    return result


def _running_rollout(url: str, name: str, token_env: str) -> dict[str, Any] | None:
    """The rollout of ``name`` running on the server, if any (an authorized call)."""
    status = management_call(url, ROLLOUT_PATH, token_env=token_env)
    for rollout in status.get("rollouts", []):
        if rollout.get("model") == name and rollout.get("state") in RUNNING_STATES:
            return dict(rollout)
    return None


def _abort_rollout(
    url: str, name: str, running: dict[str, Any], *, reason: str, token_env: str
) -> dict[str, Any]:
    """Abort the running rollout of ``name``; the stable version keeps serving.

    Raises:
        ManagementCallFailed: The server refused, or the rollout ended before the call
            (the server then serves its champion again).
    """
    body = {"model": name, "reason": reason}
    answer = management_call(url, ROLLBACK_PATH, body, token_env=token_env)
    if answer.get("state") != "rolled_back":
        raise ManagementCallFailed(
            f"{url}{ROLLBACK_PATH}: expected the rollout of version "
            f"{running['candidate_version']} to be running, found it ended before the abort "
            f"(the server serves champion version {answer.get('version')}); check "
            "`readyml rollout` and roll back again if needed"
        )
    return answer


def _rollback_champion(
    registry: Registry, name: str, url: str, *, who: str, reason: str, token_env: str
) -> tuple[int | None, int | None, dict[str, Any]]:
    """Move ``champion`` back (unless the server serves another version) and serve it.

    Returns ``(from_version, to_version, server answer)``; ``from_version`` is ``None`` when
    the registry was left as it is.

    Raises:
        ManagementCallFailed: The server refused; a ``champion`` move made here is undone.
    """
    champion = registry.get(f"{name}@{CHAMPION}").version
    served_before = _served_version(url, name, token_env)
    event: AliasEvent | None = None
    if served_before is None or served_before == champion:
        # Otherwise the server was given another version directly: undo that, not the registry.
        with contextlib.suppress(AliasError):
            event = registry.rollback(name, who=who, reason=reason)
    body = {"model": name, "reload": True, "reason": reason}
    try:
        served = management_call(url, ROLLBACK_PATH, body, token_env=token_env)
    except ManagementCallFailed as exc:
        if event is None:
            raise
        undone = _undo_move(registry, name, event, who=who, refusal=str(exc))
        raise ManagementCallFailed(f"{exc}; {undone}", answered=exc.answered) from None
    if event is None:
        return None, champion, served
    return event.from_version, event.to_version, served


def _undo_move(registry: Registry, name: str, event: AliasEvent, *, who: str, refusal: str) -> str:
    """Point ``champion`` back where ``event`` took it from; say what became of it."""
    current = registry.get(f"{name}@{CHAMPION}").version
    if current != event.to_version or event.from_version is None:
        return f"champion was moved meanwhile and is left at version {current}"
    try:
        registry.set_alias(
            name,
            CHAMPION,
            event.from_version,
            who=who,
            reason=f"undo rollback: the server refused it: {refusal}",
        )
    except ReadymlError as exc:
        return f"champion is left at version {current}: undoing the move failed: {exc}"
    return f"champion moved back to version {event.from_version} (rollback undone)"


def _served_version(url: str, name: str, token_env: str) -> int | None:
    """The version of ``name`` the server at ``url`` serves (``None``: it serves none)."""
    try:
        metadata = management_call(url, f"/v2/models/{name}", token_env=token_env)
    except ManagementCallFailed as exc:
        if exc.answered == 404:
            return None
        raise
    versions = metadata.get("versions") or []
    return int(versions[0]) if versions else None
