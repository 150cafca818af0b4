"""Limits on request heads: a deadline and a size, and JSON for requests that are not HTTP.

uvicorn times a connection out only while it idles between requests (``timeout_keep_alive``,
armed once an answer is sent): a connection that sends nothing, or sends a request's head a
byte at a time, is held for as long as its client likes, so a few thousand such clients
(slowloris) use up the process's file descriptors and no one else is answered. Here a
connection must send a whole head within ``serving.header_timeout_s`` of opening, or of the
first bytes after a keep-alive pause; past it, it is answered 408 (JSON, ``Connection:
close``) and closed.

Nothing is done per request for the deadline: one :class:`HeadWatch` per event loop looks at
every connection a few times per timeout and closes those found waiting for the same head
since the deadline (so a head may take up to a quarter more). A connection waits for a head
when no request is being answered on it, no complete head is queued behind one
(pipelining), and uvicorn's keep-alive timer is not running.

Nor does httptools bound a head's size: it gathers a header's value by appending each piece
to the last (a 25 MB value took the parser 3 s, a 100 MB one 49 s and 200 MB of memory), so
one client could stall the event loop and take the memory of the process. Here the bytes
that arrive while a connection waits for a head are counted, and past
``serving.max_header_bytes`` the connection is answered 431 and closed (a head that arrives
whole in one read, at most 256 KiB, is not counted: it costs the parser one pass).

These read uvicorn's httptools protocol's attributes as written in the releases of
:data:`readyml.serve._protocol.UVICORN_VERSIONS`
(:class:`readyml.serve._protocol.TimedHeadProtocol` applies them); with another release,
uvicorn's own protocol serves without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable
from typing import Any, Final

import orjson

DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_MAX_BYTES: Final = 64 << 10
_TICKS_PER_TIMEOUT: Final = 4

_timeout_s = DEFAULT_TIMEOUT_S
max_bytes = DEFAULT_MAX_BYTES  # read by the protocol for every connection
_on_refused: Callable[[], None] | None = None
_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HeadWatch] = (
    weakref.WeakKeyDictionary()
)


def configure(
    timeout_s: float,
    max_head_bytes: int = DEFAULT_MAX_BYTES,
    on_refused: Callable[[], None] | None = None,
) -> None:
    """This process's deadline on heads and their largest size, for the connections opened
    from now on, and what to call for each connection refused here (a late or long head,
    or bytes that are not HTTP). The serving app calls it at start, before uvicorn listens."""
    global _timeout_s, _on_refused, max_bytes
    if not timeout_s > 0:
        raise ValueError(f"header timeout: expected seconds > 0, found {timeout_s!r}")
    if max_head_bytes < 1:
        raise ValueError(f"header size: expected bytes > 0, found {max_head_bytes!r}")
    _timeout_s, max_bytes, _on_refused = timeout_s, max_head_bytes, on_refused


def refuse(transport: Any, status: int, reason: str, content: dict[str, str]) -> None:
    """Answer ``status`` with a JSON body on a connection, close it, and count it refused."""
    body = orjson.dumps(content)
    transport.write(
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, reason.encode("ascii"), len(body), body)
    )
    transport.close()
    if _on_refused is not None:
        with contextlib.suppress(Exception):  # counting must never fail a connection
            _on_refused()


class HeadWatch:
    """Closes the connections of one event loop that wait too long for a request's head."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, connections: set[Any], timeout_s: float
    ) -> None:
        self.loop = loop
        self.connections = connections  # uvicorn's server state: every open connection
        self.timeout_s = timeout_s
        # Connections found waiting, with the request they wait after and when first found.
        self.waiting: dict[Any, tuple[Any, float]] = {}
        self._tick()

    def _tick(self) -> None:
        if self.loop.is_closed():
            return
        now = self.loop.time()
        still: dict[Any, tuple[Any, float]] = {}
        for connection in list(self.connections):
            if not waits_for_head(connection):
                continue
            after, since = self.waiting.get(connection, (None, now))
            if after is not connection.cycle:  # another head came whole in between
                since = now
            if now - since >= self.timeout_s:
                self._expire(connection)
            else:
                still[connection] = (connection.cycle, since)
        self.waiting = still
        self.loop.call_later(self.timeout_s / _TICKS_PER_TIMEOUT, self._tick)

    def _expire(self, connection: Any) -> None:
        content = {
            "error": f"request head: expected it whole within {self.timeout_s:g} s "
            "of the connection's first bytes, found it still incomplete",
            "field": "request head",
            "expected": f"a whole request head within {self.timeout_s:g} s",
            "found": "an incomplete head (or none) after that",
        }
        refuse(connection.transport, 408, "Request Timeout", content)


def refuse_long_head(connection: Any, limit: int) -> None:
    """Answer 431 to a connection whose head went past ``limit`` bytes, and close it."""
    content = {
        "error": f"request head: expected at most {limit} bytes, found more still arriving",
        "field": "request head",
        "expected": f"at most {limit} bytes",
        "found": "more, and the head not yet whole",
    }
    refuse(connection.transport, 431, "Request Header Fields Too Large", content)


def waits_for_head(connection: Any) -> bool:
    """Whether ``connection`` (uvicorn's httptools protocol) waits for a request's head."""
    cycle = connection.cycle
    return (
        (cycle is None or cycle.response_complete)
        and connection.timeout_keep_alive_task is None
        and not connection.pipeline
        and not connection.transport.is_closing()
    )


def watch(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> HeadWatch:
    """The loop's watch, started with its first connection."""
    found = _watches.get(loop)
    if found is None:
        found = _watches[loop] = HeadWatch(loop, connections, _timeout_s)
    return found
