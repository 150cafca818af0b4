"""Raw ASGI plumbing shared by the routes: the request, bodies, JSON answers, HTTP errors.

The hot path avoids framework request/response objects: a request is the scope, its body
bytes and the few headers we read; an answer is two ``send`` calls.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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


class BodyBudget:
    """Bytes of request bodies held by the requests in flight, against a per-process cap.

    A body that would take the total past ``limit_bytes`` is refused (503 + Retry-After)
    before more of it is read, so many large or slow uploads at once cannot take the
    server's memory: ``max_body_bytes`` bounds one request, this bounds them all. Used from
    the event loop only, so it needs no lock.
    """

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.held_bytes = 0

    def take(self, size: int) -> None:
        """Count ``size`` more bytes, or raise :class:`BodiesOverBudget`."""
        if self.held_bytes + size > self.limit_bytes:
            raise BodiesOverBudget(
                f"body: the server holds {self.held_bytes} bytes of request bodies of at "
                f"most {self.limit_bytes}; {size} more do not fit, retry shortly"
            )
        self.held_bytes += size

    def give_back(self, size: int) -> None:
        """Stop counting ``size`` bytes (their request finished)."""
        self.held_bytes -= size


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
                text = value.decode("latin-1")
                if 0 < len(text) <= MAX_REQUEST_ID_CHARS and text.isprintable():
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
        """One query-string parameter (first value), undecoded beyond ASCII."""
        if not self.query:
            return None
        for pair in self.query.decode("latin-1").split("&"):
            name, _, value = pair.partition("=")
            if name == key:
                return value
        return None

    async def read_body(
        self, receive: Receive, limit: int, budget: BodyBudget | None = None
    ) -> bytes | bytearray:
        """Read the whole body, refusing more than ``limit`` bytes (413).

        With a ``budget`` the body's bytes are counted against it until :meth:`release`
        (503 when they do not fit): its Content-Length before reading, else as it arrives.
        A compressed body is refused (415): it would be read as the bytes it was sent as.
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
        declared = self.content_length is not None and self.content_length >= 0
        if budget is not None:
            self._budget = budget
            if declared:
                self._hold(self.content_length or 0)
        message = await receive()
        body: bytes | bytearray = message.get("body", b"")
        if len(body) > limit:
            found = "more" if message.get("more_body", False) else str(len(body))
            raise PayloadTooLarge(f"body: expected at most {limit} bytes, found {found}")
        if budget is not None and not declared:
            self._hold(len(body))
        if message.get("more_body", False):
            # Joined once into a writable buffer of the size that arrived (one copy, no
            # regrowth, nothing reserved for what the headers only claim): a binary tensor
            # is then read in place.
            chunks = [body]
            size = len(body)
            while message.get("more_body", False):
                message = await receive()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body: expected at most {limit} bytes, found more")
                if budget is not None and not declared:
                    self._hold(len(chunk))
                chunks.append(chunk)
            body = bytearray().join(chunks)
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
    ``to_dict`` has them split out of its message, which follows the same pattern.
    """
    to_dict = getattr(exc, "to_dict", None)
    if callable(to_dict):
        content: dict[str, Any] = to_dict()
        return content
    message = str(exc)
    parts = _FIELD_MESSAGE.fullmatch(message)
    if parts is None:
        return {"error": message}
    return {"error": message, **{k: v for k, v in parts.groupdict().items() if v is not None}}


def error_headers(exc: ReadymlError, request_id: str) -> list[tuple[bytes, bytes]]:
    """Headers of an error answer: the request id, Retry-After, WWW-Authenticate."""
    headers = [(b"x-request-id", request_id.encode())]
    retry_after_s = getattr(exc, "retry_after_s", None)
    if retry_after_s is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after_s))).encode()))
    if isinstance(exc, MethodNotAllowed):
        headers.append((b"allow", ", ".join(exc.allowed).encode()))
    if isinstance(exc, Unauthorized):
        headers.append((b"www-authenticate", b'Bearer realm="readyml"'))
    return headers
