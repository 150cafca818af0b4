"""Request heads have a deadline and a size limit, and bytes that are not HTTP get a JSON 400
(real server)."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from readyml.serve import head_limits
from readyml.serve._protocol import ChunkedBodyProtocol, TimedHeadProtocol
from readyml.serve.server import http_protocol

from .conftest import ROW, Server, raw_post, read_answers, serve_process, train_iris

HEADER_TIMEOUT_S = 2.0
MAX_HEADER_BYTES = 8192
TABULAR = {"inputs": [{"name": "x", "type": "number"}]}


@pytest.fixture(scope="module", params=["auto", "readyml"])
def timed_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server of a tabular model: uvicorn's protocol (auto) and readyml's."""
    serving = {
        "request_log": {"enabled": False},
        "http_protocol": request.param,
        "header_timeout_s": HEADER_TIMEOUT_S,
        "max_header_bytes": MAX_HEADER_BYTES,
    }
    root = train_iris(tmp_path_factory.mktemp(f"iris-heads-{request.param}"), serving=serving)
    with serve_process(root) as started:
        yield started


def connect(server: Server) -> socket.socket:
    url = httpx.URL(server.url)
    return socket.create_connection((url.host, url.port), timeout=30)


def closing_answer(sock: socket.socket) -> tuple[int, dict[str, str], float]:
    """The one answer before the server closes the connection, and when it came."""
    started = time.monotonic()
    ((status, body),) = read_answers(sock, 1)
    assert sock.recv(1) == b""  # closed after it
    return status, orjson.loads(body), time.monotonic() - started


def test_every_choice_of_protocol_times_heads() -> None:
    assert http_protocol("auto", [TABULAR]) is TimedHeadProtocol
    assert http_protocol("uvicorn", [TABULAR]) is TimedHeadProtocol
    assert issubclass(ChunkedBodyProtocol, TimedHeadProtocol)


def test_a_head_that_stops_arriving_is_refused_408_and_closed(timed_server: Server) -> None:
    with connect(timed_server) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Ty")
        status, body, waited_s = closing_answer(sock)
    assert status == 408
    assert body["field"] == "request head"
    assert body["expected"] == f"a whole request head within {HEADER_TIMEOUT_S:g} s"
    assert waited_s >= HEADER_TIMEOUT_S * 0.9  # not before its deadline (time is checked in
    # quarters of it, and the first bytes went out just before the clock started)
    with timed_server.client() as client:
        assert client.post("/predict", json=[ROW]).status_code == 200


def test_a_connection_that_sends_nothing_is_closed(timed_server: Server) -> None:
    with connect(timed_server) as sock:
        status, body, _ = closing_answer(sock)
    assert status == 408 and body["found"] == "an incomplete head (or none) after that"


def test_a_slow_head_within_the_deadline_is_answered(timed_server: Server) -> None:
    head = raw_post("/predict", orjson.dumps([ROW]))
    with connect(timed_server) as sock:
        for start in range(0, len(head), 40):  # a head in pieces, across several checks
            sock.sendall(head[start : start + 40])
            time.sleep(HEADER_TIMEOUT_S / 8)
        ((status, body),) = read_answers(sock, 1)
    assert status == 200 and orjson.loads(body)["predictions"] == ["setosa"]


def test_a_kept_alive_connection_gets_a_new_deadline_for_each_head(
    timed_server: Server,
) -> None:
    request = raw_post("/predict", orjson.dumps([ROW]))
    with connect(timed_server) as sock:
        for _ in range(3):  # answered, then idle under the keep-alive timeout, then again
            sock.sendall(request)
            assert read_answers(sock, 1)[0][0] == 200
            time.sleep(HEADER_TIMEOUT_S * 0.6)
        sock.sendall(request[:20])  # and then a head that stops
        status, body, waited_s = closing_answer(sock)
    assert status == 408 and body["field"] == "request head"
    assert waited_s >= HEADER_TIMEOUT_S * 0.9


@pytest.mark.parametrize(
    "sent",
    [
        b"GARBAGE\x00\x01 / HTTP/1.1\r\n\r\n",
        b"POST /predict HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
        b"POST /predict HTTP/1.1\r\nBad Header\r\n\r\n",
    ],
)
def test_bytes_that_are_not_http_get_a_json_400(timed_server: Server, sent: bytes) -> None:
    with connect(timed_server) as sock:
        sock.sendall(sent)
        status, body, _ = closing_answer(sock)
    assert status == 400
    assert body == {
        "error": "request: expected an HTTP/1.1 request, found bytes that do not parse as one "
        "(the connection is closed)",
        "field": "request",
        "expected": "an HTTP/1.1 request",
        "found": "bytes that do not parse as one",
    }


def test_many_idle_connections_are_let_go_and_the_server_still_answers(
    timed_server: Server,
) -> None:
    socks = [connect(timed_server) for _ in range(200)]
    try:
        with timed_server.client() as client:
            assert client.post("/predict", json=[ROW]).status_code == 200
        for sock in socks:
            assert closing_answer(sock)[0] == 408
    finally:
        for sock in socks:
            sock.close()


def test_refused_connections_are_counted_as_invalid(timed_server: Server) -> None:
    def invalid() -> float:
        with timed_server.client() as client:
            text = client.get("/metrics").text
        found = re.search(
            r'readyml_rejected_requests_total\{model="",reason="invalid"\} (\S+)', text
        )
        return float(found.group(1)) if found else 0.0

    before = invalid()
    with connect(timed_server) as sock:
        sock.sendall(b"NOT HTTP\r\n\r\n")
        assert closing_answer(sock)[0] == 400
    with connect(timed_server) as sock:
        assert closing_answer(sock)[0] == 408
    assert invalid() == before + 2


def test_a_head_past_the_size_limit_is_refused_431_and_closed(timed_server: Server) -> None:
    with connect(timed_server) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nX-Long: ")
        # A head that never ends (no read holds it whole), just past the limit: the server
        # reads every byte sent before it answers, so the answer is not lost to a reset.
        for _ in range(MAX_HEADER_BYTES // 1024 + 1):
            sock.sendall(b"a" * 1024)
            time.sleep(0.005)
        status, body, waited_s = closing_answer(sock)
    assert status == 431 and waited_s < HEADER_TIMEOUT_S  # refused for its size, not time
    assert body["expected"] == f"at most {MAX_HEADER_BYTES} bytes"
    with timed_server.client() as client:
        assert client.post("/predict", json=[ROW]).status_code == 200


def test_a_long_head_within_the_limit_is_answered(timed_server: Server) -> None:
    value = "a" * (MAX_HEADER_BYTES // 2)
    head = raw_post("/predict", orjson.dumps([ROW]), extra=f"X-Long: {value}\r\n")
    with connect(timed_server) as sock:
        for start in range(0, len(head), 1024):  # in pieces, as a slow link sends it
            sock.sendall(head[start : start + 1024])
            time.sleep(0.005)
        ((status, _),) = read_answers(sock, 1)
    assert status == 200


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"expected seconds > 0, found 0"):
        head_limits.configure(0)
    with pytest.raises(ValueError, match=r"expected bytes > 0, found 0"):
        head_limits.configure(1.0, 0)
