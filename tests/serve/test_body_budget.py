"""Request bodies in flight: bytes counted as they arrive, late bodies refused 408."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from readyml.config import ServingSpec
from readyml.serve._http import (
    BodiesOverBudget,
    BodyBudget,
    BodyTimeout,
    Message,
    Receive,
    Request,
    error_content,
    error_headers,
)
from serve.conftest import ROW, Server, raw_post, read_answers, serve_process, train_iris

BUDGET = 100_000
MAX_BODY = 65_536
BODY_TIMEOUT_S = 5.0  # long enough for a loaded host to send the tests' whole bodies


def _request(headers: list[tuple[bytes, bytes]]) -> Request:
    return Request({"method": "POST", "path": "/predict", "query_string": b"", "headers": headers})


def _receive(*chunks: bytes, then_stall: bool = False) -> Receive:
    """The chunks as ASGI messages; with ``then_stall`` the body never ends."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": then_stall or index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]

    async def receive() -> Message:
        if not messages:
            await asyncio.Event().wait()  # a client that stopped sending
        return messages.pop(0)

    return receive


def test_bytes_are_counted_as_they_arrive_not_as_content_length_claims() -> None:
    budget = BodyBudget(100)
    first = _request([(b"content-length", b"90")])
    second = _request([(b"content-length", b"90")])  # 180 declared: both fit what arrived
    asyncio.run(first.read_body(_receive(b"x" * 40), 1000, budget))
    asyncio.run(second.read_body(_receive(b"y" * 40), 1000, budget))
    assert budget.held_bytes == 80
    third = _request([])
    with pytest.raises(BodiesOverBudget) as refused:
        asyncio.run(third.read_body(_receive(b"z" * 30), 1000, budget))
    assert refused.value.status_code == 503 and refused.value.retry_after_s == 1.0
    content = error_content(refused.value)
    assert content["field"] == "body"
    assert content["expected"].startswith("the request bodies in flight to hold at most 100 bytes")
    assert content["found"] == "80 held and 30 more"
    for request in (third, second, first, first):  # a second release gives nothing back
        request.release()
    assert budget.held_bytes == 0


def test_a_chunked_body_is_counted_as_it_arrives() -> None:
    budget = BodyBudget(100)
    request = _request([])
    with pytest.raises(BodiesOverBudget):
        asyncio.run(request.read_body(_receive(b"a" * 60, b"b" * 60), 1000, budget))
    assert budget.held_bytes == 60  # the first chunk, until the request ends
    request.release()
    assert budget.held_bytes == 0


def test_a_late_body_is_refused_408_and_its_bytes_given_back() -> None:
    budget = BodyBudget(1000, timeout_s=0.2)
    late = _request([(b"content-length", b"500")])

    async def both() -> bytes | bytearray:
        reading = asyncio.ensure_future(
            late.read_body(_receive(b"x", then_stall=True), 1000, budget)
        )
        on_time = await _request([]).read_body(_receive(b"{}"), 1000, budget)
        with pytest.raises(BodyTimeout) as refused:
            await asyncio.wait_for(reading, timeout=30)  # a generous deadline
        assert refused.value.status_code == 408
        assert error_content(refused.value) == {
            "error": "body: expected it whole within 0.2 s, found 1 of 500 bytes",
            "field": "body",
            "expected": "it whole within 0.2 s",
            "found": "1 of 500 bytes",
        }
        assert (b"connection", b"close") in error_headers(refused.value, "r-1")
        return on_time

    assert asyncio.run(both()) == b"{}"
    assert budget.held_bytes == 3  # the late byte and the answered body, until released
    late.release()
    assert budget.held_bytes == 2


def test_a_server_cancel_while_a_body_arrives_is_not_a_timeout() -> None:
    budget = BodyBudget(1000, timeout_s=60.0)
    request = _request([])

    async def cancelled() -> None:
        reading = asyncio.ensure_future(request.read_body(_receive(then_stall=True), 1000, budget))
        await asyncio.sleep(0.01)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading

    asyncio.run(cancelled())


def test_a_body_refused_midway_leaves_its_task_alone_afterwards() -> None:
    """A 413 or 503 while the body arrives ends its deadline: the task is never cancelled."""
    budget = BodyBudget(50, timeout_s=0.2)
    request = _request([])

    async def refused_then_busy() -> None:
        with pytest.raises(BodiesOverBudget):
            await request.read_body(_receive(b"a" * 40, b"b" * 40, then_stall=True), 1000, budget)
        await asyncio.sleep(1.0)  # past the deadline: not cancelled

    asyncio.run(refused_then_busy())


def test_the_budget_must_hold_one_largest_body() -> None:
    with pytest.raises(ValueError, match="max_inflight_body_bytes: expected at least"):
        ServingSpec(max_body_bytes=2048, max_inflight_body_bytes=1024)


@pytest.fixture(scope="module")
def budget_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    serving = {
        "max_body_bytes": MAX_BODY,
        "max_inflight_body_bytes": BUDGET,
        "body_timeout_s": BODY_TIMEOUT_S,
        "request_log": {"enabled": False},
        "access_log": False,
    }
    root = train_iris(tmp_path_factory.mktemp("iris-body-budget"), serving=serving)
    with serve_process(root) as started:
        yield started


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _answer(port: int, payload: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        return read_answers(sock, 1)[0]


def _head(length: int) -> bytes:
    """A /predict request's head declaring ``length`` body bytes."""
    return raw_post("/predict", b"").replace(b"Content-Length: 0", b"Content-Length: %d" % length)


def test_a_slow_upload_holds_what_it_sent_and_others_are_shed_meanwhile(
    budget_server: Server,
) -> None:
    port = _port(budget_server)
    other = raw_post("/predict", b"[" + b" " * 49_998 + b"]")
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    with slow:
        slow.sendall(_head(60_002) + b"[" + b" " * 59_999)  # all but the last byte
        deadline = time.monotonic() + BODY_TIMEOUT_S / 2
        while True:  # until the server has counted the slow body's bytes
            status, body = _answer(port, other)
            if status == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == 503, body
        assert orjson.loads(body)["field"] == "body"
        slow.sendall(b" ]")
        assert read_answers(slow, 1)[0][0] == 400  # an empty list of records
    status, body = _answer(port, other)
    assert status == 400, body  # the slow body's bytes were given back
    metrics = httpx.get(f"{budget_server.url}/metrics").text
    assert 'readyml_rejected_requests_total{model="",reason="overloaded"}' in metrics


def test_bodies_that_stop_arriving_hold_nothing_and_are_refused_408(
    budget_server: Server,
) -> None:
    """A slowloris: heads claiming the largest body, one byte each, then silence."""
    port = _port(budget_server)
    stalled = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(4)]
    try:
        for sock in stalled:  # 4 x 65,536 bytes claimed: over the budget of 100,000
            sock.sendall(_head(MAX_BODY) + b"[")
        # Meanwhile other requests are answered: one byte each is all the stalled hold.
        status, body = _answer(port, raw_post("/predict", orjson.dumps([ROW])))
        assert status == 200, body
        for sock in stalled:
            ((status, body),) = read_answers(sock, 1)
            assert status == 408, body
            content = orjson.loads(body)
            assert content["field"] == "body"
            assert content["found"] == f"1 of {MAX_BODY} bytes"
            assert sock.recv(1) == b""  # closed: the rest of the body is not waited for
    finally:
        for sock in stalled:
            sock.close()
    status, body = _answer(port, raw_post("/predict", orjson.dumps([ROW])))
    assert status == 200, body
