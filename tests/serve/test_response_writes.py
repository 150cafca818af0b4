"""readyml's HTTP protocol writes a response's head together with its body.

The protocol runs on a transport that records each ``write``, so the tests see the calls a
socket would get: one per small answer (uvicorn makes two), the head before any body bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from readyml.serve._protocol import JOIN_LIMIT, ChunkedBodyProtocol

App = Callable[[Any, Any, Any], Awaitable[None]]
GET = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """A transport keeping what is written, call by call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def answer(body: bytes, *, headers: list[tuple[bytes, bytes]] | None = None) -> App:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        sized = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers or sized})
        await send({"type": "http.response.body", "body": body})

    return app


async def exchange(
    app: App, request: bytes, transport: RecordingTransport | None = None
) -> RecordingTransport:
    config = Config(app=app, log_level="warning", access_log=False)
    transport = transport or RecordingTransport()
    protocol = ChunkedBodyProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    protocol.connection_made(transport)
    protocol.data_received(request)
    while protocol.tasks:
        await asyncio.gather(*protocol.tasks)
    protocol.connection_lost(None)
    return transport


def run(app: App, request: bytes = GET) -> RecordingTransport:
    return asyncio.run(exchange(app, request))


def test_a_small_answer_leaves_in_one_write() -> None:
    transport = run(answer(b'{"ok": true}'))
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 12" in head
    assert body == b'{"ok": true}'


def test_an_answer_to_head_still_sends_its_head() -> None:
    transport = run(answer(b"abc"), b"HEAD / HTTP/1.1\r\nhost: test\r\n\r\n")
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"content-length: 3\r\n\r\n")


def test_a_large_body_follows_its_head_in_a_second_write() -> None:
    body = b"x" * (JOIN_LIMIT + 1)
    transport = run(answer(body))
    assert len(transport.writes) == 2
    assert transport.writes[0].endswith(b"\r\n\r\n") and transport.writes[1] == body


def test_a_streamed_answer_sends_its_head_before_its_first_chunk() -> None:
    written_before_body: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.01)  # a stream's first chunk may be long in coming
        written_before_body.append(len(transport.writes))
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})

    transport = RecordingTransport()
    asyncio.run(exchange(app, GET, transport))
    assert written_before_body == [1]
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"transfer-encoding: chunked\r\n\r\n")
    assert transport.writes[1:] == [b"3\r\none\r\n", b"3\r\ntwo\r\n0\r\n\r\n"]


def test_connection_close_writes_the_answer_before_closing() -> None:
    transport = run(answer(b"bye"), b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
    assert transport.closed
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\nbye")


def test_pipelined_requests_get_one_write_each_in_order() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = scope["path"].encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    requests = b"".join(f"GET /{n} HTTP/1.1\r\nhost: test\r\n\r\n".encode() for n in range(3))
    transport = run(app, requests)
    assert [write.rpartition(b"\r\n\r\n")[2] for write in transport.writes] == [b"/0", b"/1", b"/2"]


def test_an_app_failing_after_its_head_closes_the_connection() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("boom")

    transport = run(app)
    assert transport.closed
    assert b"".join(transport.writes).startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("status", [204, 304])
def test_a_bodiless_status_sends_its_head(status: int) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    transport = run(app)
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(f"HTTP/1.1 {status} ".encode())
