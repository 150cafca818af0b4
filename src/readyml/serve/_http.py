"""Raw ASGI plumbing shared by the routes: the request, bodies, JSON answers, HTTP errors.

The hot path avoids framework request/response objects: a request is the scope, its body
bytes and the few headers we read; an answer is two ``send`` calls.

Request bodies in flight share one :class:`BodyBudget`: their bytes are counted as they
arrive (not as their ``Content-Length`` claims, so headers alone cannot hold the budget) and
each body must arrive whole within a deadline (so a client that stops sending cannot hold
its bytes, its connection or its task for ever). The deadline is kept by one timer a tick
for all requests, which cancels the late ones, rather than a timer per request: with uvloop
on this VM, ``loop.call_later`` and its cancel cost 1.5–2 µs a request, ``asyncio.timeout``
5 µs, the tick's bookkeeping 0.1 µs plus 0.5 µs for ``asyncio.current_task`` (Python code in
3.11, C from 3.12).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_plus

import orjson

from readyml.errors import (
    BadRequest,
    MethodNotAllowed,
    Overloaded,
    PayloadTooLarge,
    ReadymlError,
    Unauthorized,
    UnsupportedMediaType,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_TYPE = b"application/json"
# Media types a JSON body may be declared as. A form type is what ``curl -d`` sends when no
# Content-Type is given, so such a body is read as JSON too (it must parse as JSON).
_JSON_MEDIA = (b"", JSON_TYPE, b"application/x-www-form-urlencoded")
_BINARY = b"application/octet-stream"
# A body declared shorter than this is timed only once it proves to come in parts: most come
# whole with their headers, and timing every one cost ~0.6 us a request. A client that sends
# such a head and no body byte holds a connection but none of the budget (as one sending its
# headers slowly, which uvicorn does not time either). Longer and chunked bodies are timed
# from the start: readyml's protocol reads those from _protocol.DIRECT_MIN (the same 64 KiB)
# whole before the first receive returns.
UNTIMED_BODY_BYTES = 65_536
# A body deadline is checked this many times per timeout (late by at most a quarter).
_TICKS_PER_TIMEOUT = 4
# Longest caller-supplied request id we echo back (characters).
MAX_REQUEST_ID_CHARS = 128
_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A process-unique request id (random prefix + counter; cheaper than a UUID)."""
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"


class BodiesOverBudget(Overloaded):
    """Request bodies in flight already hold the process's budget; retry after a while."""

    retry_after_s = 1.0


class BodyTimeout(BadRequest):
    """A request body did not arrive whole within ``serving.body_timeout_s``.

    Answered 408 with ``Connection: close``: the rest of the body is not waited for.
    """

    status_code = 408


class BodyBudget:
    """Request bodies in flight: their bytes against a per-process cap, their time against
    a deadline.

    A body's bytes are counted as they arrive, so a body that takes the total past
    ``limit_bytes`` is refused (503 + Retry-After) with what it sent so far:
    ``max_body_bytes`` bounds one request, this bounds them all. With ``timeout_s``, a body
    still arriving that many seconds after it began to be read (up to a quarter more; a short
    body only once it proves to come in parts, see :data:`UNTIMED_BODY_BYTES`)
    is refused (408) and its bytes given back. Used from one event loop only (no lock).
    """

    def __init__(self, limit_bytes: int, *, timeout_s: float | None = None) -> None:
        self.limit_bytes = limit_bytes
        self.timeout_s = timeout_s
        self.held_bytes = 0
        # The tasks reading a body, by the tick they began at; those cancelled for lateness.
        self._reading: dict[asyncio.Task[Any], int] = {}
        self._late: set[asyncio.Task[Any]] = set()
        self._tick = 0
        self._timer: asyncio.TimerHandle | None = None

    def take(self, size: int) -> None:
        """Count ``size`` more bytes, or raise :class:`BodiesOverBudget`."""
        if self.held_bytes + size > self.limit_bytes:
            raise BodiesOverBudget(
                f"body: expected the request bodies in flight to hold at most "
                f"{self.limit_bytes} bytes (retry shortly), found {self.held_bytes} held and "
                f"{size} more"
            )
        self.held_bytes += size

    def give_back(self, size: int) -> None:
        """Stop counting ``size`` bytes (their request finished)."""
        self.held_bytes -= size

    def time(self, request: Request) -> asyncio.Task[Any]:
        """Put the task reading ``request``'s body on the deadline; return the task."""
        task = asyncio.current_task()
        assert task is not None  # an ASGI app runs in a task
        self._reading[task] = self._tick
        if self._timer is None:
            self._start_timer()
        return task

    def was_late(self, task: asyncio.Task[Any]) -> bool:
        """Whether ``task`` was cancelled because its body was late (asked once)."""
        if task in self._late:
            self._late.discard(task)
            return True
        return False

    def _start_timer(self) -> None:
        if self.timeout_s is not None:
            self._timer = asyncio.get_running_loop().call_later(
                self.timeout_s / _TICKS_PER_TIMEOUT, self._sweep
            )

    def _sweep(self) -> None:
        """Cancel the reads begun more than a timeout ago; tick again while any remain."""
        self._tick += 1
        tick = self._tick
        late = [t for t, begun in self._reading.items() if tick - begun > _TICKS_PER_TIMEOUT]
        for task in late:
            del self._reading[task]
            self._late.add(task)
            task.cancel()
        self._timer = None
        if self._reading:
            self._start_timer()


class Request:
    """What a route needs of a request: method, path, query, a few headers, the body."""

    __slots__ = (
        "_budget",
        "_held",
        "authorization",
        "body",
        "content_encoding",
        "content_length",
        "content_type",
        "inference_header_length",
        "method",
        "path",
        "query",
        "request_id",
        "scope",
    )

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: bytes = scope.get("query_string", b"")
        self.body: bytes | bytearray = b""
        self.content_length: int | None = None
        self.content_type = b""
        self.content_encoding: bytes | None = None
        self.inference_header_length: bytes | None = None
        self.authorization: bytes | None = None
        request_id: str | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                self.content_length = int(value) if value.isdigit() else -1
            elif name == b"content-type":
                self.content_type = value
            elif name == b"x-request-id":
                # Printable ASCII only (headers are bytes, any other text would come back
                # mangled); another id is ignored and one is generated, as proxies do.
                if 0 < len(value) <= MAX_REQUEST_ID_CHARS and value.isascii():
                    text = value.decode("ascii")
                    if text.isprintable():
                        request_id = text
            elif name == b"authorization":
                self.authorization = value
            elif name == b"inference-header-content-length":
                self.inference_header_length = value
            elif name == b"content-encoding":
                self.content_encoding = value
        self.request_id = request_id or new_request_id()
        self._budget: BodyBudget | None = None
        self._held = 0

    def query_param(self, key: str) -> str | None:
        """One query-string parameter (its first value), percent-decoded."""
        if not self.query:
            return None
        for pair in self.query.decode("latin-1").split("&"):
            name, _, value = pair.partition("=")
            if unquote_plus(name) == key:
                return unquote_plus(value)
        return None

    async def read_body(
        self, receive: Receive, limit: int, budget: BodyBudget | None = None
    ) -> bytes | bytearray:
        """Read the whole body, refusing more than ``limit`` bytes (413).

        With a ``budget`` the body's bytes are counted against it as they arrive, until
        :meth:`release` (503 when they do not fit), and a body still arriving after the
        budget's ``timeout_s`` is refused (408). A compressed body is refused (415): it
        would be read as the bytes it was sent as.
        """
        encoding = self.content_encoding
        if encoding is not None and encoding.strip().lower() not in (b"", b"identity"):
            raise UnsupportedMediaType(
                "header Content-Encoding: expected identity (an uncompressed body), found "
                f"{encoding.decode('latin-1')!r}"
            )
        if self.content_length is not None and self.content_length > limit:
            raise PayloadTooLarge(
                f"body: expected at most {limit} bytes, found Content-Length {self.content_length}"
            )
        task: asyncio.Task[Any] | None = None
        if budget is not None:
            self._budget = budget
            length = self.content_length
            if length is None or length >= UNTIMED_BODY_BYTES:
                task = budget.time(self)
        try:
            message = await receive()
            body: bytes | bytearray = message.get("body", b"")
            if len(body) > limit:
                found = "more" if message.get("more_body", False) else str(len(body))
                raise PayloadTooLarge(f"body: expected at most {limit} bytes, found {found}")
            if budget is not None:
                self._hold(len(body))
            if message.get("more_body", False):
                if budget is not None and task is None:
                    task = budget.time(self)
                # Joined once into a writable buffer of the size that arrived (one copy, no
                # regrowth, nothing reserved for what the headers only claim): a binary
                # tensor is then read in place.
                chunks = [body]
                size = len(body)
                while message.get("more_body", False):
                    message = await receive()
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(f"body: expected at most {limit} bytes, found more")
                    if budget is not None:
                        self._hold(len(chunk))
                    chunks.append(chunk)
                body = bytearray().join(chunks)
        except asyncio.CancelledError:
            # The deadline's cancel becomes a 408; any other (the server's) goes on.
            if budget is None or task is None or not budget.was_late(task):
                raise
            if task.uncancel() > 0:
                raise
            declared = self.content_length if self.content_length is not None else "unknown"
            raise BodyTimeout(
                f"body: expected it whole within {budget.timeout_s:g} s, found {self._held} "
                f"of {declared} bytes"
            ) from None
        finally:
            if budget is not None and task is not None:
                budget._reading.pop(task, None)  # the sweep took it out if it was late
        self.body = body
        return body

    def _hold(self, size: int) -> None:
        assert self._budget is not None
        self._budget.take(size)
        self._held += size

    def release(self) -> None:
        """Give the body's bytes back to the budget they were counted against."""
        if self._budget is not None and self._held:
            self._budget.give_back(self._held)
            self._held = 0


def parse_json(body: bytes | bytearray, *, expected: str = "a JSON document") -> Any:
    """Decode a JSON body, or raise 400 saying what was expected and what came."""
    if not body:
        raise BadRequest(f"body: expected {expected}, found an empty body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body: expected {expected}, found invalid JSON ({exc})") from None


def check_json_type(content_type: bytes, *, binary_header: bool | None = None) -> None:
    """Refuse (415) a body declared as something other than JSON.

    No Content-Type, or a form type (what ``curl -d`` declares), is read as JSON too.
    ``binary_header`` is given on routes that take the V2 binary tensor extension: whether the
    request has ``Inference-Header-Content-Length``, which ``application/octet-stream`` needs.
    """
    if content_type == JSON_TYPE:
        return
    media = content_type.split(b";", 1)[0].strip().lower()
    if media in _JSON_MEDIA or media.endswith(b"+json") or (binary_header and media == _BINARY):
        return
    expected = "application/json"
    if binary_header is not None:
        expected += " or application/octet-stream (with Inference-Header-Content-Length)"
    elif media == b"text/csv":
        expected += " (CSV goes to /invocations)"
    raise UnsupportedMediaType(
        f"Content-Type: expected {expected}, found {media.decode('latin-1')!r}"
    )


def with_request_id(send: Send, request_id: str) -> Send:
    """``send`` that adds ``X-Request-Id`` to the answer's head (unless it has one)."""
    header = (b"x-request-id", request_id.encode())

    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if not any(name.lower() == b"x-request-id" for name, _ in headers):
                message = {**message, "headers": [*headers, header]}
        await send(message)

    return send_with_id


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = JSON_TYPE,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a complete answer, with its length (so HTTP/1.1 needs no chunked encoding)."""
    raw_headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if headers:
        raw_headers += headers
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, content: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send ``content`` as JSON (numpy arrays allowed)."""
    await send_bytes(
        send,
        status,
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY),
        headers=headers,
    )


# The server's error messages read "FIELD: expected WHAT[, found WHAT]".
_FIELD_MESSAGE = re.compile(
    r"(?P<field>[^:\n]+): expected (?P<expected>.+?)(?:, found (?P<found>.+))?"
)


def error_content(exc: ReadymlError) -> dict[str, Any]:
    """The JSON body of an error: ``{"error": message}`` plus the field details if known.

    The Open Inference Protocol's error format is ``{"error": "<message>"}``; the extra keys
    (``field``, ``expected``, ``found``) name the offending input. An error without its own
    ``to_dict`` has them split out of its message, which follows the same pattern; an
    overload whose message does not is answered with field ``server`` and its message's
    first clause as ``found``.
    """
    to_dict = getattr(exc, "to_dict", None)
    if callable(to_dict):
        content: dict[str, Any] = to_dict()
        return content
    message = str(exc)
    parts = _FIELD_MESSAGE.fullmatch(message)
    if parts is not None:
        named = {k: v for k, v in parts.groupdict().items() if v is not None}
        return {"error": message, **named}
    if isinstance(exc, Overloaded):  # the batcher's shedding says what it found in prose
        expected = "capacity for this request"
        retry_after_s = getattr(exc, "retry_after_s", None)
        if retry_after_s is not None:
            expected += f" (retry after {max(1, round(retry_after_s))} s)"
        found = message.split("; ", 1)[0]
        return {"error": message, "field": "server", "expected": expected, "found": found}
    return {"error": message}


def error_headers(exc: ReadymlError, request_id: str) -> list[tuple[bytes, bytes]]:
    """Headers of an error answer: the request id, Retry-After, WWW-Authenticate, and
    ``Connection: close`` after a late body."""
    headers = [(b"x-request-id", request_id.encode())]
    retry_after_s = getattr(exc, "retry_after_s", None)
    if retry_after_s is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after_s))).encode()))
    if isinstance(exc, MethodNotAllowed):
        headers.append((b"allow", ", ".join(exc.allowed).encode()))
    if isinstance(exc, Unauthorized):
        headers.append((b"www-authenticate", b'Bearer realm="readyml"'))
    if isinstance(exc, BodyTimeout):
        headers.append((b"connection", b"close"))  # the rest of the body is not read
    return headers
