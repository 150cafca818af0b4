"""Long request bodies read straight into one buffer by readyml's HTTP protocol.

A uvicorn server with the protocol runs in a thread on loopback, on both event loops the
protocol meets (uvloop, which ``readyml serve`` uses, and asyncio's own), serving an app
that reports what body it got and in how many messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import uvicorn

from readyml.serve import _protocol
from readyml.serve._protocol import (
    BODY_HIGH_WATER,
    DIRECT_MIN,
    ChunkedBodyProtocol,
    DirectBody,
)

from .conftest import free_port, raw_post, read_answers

LONG = bytes(range(256)) * (600_000 // 256)  # about a 3x224x224 FP32 image
KEEP_ALIVE_S = 1  # the server closes a connection idle this long


async def report(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer with the body's length, digest, type and the number of messages it took."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/refuse":  # answers without reading the body
        answer = b'{"refused": true}'
    else:
        digest = hashlib.sha256()
        length = messages = 0
        kind = "bytes"
        more = True
        while more:
            message = await receive()
            body = message.get("body", b"")
            kind = type(body).__name__
            digest.update(body)
            length += len(body)
            messages += 1
            more = message.get("more_body", False)
        answer = orjson.dumps(
            {"length": length, "sha256": digest.hexdigest(), "messages": messages, "type": kind}
        )
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    chosen = free_port()
    config = uvicorn.Config(
        report,
        port=chosen,
        loop=request.param,
        http=ChunkedBodyProtocol,
        log_level="warning",
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield chosen
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def direct_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Lengths of the bodies the protocol read directly, as they complete."""
    seen: list[int] = []
    original = ChunkedBodyProtocol.direct_body_read

    def counted(self: ChunkedBodyProtocol, direct: DirectBody) -> None:
        seen.append(len(direct.buffer))
        original(self, direct)

    monkeypatch.setattr(ChunkedBodyProtocol, "direct_body_read", counted)
    return seen


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def expected(body: bytes) -> dict[str, Any]:
    return {"length": len(body), "sha256": hashlib.sha256(body).hexdigest(), "messages": 1}


def reported(answer: tuple[int, bytes]) -> dict[str, Any]:
    status, body = answer
    assert status == 200
    found: dict[str, Any] = orjson.loads(body)
    return found


def test_a_long_body_arriving_in_pieces_is_read_into_one_buffer(
    port: int, direct_reads: list[int]
) -> None:
    request = raw_post("/", LONG)
    head = len(request) - len(LONG)
    with connect(port) as sock:
        sock.sendall(request[: head + 1000])  # the head and a little of the body
        for start in range(head + 1000, len(request), 150_000):
            time.sleep(0.02)
            sock.sendall(request[start : start + 150_000])
        (answer,) = read_answers(sock, 1)
    got = reported(answer)
    assert got == {**expected(LONG), "type": "bytearray"}
    assert direct_reads == [len(LONG)]


def test_requests_after_a_long_body_on_the_same_connection_are_parsed(
    port: int, direct_reads: list[int]
) -> None:
    short = b'{"short": true}'
    with connect(port) as sock:
        sock.sendall(raw_post("/", LONG))
        time.sleep(0.05)
        sock.sendall(raw_post("/", short) + raw_post("/", LONG))
        answers = read_answers(sock, 3)
    assert [reported(a)["length"] for a in answers] == [len(LONG), len(short), len(LONG)]
    assert all(
        reported(a)["sha256"] == expected(b)["sha256"]
        for a, b in zip(answers, [LONG, short, LONG], strict=True)
    )
    assert len(direct_reads) >= 1


def test_a_long_body_after_100_continue(port: int, direct_reads: list[int]) -> None:
    request = raw_post("/", LONG, "Expect: 100-continue\r\n")
    with connect(port) as sock:
        sock.sendall(request[: -len(LONG)])
        assert read_answers(sock, 1) == [(100, b"")]
        sock.sendall(LONG)
        (answer,) = read_answers(sock, 1)
    assert reported(answer) == {**expected(LONG), "type": "bytearray"}
    assert direct_reads == [len(LONG)]


def answered_early(sock: socket.socket) -> bytes:
    """Send the head of a long request the app answers unread; return the body, unsent."""
    request = raw_post("/refuse", LONG)
    head = len(request) - len(LONG)
    sock.sendall(request[:head])
    ((status, body),) = read_answers(sock, 1)
    assert status == 200 and orjson.loads(body) == {"refused": True}
    return request[head:]


def test_a_body_answered_before_it_is_read_does_not_derail_the_connection(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(answered_early(sock) + raw_post("/", b"after"))
        (answer,) = read_answers(sock, 1)
    assert reported(answer) == {**expected(b"after"), "type": "bytes"}


def test_a_client_leaving_mid_body_leaves_the_server_serving(port: int) -> None:
    request = raw_post("/", LONG)
    with connect(port) as sock:
        sock.sendall(request[: len(request) // 2])
        time.sleep(0.05)
    with connect(port) as sock:
        sock.sendall(raw_post("/", LONG))
        (answer,) = read_answers(sock, 1)
    assert reported(answer)["sha256"] == expected(LONG)["sha256"]


@pytest.mark.parametrize("length", [DIRECT_MIN - 1, BODY_HIGH_WATER + 1])
def test_bodies_outside_the_direct_range_take_the_chunk_path(
    port: int, direct_reads: list[int], length: int
) -> None:
    body = LONG * (length // len(LONG) + 1)
    body = body[:length]
    with connect(port) as sock:
        sock.sendall(raw_post("/", body))
        (answer,) = read_answers(sock, 1)
    assert reported(answer)["sha256"] == expected(body)["sha256"]
    assert direct_reads == []


def test_past_the_budget_long_bodies_take_the_chunk_path(
    port: int, direct_reads: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_protocol, "DIRECT_BUDGET", len(LONG) - 1)
    with connect(port) as sock:
        sock.sendall(raw_post("/", LONG))
        (answer,) = read_answers(sock, 1)
    assert reported(answer)["sha256"] == expected(LONG)["sha256"]
    assert direct_reads == []


def test_a_reservation_ends_with_its_connection(port: int) -> None:
    request = raw_post("/", LONG)
    with connect(port) as sock:
        sock.sendall(request[: len(request) // 2])
        deadline = time.monotonic() + 5
        while not ChunkedBodyProtocol.reserved and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ChunkedBodyProtocol.reserved == len(LONG)
    deadline = time.monotonic() + 5  # the server sees the close on its next turn
    while ChunkedBodyProtocol.reserved and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ChunkedBodyProtocol.reserved == 0


def test_a_slow_body_after_an_early_answer_outlasts_the_keep_alive_timeout(port: int) -> None:
    with connect(port) as sock:
        body = answered_early(sock)
        pieces = 5
        step = len(body) // pieces + 1
        for start in range(0, len(body), step):  # 2 s in all, twice the timeout
            time.sleep(2 * KEEP_ALIVE_S / pieces)
            sock.sendall(body[start : start + step])
        sock.sendall(raw_post("/", b"after"))
        (answer,) = read_answers(sock, 1)
        assert reported(answer)["sha256"] == expected(b"after")["sha256"]


def test_a_connection_idle_after_an_early_answered_body_is_closed(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(answered_early(sock))
        sock.settimeout(5 * KEEP_ALIVE_S)
        assert sock.recv(1) == b""  # closed by the server's keep-alive timeout


def test_bytes_after_a_closing_request_s_long_body_are_ignored(port: int) -> None:
    request = raw_post("/", LONG, "Connection: close\r\n")
    with connect(port) as sock:
        sock.sendall(request[: len(request) // 2])
        time.sleep(0.05)
        sock.sendall(request[len(request) // 2 :] + raw_post("/", b"after"))
        (answer,) = read_answers(sock, 1)
        sock.settimeout(5)
        rest = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                rest += chunk
    assert reported(answer)["sha256"] == expected(LONG)["sha256"]
    assert rest == b""  # one answer, then the connection closed
