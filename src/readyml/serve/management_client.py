"""A client for a running server's management API (deploy, promote, rollback, rollout).

Used by the CLI and by retraining on alerts; plain ``urllib`` so it needs no extra package.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from typing import Any

from readyml.errors import ServeError

# Seconds a management call may take before the CLI gives up.
CALL_TIMEOUT_S = 60.0


class ManagementCallFailed(ServeError):
    """A management call to a running server failed or was refused."""

    status_code = 502


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
    request = urllib.request.Request(
        url.rstrip("/") + path, data=data, headers=headers, method="GET" if body is None else "POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        with contextlib.suppress(ValueError):
            text = json.loads(text).get("error", text)
        raise ManagementCallFailed(f"{url}{path}: server answered {error.code}: {text}") from None
    except (urllib.error.URLError, OSError) as error:
        raise ManagementCallFailed(
            f"{url}{path}: expected a running server, found {error}"
        ) from None
