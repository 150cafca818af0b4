"""The server's report pages: ``/ui/monitoring`` and ``/ui/score``.

``/ui/monitoring`` shows the newest report that ``readyml monitor --report`` wrote (running the
checks on a page view would record evidence and send alerts as a side effect of a GET).
``/ui/score`` computes the ML Test Score from the evidence on each view: it only reads.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from readyml.config import Project
from readyml.registry import Registry
from readyml.serve._http import ASGIApp, Receive, Scope, Send, send_bytes, send_json

HTML = b"text/html; charset=utf-8"


async def _refuse_other_methods(scope: Scope, send: Send) -> bool:
    if scope["method"] in ("GET", "HEAD"):
        return False
    found = scope["method"]
    await send_json(
        send,
        405,
        {
            "error": f"method: expected GET, found {found}",
            "field": "method",
            "expected": "GET",
            "found": found,
        },
    )
    return True


def newest_monitoring_report(workspace: Path) -> Path | None:
    """The most recent ``monitoring-*.html`` under ``.readyml/reports``."""
    reports = sorted((workspace / "reports").glob("monitoring-*.html"))
    return reports[-1] if reports else None


def monitoring_page(workspace: Path) -> ASGIApp:
    """An ASGI app answering with the newest monitoring report."""

    async def page(scope: Scope, receive: Receive, send: Send) -> None:
        if await _refuse_other_methods(scope, send):
            return
        path = newest_monitoring_report(workspace)
        if path is None:
            await send_json(
                send,
                404,
                {"error": "no monitoring report yet; run 'readyml monitor --report' first"},
            )
            return
        await send_bytes(send, 200, await asyncio.to_thread(path.read_bytes), content_type=HTML)

    return page


def score_page(project: Project, registry: Registry) -> ASGIApp:
    """An ASGI app answering with the project's ML Test Score report."""
    from readyml.score import render_score_html, score_project

    def render() -> bytes:
        return render_score_html(score_project(project, registry)).encode("utf-8")

    async def page(scope: Scope, receive: Receive, send: Send) -> None:
        if await _refuse_other_methods(scope, send):
            return
        await send_bytes(send, 200, await asyncio.to_thread(render), content_type=HTML)

    return page
