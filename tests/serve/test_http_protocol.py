"""The HTTP protocol readyml runs uvicorn with: request bodies gathered as a list of chunks."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import uvicorn

from readyml.serve._protocol import (
    BODY_HIGH_WATER,
    DIRECT_MIN,
    BodyChunks,
    ChunkedBodyProtocol,
    TimedHeadProtocol,
)
from readyml.serve.server import http_protocol
from support import iris_frame

from .conftest import ROW, Server, raw_post, read_answers, serve_process, train_iris

ROWS = 160_000  # 5.1 MB of FP64: more than BODY_HIGH_WATER, so reading pauses and resumes
BODY_TIMEOUT_S = 5.0  # long enough for a loaded host to send the tests' 5 MB bodies


@pytest.fixture(scope="module")
def big_body_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    serving = {
        "max_body_bytes": 16 << 20,
        "request_log": {"enabled": False},
        "http_protocol": "readyml",  # a tabular model would get uvicorn's own
        "body_timeout_s": BODY_TIMEOUT_S,
    }
    root = train_iris(tmp_path_factory.mktemp("iris-big-bodies"), serving=serving)
    with serve_process(root) as started:
        yield started


def test_readyml_serves_with_the_chunked_body_protocol() -> None:
    # Fails when uvicorn moves to a release the protocol was not checked against: compare its
    # RequestResponseCycle.receive and HttpToolsProtocol.on_body with _protocol.py, then add
    # the release to UVICORN_VERSIONS.
    assert http_protocol() is ChunkedBodyProtocol


def test_another_uvicorn_release_gets_uvicorn_s_own_protocol(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(uvicorn, "__version__", "9.0.0")
    assert http_protocol() == "auto"
    assert http_protocol("auto", [TABULAR]) == "auto"


TABULAR = {"inputs": [{"name": "x", "type": "number"}]}
TENSOR = {"inputs": [{"name": "image", "type": "number", "shape": [None, 3, 8, 8]}]}


def test_auto_picks_readyml_s_protocol_only_when_a_model_takes_a_tensor() -> None:
    assert http_protocol("auto", [TABULAR]) is TimedHeadProtocol  # uvicorn's own, timed
    assert http_protocol("auto", [TABULAR, TENSOR]) is ChunkedBodyProtocol
    assert http_protocol("auto", []) is TimedHeadProtocol


def test_an_explicit_protocol_is_kept_whatever_the_models() -> None:
    assert http_protocol("uvicorn", [TENSOR]) is TimedHeadProtocol
    assert http_protocol("readyml", [TABULAR]) is ChunkedBodyProtocol


def test_body_chunks_hand_over_one_chunk_as_is_and_join_several_writably() -> None:
    one = BodyChunks(b"abc")
    assert one.take() is one.parts[0]
    several = BodyChunks(b"ab")
    several.append(b"cd")
    joined = several.take()
    assert joined == b"abcd" and isinstance(joined, bytearray) and len(several) == 4
    assert bytes(several) == b"abcd" and bytes(one) is one.parts[0]  # uvicorn's receive


def tiled_iris() -> tuple[np.ndarray, list[str]]:
    features = iris_frame().drop(columns=["species"])
    values = np.tile(features.to_numpy(dtype="<f8"), (ROWS // len(features) + 1, 1))[:ROWS]
    return values, list(features.columns)


def binary_request(values: np.ndarray) -> tuple[bytes, bytes]:
    raw = values.astype("<f8").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": list(values.shape),
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "predict_proba"}],
        }
    )
    return header, raw


def expected_proba(server: Server, values: np.ndarray, names: list[str]) -> np.ndarray:
    """Probabilities of the first 150 rows by JSON records, tiled like the tensor."""
    records = [dict(zip(names, row.tolist(), strict=True)) for row in values[:150]]
    with server.client() as client:
        answer = client.post("/predict", json=records)
    assert answer.status_code == 200, answer.text
    proba = np.asarray(answer.json()["probabilities"], dtype=np.float64)
    return np.tile(proba, (ROWS // 150 + 1, 1))[:ROWS]


@pytest.mark.parametrize("sent", ["with content-length", "chunked"])
def test_a_body_larger_than_the_high_water_mark_arrives_whole(
    big_body_server: Server, sent: str
) -> None:
    values, names = tiled_iris()
    header, raw = binary_request(values)
    body = header + raw
    assert len(body) > BODY_HIGH_WATER
    content: bytes | Iterator[bytes] = body
    if sent == "chunked":  # no Content-Length: the client sends 64 KiB chunks
        content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
    with big_body_server.client() as client:
        answer = client.post(
            "/v2/models/iris/infer",
            content=content,
            headers={
                "Inference-Header-Content-Length": str(len(header)),
                "Content-Type": "application/octet-stream",
            },
        )
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    assert output["shape"] == [ROWS, 3]
    got = np.asarray(output["data"]).reshape(ROWS, 3)
    assert np.allclose(got, expected_proba(big_body_server, values, names))


def connect(server: Server) -> socket.socket:
    url = httpx.URL(server.url)
    sock = socket.create_connection((url.host, url.port), timeout=30)
    return sock


def test_pipelined_requests_are_each_answered_in_order(big_body_server: Server) -> None:
    other = dict(ROW, petal_length=6.0, petal_width=2.3)
    first, second = orjson.dumps([ROW]), orjson.dumps([other, ROW])
    with connect(big_body_server) as sock:
        sock.sendall(raw_post("/predict", first) + raw_post("/predict", second))
        answers = read_answers(sock, 2)
    assert [status for status, _ in answers] == [200, 200]
    assert orjson.loads(answers[0][1])["predictions"] == ["setosa"]
    assert orjson.loads(answers[1][1])["predictions"] == ["virginica", "setosa"]


def test_expect_100_continue_is_answered_before_the_body(big_body_server: Server) -> None:
    body = orjson.dumps([ROW])
    request = raw_post("/predict", body, "Expect: 100-continue\r\n")
    with connect(big_body_server) as sock:
        sock.sendall(request[: -len(body)])
        assert read_answers(sock, 1) == [(100, b"")]
        sock.sendall(body)
        ((status, answer),) = read_answers(sock, 1)
    assert status == 200 and orjson.loads(answer)["predictions"] == ["setosa"]


@pytest.mark.parametrize("sent", [0, DIRECT_MIN])
def test_a_long_body_that_stops_arriving_is_refused_408_and_closed(
    big_body_server: Server, sent: int
) -> None:
    """Read straight into its buffer (its length is in the direct range): still timed."""
    length = 2 * DIRECT_MIN
    head = raw_post("/predict", b"").replace(b"Content-Length: 0", b"Content-Length: %d" % length)
    with connect(big_body_server) as sock:
        sock.sendall(head + b" " * sent)
        ((status, answer),) = read_answers(sock, 1)
        assert status == 408, answer
        assert orjson.loads(answer)["found"] == f"0 of {length} bytes"  # none reached the app
        assert sock.recv(1) == b""
    with big_body_server.client() as client:
        assert client.post("/predict", json=[ROW]).status_code == 200


def test_the_server_log_has_no_protocol_errors(big_body_server: Server) -> None:
    log = Path(big_body_server.log).read_text(errors="replace")
    assert "Traceback" not in log, log
