"""The per-process budget of request body bytes: counted, refused with 503, given back."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from readyml.config import ServingSpec
from readyml.serve._http import BodiesOverBudget, BodyBudget, Message, Receive, Request
from serve.conftest import Server, raw_post, read_answers, serve_process, train_iris

BUDGET = 100_000


def _request(headers: list[tuple[bytes, bytes]]) -> Request:
    return Request({"method": "POST", "path": "/predict", "query_string": b"", "headers": headers})


def _receive(*chunks: bytes) -> Receive:
    messages = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]

    async def receive() -> Message:
        return messages.pop(0)

    return receive


def test_a_declared_body_is_counted_before_it_is_read_and_given_back() -> None:
    budget = BodyBudget(100)
    first = _request([(b"content-length", b"60")])
    asyncio.run(first.read_body(_receive(b"x" * 60), 1000, budget))
    assert budget.held_bytes == 60
    second = _request([(b"content-length", b"50")])
    unread = _receive(b"y" * 50)
    with pytest.raises(BodiesOverBudget) as refused:
        asyncio.run(second.read_body(unread, 1000, budget))
    assert refused.value.status_code == 503 and refused.value.retry_after_s == 1.0
    second.release()
    first.release()
    first.release()  # a second release gives nothing back twice
    assert budget.held_bytes == 0


def test_a_chunked_body_is_counted_as_it_arrives() -> None:
    budget = BodyBudget(100)
    request = _request([])
    with pytest.raises(BodiesOverBudget):
        asyncio.run(request.read_body(_receive(b"a" * 60, b"b" * 60), 1000, budget))
    assert budget.held_bytes == 60  # the first chunk, until the request ends
    request.release()
    assert budget.held_bytes == 0


def test_the_budget_must_hold_one_largest_body() -> None:
    with pytest.raises(ValueError, match="max_inflight_body_bytes: expected at least"):
        ServingSpec(max_body_bytes=2048, max_inflight_body_bytes=1024)


@pytest.fixture(scope="module")
def budget_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    serving = {
        "max_body_bytes": 65_536,
        "max_inflight_body_bytes": BUDGET,
        "request_log": {"enabled": False},
        "access_log": False,
    }
    root = train_iris(tmp_path_factory.mktemp("iris-body-budget"), serving=serving)
    with serve_process(root) as started:
        yield started


def _answer(port: int, payload: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        return read_answers(sock, 1)[0]


def test_a_slow_upload_holds_its_bytes_and_others_are_shed_meanwhile(
    budget_server: Server,
) -> None:
    port = int(budget_server.url.rsplit(":", 1)[1])
    other = raw_post("/predict", b"[" + b" " * 49_998 + b"]")
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    with slow:
        head = raw_post("/predict", b"")  # the head alone, then a Content-Length it keeps
        head = head.replace(b"Content-Length: 0", b"Content-Length: 60000")
        slow.sendall(head + b"[")
        deadline = time.monotonic() + 10
        while True:  # until the server has counted the slow body
            status, body = _answer(port, other)
            if status == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == 503, body
        assert b"bytes of request bodies" in body
        slow.sendall(b" " * 59_998 + b"]")
        assert read_answers(slow, 1)[0][0] == 400  # an empty list of records
    status, body = _answer(port, other)
    assert status == 400, body  # the slow body's bytes were given back
    metrics = httpx.get(f"{budget_server.url}/metrics").text
    assert 'readyml_rejected_requests_total{model="",reason="overloaded"}' in metrics
