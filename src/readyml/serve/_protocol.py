"""uvicorn's httptools protocol with fewer copies of request bodies and fewer writes.

uvicorn appends each chunk of a request body to a ``bytearray`` (a copy, plus regrowth), copies
that again into ``bytes`` for every ``receive``, and stops reading the socket whenever 64 KiB
wait unread, so a 600 KB binary tensor reaches the app in about ten pieces that readyml joins
once more. Here the chunks are kept in a list, handed to the app joined once into a writable
buffer (a binary tensor is then read in place; one small chunk is handed over as it came), and
reading pauses only above :data:`BODY_HIGH_WATER`, so a body usually arrives in one
``receive``. A body of known length from :data:`DIRECT_MIN` up to :data:`BODY_HIGH_WATER`
that does not arrive in the read with its head is read from then on straight into one buffer
of its length (:class:`DirectReader`, the connection's protocol from its first long body on,
hands the transport that buffer to read into): the event loop's and the parser's copies of
each chunk are skipped, so most of a 600 KB tensor is copied once, by the kernel. Buffers
so reserved before their bytes arrive total at most :data:`DIRECT_BUDGET` per process (past it,
bodies take the chunk path, which holds only what was sent), so headers alone cannot claim
unbounded memory.

uvicorn also writes a response's head and its body in two ``write`` calls: two system calls and
two TCP segments for every small answer. Here the head waits, in :class:`HeadFirstWriter`, for
the body's first bytes and both leave in one write (an answer that streams its body, with no
Content-Length, sends its head at once).

The rest is uvicorn's: only the reads, ``on_body``, ``receive`` and the writes of ``send``
change, as written in the uvicorn releases of :data:`UVICORN_VERSIONS`; with any other
release, :func:`readyml.serve.server.http_protocol` picks uvicorn's own protocol.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from readyml.serve import head_limits

BODY_HIGH_WATER: Final = 4 << 20  # bytes buffered per connection before reading pauses
# Bodies at least this long (and at most BODY_HIGH_WATER) are read straight into their buffer.
DIRECT_MIN: Final = 64 << 10
READ_SIZE: Final = 64 << 10  # bytes read at most per read outside a directly read body
DIRECT_BUDGET: Final = 256 << 20  # bytes of direct-read buffers reserved at once, per process
# uvicorn releases whose methods the overrides below were checked against
# (readyml.serve.server.http_protocol uses uvicorn's own protocol with any other).
UVICORN_VERSIONS: Final = ("0.54.", "0.55.")
# A body up to this size is copied after the held head (one write); a larger one follows it.
JOIN_LIMIT: Final = 64 << 10


class TimedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on request heads, and
    JSON 400s (:mod:`readyml.serve.head_limits`)."""

    head_bytes = 0  # bytes received since the connection last began waiting for a head

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        head_limits.watch(self.loop, self.connections)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        if cycle is None or cycle.response_complete:  # no head came whole in these bytes
            self.head_bytes += len(data)
            if self.head_bytes > head_limits.max_bytes and not self.transport.is_closing():
                head_limits.refuse_long_head(self, head_limits.max_bytes)
        elif self.head_bytes:
            self.head_bytes = 0

    def _unsupported_upgrade_warning(self) -> None:
        """An Upgrade (WebSocket, h2c) is ignored: the request is answered as HTTP/1.1, as
        RFC 9110 allows. uvicorn's two warnings a request would let a client fill the log."""

    def send_400_response(self, msg: str) -> None:
        content = {
            "error": "request: expected an HTTP/1.1 request, found bytes that do not parse as "
            "one (the connection is closed)",
            "field": "request",
            "expected": "an HTTP/1.1 request",
            "found": "bytes that do not parse as one",
        }
        head_limits.refuse(self.transport, 400, "Bad Request", content)


class BodyChunks:
    """Body chunks received and not yet read by the app."""

    __slots__ = ("parts", "size")

    def __init__(self, first: bytes | bytearray) -> None:
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
        return b"".join(self.parts)  # a lone ``bytes`` chunk comes back as itself


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
            if self.chunked_encoding:
                writer.flush()  # a streamed answer's first chunk may be long in coming
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


class DirectBody:
    """A request body being read straight into a buffer of its length."""

    __slots__ = ("buffer", "cycle", "filled")

    def __init__(self, cycle: RequestResponseCycle, buffer: bytearray, filled: int) -> None:
        self.cycle = cycle
        self.buffer = buffer
        self.filled = filled


def direct_body_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The Content-Length of a body to read directly, or 0 (none, chunked, short or long)."""
    length = 0
    for name, value in headers:
        if name == b"content-length":
            length = int(value) if value.isdigit() else 0
        elif name == b"transfer-encoding":
            return 0
    return length if DIRECT_MIN <= length <= BODY_HIGH_WATER else 0


class ChunkedBodyProtocol(TimedHeadProtocol):
    """uvicorn's httptools protocol with request bodies kept as a list of chunks, or read
    directly into one buffer when long."""

    direct_length = 0  # the Content-Length of the body just begun, when read directly
    direct: DirectBody | None = None  # set while a body is read straight into its buffer
    reader: DirectReader | None = None  # the transport's protocol since the first long body
    reserved = 0  # bytes of all connections' DirectBody buffers, against DIRECT_BUDGET
    ignoring = False  # after a closing request's directly read body: bytes are dropped

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        new = cycle is not None and cycle.scope is self.scope  # not an upgrade
        self.direct_length = direct_body_length(self.headers) if new else 0
        if ChunkedBodyProtocol.reserved + self.direct_length > DIRECT_BUDGET:
            self.direct_length = 0

    def data_received(self, data: bytes | memoryview) -> None:
        super().data_received(data)  # type: ignore[arg-type]
        length = self.direct_length
        if length:
            self.direct_length = 0
            cycle = self.cycle
            if cycle.more_body and not cycle.response_complete and not self.transport.is_closing():
                self._read_directly(cycle, length)

    def _read_directly(self, cycle: RequestResponseCycle, length: int) -> None:
        """Have the rest of ``cycle``'s body read into one buffer, bypassing the parser."""
        buffer = bytearray(length)
        filled = 0
        gathered: Any = cycle.body
        for part in gathered.parts if isinstance(gathered, BodyChunks) else ():
            buffer[filled : filled + len(part)] = part
            filled += len(part)
        cycle.body = bytearray()  # what arrived so far now waits in ``buffer``
        cycle.message_event.clear()
        self.direct = DirectBody(cycle, buffer, filled)
        ChunkedBodyProtocol.reserved += length
        if self.reader is None:
            # From now on this connection is read into buffers (a client that sends one long
            # body tends to send more); connections of short requests keep the event loop's
            # own reads, which cost less per request.
            self.reader = DirectReader(self)
            self.transport.set_protocol(self.reader)

    def direct_body_read(self, direct: DirectBody) -> None:
        """The body read into ``direct.buffer`` is whole: hand it over, parse afresh."""
        self._release(direct)
        cycle = direct.cycle
        if cycle.keep_alive:
            # The parser last saw the middle of this body; the next request starts a new one.
            self.parser = httptools.HttpRequestParser(self)
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        else:  # as uvicorn's parser does after a closing request: ignore what follows
            self.ignoring = True
        if cycle.response_complete or cycle.disconnected:
            # Answered before its body was read: the connection idles from now on.
            if not self.pipeline and not self.transport.is_closing():
                self._unset_keepalive_if_required()
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )
            return
        cycle.body = BodyChunks(direct.buffer)  # type: ignore[assignment]
        cycle.more_body = False
        cycle.message_event.set()

    def _release(self, direct: DirectBody) -> None:
        self.direct = None
        ChunkedBodyProtocol.reserved -= len(direct.buffer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.direct is not None:
            self._release(self.direct)
        super().connection_lost(exc)

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


class DirectReader(asyncio.BufferedProtocol):
    """A connection's protocol once it has sent a long body: reads into buffers it hands out.

    Bytes are read into a buffer of :data:`READ_SIZE` and given to the connection's
    :class:`ChunkedBodyProtocol` to parse; while a long body is read directly, the transport
    reads into that body's own buffer instead. (uvloop reads into a protocol's buffers only
    when the protocol is not an ``asyncio.Protocol``, which uvicorn's is: hence two objects.)
    """

    def __init__(self, http: ChunkedBodyProtocol) -> None:
        self.http = http
        self.read_buffer = memoryview(bytearray(READ_SIZE))

    def get_buffer(self, sizehint: int) -> memoryview:
        direct = self.http.direct
        if direct is not None:
            return memoryview(direct.buffer)[direct.filled :]
        return self.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        http = self.http
        direct = http.direct
        if direct is None:
            # The parser copies what it keeps, so the read buffer is free again on return.
            if not http.ignoring:
                http.data_received(self.read_buffer[:nbytes])
            return
        # uvicorn stops the keep-alive timer on every read; an answer given before its body
        # was read (a 401, a 413) may have started it.
        http._unset_keepalive_if_required()
        direct.filled += nbytes
        if direct.filled == len(direct.buffer):
            http.direct_body_read(direct)

    def connection_lost(self, exc: Exception | None) -> None:
        self.http.connection_lost(exc)

    def eof_received(self) -> None:
        self.http.eof_received()

    def pause_writing(self) -> None:
        self.http.pause_writing()

    def resume_writing(self) -> None:
        self.http.resume_writing()
