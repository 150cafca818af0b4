"""A client for a running server's management API (deploy, promote, rollback, rollout).

Used by the CLI and by retraining on alerts; plain ``urllib`` so it needs no extra package.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

from readyml.errors import AliasError, ServeError
from readyml.registry import CHAMPION, Registry
from readyml.types import Evidence

# Seconds a management call may take before the CLI gives up.
CALL_TIMEOUT_S = 60.0


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
        ManagementCallFailed: The server is unreachable or answered an error.
    """
    headers = {"Content-Type": "application/json"}
    token = os.environ.get(token_env)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    try:
        request = urllib.request.Request(
            url.rstrip("/") + path,
            data=data,
            headers=headers,
            method="GET" if body is None else "POST",
        )
    except ValueError:
        raise ManagementCallFailed(
            f"url: expected the http:// URL of a running server, found {url!r}"
        ) from None
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
    """Move ``champion`` back to its previous version and tell the server at ``url``.

    The wall time of the whole rollback is measured and recorded as evidence ``infra-7``
    (ML Test Score: models can be quickly and safely rolled back).

    When the server at ``url`` serves another version than ``champion`` (it was given one
    directly: ``readyml deploy --mode direct``), or ``champion`` never moved, what is undone
    is that version: the server goes back to the champion, and the registry is left as it is.

    Raises:
        AliasError: ``champion`` never moved and no ``url`` was given.
        ManagementCallFailed: the server is unreachable or refused the reload.
    """
    started_s = time.monotonic()
    champion = registry.get(f"{name}@{CHAMPION}").version if url is not None else None
    served_before = _served_version(url, name, token_env) if url is not None else None
    if served_before is not None and served_before != champion:
        # The server was given another version directly: undo that, not the registry.
        from_version, to_version = None, champion
    else:
        try:
            event = registry.rollback(name, who=who, reason=reason)
            from_version, to_version = event.from_version, event.to_version
        except AliasError:
            if url is None:
                raise
            from_version, to_version = None, champion
    served: dict[str, Any] | None = None
    if url is not None:
        body = {"model": name, "reload": True, "reason": reason}
        served = management_call(url, "/v2/management/rollback", body, token_env=token_env)
    result: dict[str, Any] = {
        "model": name,
        "from_version": from_version,
        "to_version": to_version,
        "registry": "rolled back" if from_version is not None else "unchanged",
        "server": url,
        "seconds": time.monotonic() - started_s,
    }
    registry.add_evidence(
        Evidence(
            test_id="infra-7",
            passed=True,
            automated=True,
            project=project,
            details={**result, "reason": reason, "served": served},
            model_name=name,
            version=to_version,
        )
    )
    return result


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
