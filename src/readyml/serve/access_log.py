"""Structured JSON access logs: one line per request, buffered and written in the background.

A line holds when, which request id, method, path, status, latency, model and version. It
never holds headers or bodies, so tokens and inputs cannot leak into logs.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, TextIO

import orjson

# Lines held before a write is forced (the periodic flush usually comes first).
MAX_BUFFERED_LINES = 10_000


class AccessLog:
    """Collect access lines and write them to ``stream`` on :meth:`flush`.

    Args:
        stream: Where lines go (standard error by default).
    """

    def __init__(self, *, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._lines: list[bytes] = []
        self.dropped_lines = 0

    def record(
        self,
        *,
        request_id: str,
        method: str,
        path: str,
        status: int,
        latency_s: float,
        model: str | None,
        version: str | None,
    ) -> None:
        """Buffer one line; never raises."""
        if len(self._lines) >= MAX_BUFFERED_LINES:
            self.dropped_lines += 1
            return
        entry: dict[str, Any] = {
            "ts": round(time.time(), 6),
            "event": "access",
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "latency_ms": round(latency_s * 1000, 3),
        }
        if model is not None:
            entry["model"] = model
            entry["version"] = version
        self._lines.append(orjson.dumps(entry))

    def flush(self) -> None:
        """Write the buffered lines."""
        lines, self._lines = self._lines, []
        if not lines:
            return
        stream = self.stream if self.stream is not None else sys.stderr
        with contextlib.suppress(OSError, ValueError):
            stream.write(b"\n".join(lines).decode() + "\n")
            stream.flush()
