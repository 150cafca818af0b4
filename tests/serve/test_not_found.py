"""A 404 for an unknown model or version names its field, what was expected and what was found."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import httpx
import pytest

from readyml.config import ServingSpec
from readyml.errors import NotFound
from readyml.serve._http import error_content
from readyml.serve.app import ServingApp
from readyml.serve.deployment import ModelTable
from readyml.serve.metrics import ServerMetrics

from .conftest import TOKEN, Server

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _split(status: int, body: dict[str, Any]) -> tuple[int, str, str, str]:
    return status, body.get("field", ""), body.get("expected", ""), body.get("found", "")


@pytest.mark.parametrize(
    ("method", "path", "json", "field", "expected", "found"),
    [
        ("GET", "/v2/models/nope", None, "model", "a loaded model (loaded: iris)", "'nope'"),
        (
            "GET",
            "/v2/models/iris/versions/999/ready",
            None,
            "model 'iris' version",
            "1 (the version it serves)",
            "'999'",
        ),
        (
            "POST",
            "/v2/repository/models/nope/unload",
            {},
            "model",
            "a loaded model (loaded: iris)",
            "'nope'",
        ),
        (
            "POST",
            "/v2/repository/models/nope/load",
            {},
            "model",
            "a registered model (models: iris)",
            "'nope'",
        ),
        (
            "POST",
            "/v2/repository/models/iris/load",
            {"parameters": {"version": "999"}},
            "model 'iris' version",
            "a registered version (versions: 1)",
            "999",
        ),
        (
            "POST",
            "/v2/repository/models/iris/load",
            {"parameters": {"alias": "staging"}},
            "model 'iris' alias",
            "an existing alias (aliases: champion)",
            "'staging'",
        ),
        (
            "POST",
            "/v2/management/deploy",
            {"model": "iris", "version": 999},
            "model 'iris' version",
            "a registered version (versions: 1)",
            "999",
        ),
        (
            "POST",
            "/v2/management/rollback",
            {"model": "nope"},
            "model",
            "a registered model (models: iris)",
            "'nope'",
        ),
        (
            "POST",
            "/v2/models/iris/versions/7/infer",
            {},
            "model 'iris' version",
            "1 (the version it serves)",
            "'7'",
        ),
        ("GET", "/nowhere", None, "path", "a route listed in /openapi.json", "'/nowhere'"),
        (
            "GET",
            "/v2/models/iris/explain",
            None,
            "path",
            "a route listed in /openapi.json",
            "'/v2/models/iris/explain'",
        ),
        (
            "POST",
            "/v2/repository/models/iris/reload",
            {},
            "path",
            "a route listed in /openapi.json",
            "'/v2/repository/models/iris/reload'",
        ),
    ],
)
def test_unknown_models_and_versions_answer_404_with_field_expected_found(
    server: Server,
    method: str,
    path: str,
    json: dict[str, Any] | None,
    field: str,
    expected: str,
    found: str,
) -> None:
    with server.client(headers=AUTH) as client:
        answer = client.request(method, path, json=json)
    assert _split(answer.status_code, answer.json()) == (404, field, expected, found), answer.text


def test_an_empty_model_table_names_what_it_expected() -> None:
    """The ``/predict`` default with nothing loaded: no server can be started that way."""
    with pytest.raises(NotFound) as caught:
        ModelTable().default()
    content = error_content(caught.value)
    assert (content["field"], content["expected"]) == ("model", "a loaded model")
    assert content["found"].startswith("none; load one with POST /v2/repository/models/")


async def _post_to_a_server_without_registry(path: str, body: dict[str, Any]) -> httpx.Response:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        app = ServingApp(
            table=ModelTable(),
            spec=ServingSpec(),
            metrics=ServerMetrics(),
            executor=executor,
            token=TOKEN,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(path, json=body, headers=AUTH)


@pytest.mark.parametrize(
    ("path", "body", "field", "expected"),
    [
        (
            "/v2/repository/models/iris/load",
            {},
            "model 'iris'",
            "a server with a registry to load from",
        ),
        (
            "/v2/management/deploy",
            {"model": "iris", "version": 1},
            "rollouts",
            "a server with a registry to deploy from",
        ),
    ],
)
def test_a_server_without_registry_names_what_it_expected(
    path: str, body: dict[str, Any], field: str, expected: str
) -> None:
    """Such a server is built in-process: ``readyml serve`` always has a registry."""
    answer = asyncio.run(_post_to_a_server_without_registry(path, body))
    assert _split(answer.status_code, answer.json()) == (404, field, expected, "none"), answer.text
