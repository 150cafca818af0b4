"""HTTP details on every route: request ids, HEAD, media types, readiness for /ping."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time

import httpx
import orjson
import pytest

from readyml.config import ServingSpec
from readyml.serve._http import MAX_REQUEST_ID_CHARS, error_content
from readyml.serve.app import ServingApp
from readyml.serve.batching import QueueFull
from readyml.serve.deployment import ModelTable
from readyml.serve.metrics import ServerMetrics

from .conftest import ROW, TOKEN, Server

AUTH = {"Authorization": f"Bearer {TOKEN}"}
GET_ROUTES = [
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/iris",
    "/v2/models/iris/ready",
    "/metrics",
    "/ping",
    "/health",
    "/openapi.json",
]
V2_ROW = {
    "inputs": [
        {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
        for name, value in ROW.items()
    ]
}


@pytest.mark.parametrize("path", GET_ROUTES)
def test_every_answer_echoes_the_request_id(server: Server, path: str) -> None:
    with server.client() as client:
        answer = client.get(path, headers={"X-Request-Id": "abc-1"})
    assert answer.status_code == 200, answer.text
    assert answer.headers.get_list("x-request-id") == ["abc-1"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/predict", [ROW]),
        ("POST", "/v2/models/iris/infer", V2_ROW),
        ("POST", "/v2/repository/index", {}),
        ("GET", "/v2/management/rollout", None),
        ("GET", "/nowhere", None),  # an error
        ("POST", "/v2/health/live", None),  # a 405
    ],
)
def test_posts_errors_and_management_calls_echo_it_once(
    server: Server, method: str, path: str, body: object
) -> None:
    with server.client(headers=AUTH) as client:
        answer = client.request(method, path, json=body, headers={"X-Request-Id": "abc-2"})
    assert answer.headers.get_list("x-request-id") == ["abc-2"], answer.text


@pytest.mark.parametrize(
    "given",
    ["ünï".encode(), b"x" * (MAX_REQUEST_ID_CHARS + 1)],
    ids=["non-ascii", "too-long"],
)
def test_an_unusable_request_id_is_replaced_by_a_generated_one(
    server: Server, given: bytes
) -> None:
    with server.client() as client:
        answer = client.post("/v2/models/iris/infer", json=V2_ROW, headers={b"X-Request-Id": given})
    assert answer.status_code == 200, answer.text
    request_id = answer.headers["x-request-id"]
    assert request_id.isascii() and request_id.isprintable()
    assert request_id.encode() != given
    assert answer.json()["id"] == request_id
    deadline = time.monotonic() + 30  # the access log is flushed every 0.5 s
    line = None
    while line is None and time.monotonic() < deadline:
        for text in server.log.read_text(errors="replace").splitlines():
            if f'"{request_id}"' in text and '"access"' in text:
                line = json.loads(text)
        time.sleep(0.1)
    assert line is not None and line["request_id"] == request_id


def test_a_printable_ascii_request_id_is_kept_whole(server: Server) -> None:
    given = "a" * (MAX_REQUEST_ID_CHARS - 4) + " b~!"
    with server.client() as client:
        answer = client.post("/v2/models/iris/infer", json=V2_ROW, headers={"X-Request-Id": given})
    assert answer.headers["x-request-id"] == given and answer.json()["id"] == given


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_is_answered_as_get_without_a_body(server: Server, path: str) -> None:
    with server.client() as client:
        head = client.head(path)
        get = client.get(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    if path != "/metrics":  # the metrics change between the two calls
        assert head.headers["content-length"] == get.headers["content-length"]


@pytest.mark.parametrize("upgrade", ["websocket", "h2c"])
def test_an_upgrade_is_ignored_and_the_request_answered_as_http(
    server: Server, upgrade: str
) -> None:
    headers = {
        "Upgrade": upgrade,
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    with server.client() as client:
        answer = client.get("/v2", headers=headers)
        assert answer.status_code == 200 and answer.json()["name"] == "readyml"
        refused = client.get("/predict", headers=headers)
    assert refused.status_code == 405 and refused.headers["content-type"] == "application/json"
    log = server.log.read_text(errors="replace")
    assert "Unsupported upgrade" not in log and "without completing handshake" not in log


def test_head_is_allowed_where_get_is(server: Server) -> None:
    with server.client() as client:
        post_only = client.head("/predict")
        get_only = client.post("/v2/health/live")
        model = client.post("/v2/models/iris/ready")
    assert post_only.status_code == 405 and post_only.headers["allow"] == "POST"
    assert get_only.status_code == 405 and get_only.headers["allow"] == "GET, HEAD"
    assert get_only.json()["expected"] == "GET or HEAD for /v2/health/live"
    assert model.status_code == 405 and model.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("path", "content_type", "expected"),
    [
        ("/predict", "application/xml", "application/json"),
        ("/predict", "text/csv", "application/json (CSV goes to /invocations)"),
        ("/predict", "text/plain", "application/json"),
        (
            "/v2/models/iris/infer",
            "text/plain",
            "application/json or application/octet-stream (with Inference-Header-Content-Length)",
        ),
        (
            "/v2/models/iris/infer",
            "application/octet-stream",  # without Inference-Header-Content-Length
            "application/json or application/octet-stream (with Inference-Header-Content-Length)",
        ),
    ],
)
def test_a_declared_non_json_body_is_refused_415(
    server: Server, path: str, content_type: str, expected: str
) -> None:
    body = orjson.dumps([ROW] if path == "/predict" else V2_ROW)
    with server.client() as client:
        answer = client.post(path, content=body, headers={"Content-Type": content_type})
    assert answer.status_code == 415, answer.text
    content = answer.json()
    assert (content["field"], content["expected"]) == ("Content-Type", expected)
    assert content["found"] == repr(content_type)


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json; charset=utf-8", "application/x-www-form-urlencoded"],
    ids=["none", "json-charset", "curl-d"],
)
@pytest.mark.parametrize("path", ["/predict", "/v2/models/iris/infer"])
def test_json_without_or_with_curl_s_default_type_is_accepted(
    server: Server, path: str, content_type: str | None
) -> None:
    body = orjson.dumps([ROW] if path == "/predict" else V2_ROW)
    headers = {} if content_type is None else {"Content-Type": content_type}
    with server.client() as client:  # httpx sends raw content without a Content-Type
        answer = client.post(path, content=body, headers=headers)
    assert answer.status_code == 200, answer.text


def test_the_batcher_s_shedding_names_its_field() -> None:
    shed = QueueFull(
        "server overloaded: 4 rows queued (limit 4), predicted wait 12 ms (limit 1000 ms); "
        "retry later",
        retry_after_s=1.4,
    )
    assert error_content(shed) == {
        "error": str(shed),
        "field": "server",
        "expected": "capacity for this request (retry after 1 s)",
        "found": "server overloaded: 4 rows queued (limit 4), predicted wait 12 ms (limit 1000 ms)",
    }


async def _empty_server(token: str | None) -> dict[str, httpx.Response]:
    """A server with no model loaded (``readyml serve`` always starts with one)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        app = ServingApp(
            table=ModelTable(),
            spec=ServingSpec(),
            metrics=ServerMetrics(),
            executor=executor,
            token=token,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = {path: await client.get(path) for path in ("/ping", "/health")}
            answers["/v2/health/ready"] = await client.get("/v2/health/ready")
            answers["/v2/repository/index"] = await client.post(
                "/v2/repository/index", headers=AUTH
            )
            return answers


def test_ping_and_health_follow_readiness() -> None:
    answers = asyncio.run(_empty_server(token=TOKEN))
    for path in ("/ping", "/health", "/v2/health/ready"):
        answer = answers[path]
        assert answer.status_code == 503, (path, answer.text)
        content = answer.json()
        assert (content["field"], content["expected"]) == ("model", "a loaded model"), path
        assert content["found"].startswith("none; load one with POST /v2/repository/models/")
    assert answers["/ping"].json()["status"] == "unavailable"


def test_a_server_without_a_token_names_what_it_expected() -> None:
    answer = asyncio.run(_empty_server(token=None))["/v2/repository/index"]
    assert answer.status_code == 401
    content = answer.json()
    assert content["field"] == "/v2/repository/index"
    assert content["expected"].startswith("a server started with READYML_SERVE_TOKEN set")
    assert content["found"] == "none configured"
