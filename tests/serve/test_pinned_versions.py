"""Several versions of one model at once: the current one answers every route without a
version, pinned ones answer at ``/v2/models/{name}/versions/{version}/...``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from readyml.cli import app

from .conftest import ROW, TOKEN, Server, serve_process, train_iris
from .test_rollout import register

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SERVING = {"request_log": {"enabled": False}, "access_log": False, "alias_poll_s": 0}
INFER = {
    "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [list(ROW.values())]}]
}

runner = CliRunner()


@pytest.fixture(scope="module")
def three_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An iris project with versions 1 (champion), 2 and 3."""
    root = train_iris(tmp_path_factory.mktemp("iris-pinned"), serving=SERVING)
    register(root, lambda: LogisticRegression(max_iter=500, C=0.5))
    register(root, lambda: LogisticRegression(max_iter=500, C=0.05))
    return root


@pytest.fixture(scope="module")
def server(three_versions: Path) -> Iterator[Server]:
    with serve_process(three_versions, "--model", "iris:1", "--model", "iris:3") as started:
        yield started


def infer(client: httpx.Client, version: str | None = None) -> httpx.Response:
    path = "/v2/models/iris" + (f"/versions/{version}" if version else "") + "/infer"
    return client.post(path, json=INFER)


def load(client: httpx.Client, **parameters: Any) -> httpx.Response:
    body = {"parameters": parameters}
    return client.post("/v2/repository/models/iris/load", json=body, headers=AUTH)


def unload(client: httpx.Client, **parameters: Any) -> httpx.Response:
    body = {"parameters": parameters}
    return client.post("/v2/repository/models/iris/unload", json=body, headers=AUTH)


def test_a_later_version_given_at_start_is_served_beside_the_first(server: Server) -> None:
    assert "readyml serve: starting iris:1, iris:3 (pinned) on" in server.log.read_text()
    with server.client() as client:
        assert client.get("/v2/models/iris").json()["versions"] == ["1", "3"]
        assert client.get("/v2/models/iris/versions/3").json()["versions"] == ["3"]
        assert client.get("/v2/models/iris/versions/3/ready").json()["ready"] is True
        # Every route without a version answers with the current one.
        assert infer(client).json()["model_version"] == "1"
        assert client.post("/predict", json=[ROW]).json()["version"] == 1
        assert infer(client, "1").json()["model_version"] == "1"
        three = infer(client, "3")
        assert three.status_code == 200, three.text
        assert three.json()["model_version"] == "3"
        missing = infer(client, "2")
        assert missing.status_code == 404
        assert missing.json()["expected"] == "one of the versions it serves (1, 3)"
        index = client.post("/v2/repository/index", json={}, headers=AUTH).json()
        assert [(e["name"], e["version"]) for e in index] == [("iris", "1"), ("iris", "3")]
        metrics = client.get("/metrics").text
        assert any(
            line.startswith("readyml_requests_total{")
            and 'model="iris"' in line
            and 'version="3"' in line
            for line in metrics.splitlines()
        ), metrics


def test_versions_are_pinned_unpinned_and_made_current_over_the_repository_api(
    server: Server,
) -> None:
    with server.client() as client:
        pinned = load(client, version=2, pin=True)
        assert pinned.status_code == 200, pinned.text
        assert pinned.json() == {"name": "iris", "version": "2", "state": "READY", "pinned": True}
        assert client.get("/v2/models/iris").json()["versions"] == ["1", "2", "3"]
        assert infer(client, "2").json()["model_version"] == "2"
        assert infer(client).json()["model_version"] == "1"

        current = load(client, version=1, pin=True)
        assert current.status_code == 409
        assert current.json()["found"].startswith("1 (load it without `pin` to reload it)")
        refused = unload(client, version=1)
        assert refused.status_code == 409
        assert refused.json()["expected"] == "a pinned version of 'iris' (2, 3)"
        assert unload(client, version=7).status_code == 404
        bad = load(client, version=2, pin="yes")
        assert bad.status_code == 400 and bad.json()["field"] == "parameters.pin"

        gone = unload(client, version=3)
        assert gone.status_code == 200, gone.text
        assert gone.json() == {"name": "iris", "state": "UNAVAILABLE", "version": "3"}
        assert infer(client, "3").status_code == 404
        assert infer(client).json()["model_version"] == "1"

        # Loaded as current, a pinned version is served once, as current.
        made_current = load(client, version=2)
        assert made_current.status_code == 200, made_current.text
        assert client.get("/v2/models/iris").json()["versions"] == ["2"]
        assert infer(client).json()["model_version"] == "2"

        load(client, version=3, pin=True)
        everything = unload(client)
        assert everything.status_code == 200, everything.text
        assert infer(client).status_code == 404 and infer(client, "3").status_code == 404
        nowhere = load(client, version=3, pin=True)
        assert nowhere.status_code == 404  # nothing current to pin beside: said before loading
        assert load(client, version=1).status_code == 200
        assert client.get("/v2/models/iris").json()["versions"] == ["1"]


def test_the_same_version_twice_at_start_is_a_config_error(three_versions: Path) -> None:
    result = runner.invoke(
        app, ["serve", "-p", str(three_versions), "--model", "iris:1", "--model", "iris@champion"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: models: expected each version once, found iris:1 twice ('iris@champion' is "
        "one of them)"
    )
