"""Load shedding: a tiny queue under a burst answers 503 + Retry-After, and keeps serving."""

from __future__ import annotations

import asyncio
import time

import httpx

from .conftest import ROW, TOKEN, Server

BURST = 300
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_overload_sheds_with_503_and_retry_after_and_stays_up(guarded_server: Server) -> None:
    server = guarded_server

    async def burst() -> list[tuple[int, str | None, float]]:
        limits = httpx.Limits(max_connections=BURST)
        async with httpx.AsyncClient(
            base_url=server.url, limits=limits, timeout=60, headers=AUTH
        ) as client:

            async def one() -> tuple[int, str | None, float]:
                started = time.monotonic()
                answer = await client.post("/predict", json=[ROW])
                elapsed = time.monotonic() - started
                return answer.status_code, answer.headers.get("retry-after"), elapsed

            return await asyncio.gather(*(one() for _ in range(BURST)))

    results = asyncio.run(burst())
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 503}
    shed = [r for r in results if r[0] == 503]
    assert shed, "expected some requests to be shed"
    assert all(retry is not None and int(retry) >= 1 for _, retry, _ in shed)
    assert statuses.count(200) > 0
    assert server.process.poll() is None
    with server.client(headers=AUTH) as client:
        assert client.post("/predict", json=[ROW]).status_code == 200
        metrics = client.get("/metrics").text
    assert 'readyml_rejected_requests_total{model="iris",reason="overloaded"}' in metrics
