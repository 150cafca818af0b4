"""Bearer tokens guard the repository extension; model names never leave the registry."""

from __future__ import annotations

import pytest

from .conftest import ROW, TOKEN, Server

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    "path",
    [
        "/v2/repository/index",
        "/v2/repository/models/iris/load",
        "/v2/repository/models/iris/unload",
    ],
)
def test_management_calls_need_the_token(server: Server, path: str) -> None:
    with server.client() as client:
        missing = client.post(path)
        wrong = client.post(path, headers={"Authorization": "Bearer nope"})
    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in missing.text


def test_repository_index_load_and_hot_swap_with_the_token(server: Server) -> None:
    with server.client(headers=AUTH) as client:
        index = client.post("/v2/repository/index", json={}).json()
        assert {"name": "iris", "version": "1", "state": "READY"} in index
        loaded = client.post(
            "/v2/repository/models/iris/load", json={"parameters": {"version": "1"}}
        )
        assert loaded.status_code == 200, loaded.text
        assert client.post("/predict", json=[ROW]).status_code == 200


@pytest.mark.parametrize("name", ["..", "a%2F..%2F..", "not-a-model", "x@champion"])
def test_model_names_cannot_reach_outside_the_registry(server: Server, name: str) -> None:
    with server.client(headers=AUTH) as client:
        answer = client.post(f"/v2/repository/models/{name}/load")
    assert answer.status_code in (400, 404), answer.text


def test_unload_then_load_again(guarded_server: Server) -> None:
    with guarded_server.client(headers=AUTH) as client:
        assert client.post("/v2/repository/models/iris/unload").status_code == 200
        assert client.post("/predict", json=[ROW]).status_code == 404
        assert client.get("/v2/health/ready").status_code == 503
        # MLflow's and SageMaker's health checks mean "ready to serve" too.
        assert client.get("/ping").status_code == 503
        assert client.get("/health").status_code == 503
        assert client.post("/v2/repository/models/iris/load").status_code == 200
        assert client.post("/predict", json=[ROW]).status_code == 200
        assert client.get("/ping").status_code == 200


def test_prediction_can_require_the_token(guarded_server: Server) -> None:
    with guarded_server.client() as client:
        assert client.post("/predict", json=[ROW]).status_code == 401
        assert client.post("/predict", json=[ROW], headers=AUTH).status_code == 200
