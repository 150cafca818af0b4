"""uvicorn's httptools protocol, keeping request body chunks as they arrive.

uvicorn appends each chunk of a request body to a ``bytearray`` (a copy, plus regrowth), copies
that again into ``bytes`` for every ``receive``, and stops reading the socket whenever 64 KiB
wait unread, so a 600 KB binary tensor reaches the app in about ten pieces that readyml joins
once more. Here the chunks are kept in a list, handed to the app joined once into a writable
buffer (a binary tensor is then read in place; one small chunk is handed over as it came), and
reading pauses only above :data:`BODY_HIGH_WATER`, so a body usually arrives in one
``receive``.

uvicorn also writes a response's head and its body in two ``write`` calls: two system calls and
two TCP segments for every small answer. Here the head waits, in :class:`HeadFirstWriter`, for
the body's first bytes and both leave in one write (an answer that streams its body sends its
head with the first chunk).

The rest is uvicorn's: only ``on_body``, ``receive`` and the writes of ``send`` change, as
written in the uvicorn releases of :data:`UVICORN_VERSIONS`; with any other release,
:func:`readyml.serve.server.http_protocol` picks uvicorn's own protocol.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

BODY_HIGH_WATER: Final = 4 << 20  # bytes buffered per connection before reading pauses
# uvicorn releases whose ``receive`` and ``on_body`` the overrides below were checked against
# (readyml.serve.server.http_protocol uses uvicorn's own protocol with any other).
UVICORN_VERSIONS: Final = ("0.54.",)
# A body up to this size is copied after the held head (one write); a larger one follows it.
JOIN_LIMIT: Final = 64 << 10


class BodyChunks:
    """Body chunks received and not yet read by the app."""

    __slots__ = ("parts", "size")

    def __init__(self, first: bytes) -> None:
        self.parts = [first]
        self.size = len(first)

    def append(self, chunk: bytes) -> None:
        """Keep one more chunk (no copy)."""
        self.parts.append(chunk)
        self.size += len(chunk)

    def take(self) -> bytes | bytearray:
        """The chunks as one buffer: the lone chunk itself, or all joined once, writable."""
        return self.parts[0] if len(self.parts) == 1 else bytearray().join(self.parts)

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        # What uvicorn's own ``receive`` asks for, should a cycle ever miss the swap below.
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


class HeadFirstWriter:
    """The connection's transport as one response sees it: the head is written with the body."""

    __slots__ = ("held", "hold_next", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.hold_next = False
        self.held = b""

    def write(self, data: bytes) -> None:
        """Write ``data``, after the held head if there is one; hold it if it is the head."""
        if self.hold_next:
            self.hold_next = False
            self.held = data
            return
        held = self.held
        if held:
            self.held = b""
            if len(data) <= JOIN_LIMIT:
                data = held + data
            else:
                self.transport.write(held)
        self.transport.write(data)

    def flush(self) -> None:
        """Write the held head, if any (an answer with no body bytes, such as HEAD's)."""
        self.hold_next = False
        if self.held:
            held, self.held = self.held, b""
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


class ChunkedBodyCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, reading the body that ``on_body`` gathered and
    writing the response's head with its body."""

    transport: Any  # a HeadFirstWriter around the connection's transport

    async def send(self, message: Any) -> None:
        writer = self.transport
        if not self.response_started:
            writer.hold_next = True  # uvicorn's next write is the head
            await super().send(message)
            writer.hold_next = False  # in case it wrote nothing (the client is gone)
            return
        await super().send(message)
        if self.response_complete:
            writer.flush()

    async def receive(self) -> Any:
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
            await self.message_event.wait()
            self.message_event.clear()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        gathered: Any = self.body
        self.body = bytearray()
        body = gathered.take() if isinstance(gathered, BodyChunks) else bytes(gathered)
        return {"type": "http.request", "body": body, "more_body": self.more_body}


class ChunkedBodyProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with request bodies kept as a list of chunks."""

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        gathered: Any = cycle.body
        if isinstance(gathered, BodyChunks):
            gathered.append(body)
        else:  # uvicorn's fresh, empty bytearray
            gathered = cycle.body = BodyChunks(body)  # type: ignore[assignment]
        if gathered.size > BODY_HIGH_WATER:
            self.flow.pause_reading()
        cycle.message_event.set()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # The cycle was made by uvicorn's on_headers_complete; its app task, created next,
        # looks up ``receive`` when it first runs, so it gets this class's.
        cycle.__class__ = ChunkedBodyCycle
        cycle.transport = HeadFirstWriter(self.transport)  # type: ignore[assignment]
        super()._start_asgi_task(cycle, app)
