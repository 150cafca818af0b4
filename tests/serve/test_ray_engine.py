"""Scale-out on Ray: options from the batching config, and a real local Ray cluster.

The cluster test runs ``ray_scenario.py`` inside its own network and PID namespace
(``unshare``; Ray's services listen on every address even when told to use loopback), with
a private ``RAY_TMPDIR`` so that it never meets another Ray cluster of the machine. It starts
Ray once, for both the Ray Serve deployment and batch prediction on Ray Data, and shuts it
down through the API (the server's SIGINT handler), never with ``ray stop``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from conftest import _unavailable
from readyml._ray import private_environment
from readyml.cli import app
from readyml.config import Project, RaySpec, ServingSpec
from readyml.predict.batch import BatchPrediction
from readyml.serve import ray_engine
from readyml.serve.ray_engine import ReplicaApp, deployment_options, initial_replicas
from support import iris_frame

from .conftest import train_iris
from .test_rollout import register

HERE = Path(__file__).resolve().parent
TOKEN = "ray-test-token"
# Seconds the whole scenario may take: Ray start (~5 s), replicas (~20 s on 2 cores), batch.
SCENARIO_TIMEOUT_S = 420
NAMESPACE = ["unshare", "--net", "--pid", "--fork", "--mount-proc"]
runner = CliRunner()


# -- without Ray ------------------------------------------------------------------------


def test_ongoing_requests_follow_the_batching_config() -> None:
    spec = ServingSpec.model_validate(
        {"batching": {"max_batch_size": 64, "max_queue_rows": 512}, "ray": {"replicas": 3}}
    )
    options = deployment_options(spec, "{}")
    assert options["num_replicas"] == 3
    assert options["max_ongoing_requests"] == 64 + 512  # not Ray's default of 5
    assert options["max_queued_requests"] == 512
    assert options["ray_actor_options"]["runtime_env"]["env_vars"] == {
        "READYML_SERVE_OPTIONS": "{}"
    }
    unbatched = spec.model_copy(
        update={"batching": spec.batching.model_copy(update={"enabled": False})}
    )
    assert deployment_options(unbatched, "{}")["max_ongoing_requests"] == 1 + 512


def test_autoscaling_bounds_replace_the_fixed_count() -> None:
    spec = ServingSpec.model_validate({"ray": {"min_replicas": 0, "max_replicas": 4}})
    options = deployment_options(spec, "{}")
    assert "num_replicas" not in options
    assert options["autoscaling_config"] == {
        "min_replicas": 0,
        "initial_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 64.0,
    }
    assert initial_replicas(spec.ray) == 1
    with pytest.raises(ValueError, match="max_replicas: expected at least min_replicas"):
        RaySpec(min_replicas=3, max_replicas=2)


def test_serve_on_ray_without_ray_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = train_iris(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if not installed
    result = runner.invoke(app, ["serve", "-p", str(root), "--engine", "ray", "--replicas", "2"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "error: engine 'ray': expected Ray to be installed, found no 'ray' module; install "
        "the extra: pip install 'readyml[ray]'"
    ]


def test_serve_on_ray_refuses_workers(tmp_path: Path) -> None:
    root = train_iris(tmp_path)
    result = runner.invoke(app, ["serve", "-p", str(root), "--engine", "ray", "--workers", "2"])
    assert result.exit_code == 2
    assert "serving.workers: expected 1 with engine 'ray'" in result.stderr


def test_local_cluster_keeps_rays_proxy_without_haproxy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ray_engine.LOCAL_CLUSTER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    ray_engine._configure_local_cluster()
    assert os.environ["RAY_SERVE_ENABLE_HA_PROXY"] == "0"
    assert os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] == "2"
    assert "HAProxy is not installed" in capsys.readouterr().err
    monkeypatch.setenv("RAY_SERVE_ENABLE_HA_PROXY", "0")  # asked for: no notice
    ray_engine._configure_local_cluster()
    assert capsys.readouterr().err == ""


def test_replica_sends_the_request_id_once() -> None:
    """Ray's proxy adds X-Request-ID itself: the replica drops the app's copy."""
    sent: list[MutableMapping[str, Any]] = []

    async def app_(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"x-request-id", b"r-1")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    replica = ReplicaApp()
    replica.app_ = app_
    asyncio.run(replica({"type": "http"}, None, send))  # type: ignore[arg-type]
    assert sent[0]["headers"] == [(b"content-type", b"application/json")]
    assert sent[1]["body"] == b"{}"


# -- a real local Ray cluster, in its own namespaces --------------------------------------


def _namespaces_work() -> str | None:
    """Why a network and PID namespace cannot be made here, or ``None`` when they can."""
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (util-linux, iproute2)"
    probe = subprocess.run(
        [*NAMESPACE, "sh", "-c", "ip link set lo up"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"unshare is not permitted here: {probe.stderr.strip() or probe.returncode}"
    return None


@pytest.fixture(scope="module")
def iris_rows() -> pd.DataFrame:
    frame = pd.concat([iris_frame().drop(columns=["species"])] * 20, ignore_index=True)
    frame.insert(0, "id", [f"r{i}" for i in range(len(frame))])
    return frame


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory: pytest.TempPathFactory, iris_rows: pd.DataFrame) -> Iterator[Any]:
    """Everything ``ray_scenario.py`` observed, with the in-process batch outputs beside it."""
    if importlib.util.find_spec("ray") is None:
        _unavailable("Ray is not installed (pip install 'readyml[ray]')")
    reason = _namespaces_work()
    if reason is not None:
        _unavailable(reason)
    workdir = tmp_path_factory.mktemp("ray")
    # Half a CPU per replica leaves one of the two CPUs free for batch prediction on Ray.
    root = train_iris(workdir / "project", serving={"ray": {"replica_cpus": 0.5}})
    register(root, lambda: LogisticRegression(max_iter=500, C=0.5))  # version 2, to pin
    batch_input = workdir / "in.parquet"
    pq.write_table(pa.Table.from_pandas(iris_rows, preserve_index=False), batch_input, 700)
    nan_values = iris_rows["petal_width"].to_numpy().copy()
    nan_values[1234] = np.nan
    nan_table = pa.Table.from_pandas(iris_rows, preserve_index=False).set_column(
        4, "petal_width", pa.array(nan_values, from_pandas=False)
    )
    nan_input = workdir / "nan.parquet"
    pq.write_table(nan_table, nan_input, 700)
    results = workdir / "results.json"
    spec = {
        "root": str(root),
        "token": TOKEN,
        "batch_input": str(batch_input),
        "nan_input": str(nan_input),
        "workdir": str(workdir),
        "results": str(results),
    }
    (workdir / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    # Short and private: Ray's sockets live under it, and "auto" finds only our cluster.
    ray_tmp = tempfile.mkdtemp(prefix="rml-ray-")
    env = os.environ | private_environment(ray_tmp)
    script = (
        f"ip link set lo up && exec {sys.executable} {HERE / 'ray_scenario.py'} {workdir}/spec.json"
    )
    try:
        done = subprocess.run(
            [*NAMESPACE, "sh", "-c", script],
            capture_output=True,
            text=True,
            env=env,
            timeout=SCENARIO_TIMEOUT_S,
        )
        if not results.exists():
            pytest.fail(
                f"the Ray scenario wrote no results:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
            )
        observed = json.loads(results.read_text(encoding="utf-8"))
        local = workdir / "batch-local.parquet"
        BatchPrediction(engine="local", keep=["id"], row_id=True, batch_rows=300).run(
            Project.load(root), "iris@champion", batch_input, local
        )
        yield {
            **observed,
            "local": str(local),
            "rows": len(iris_rows),
            "scenario_rc": done.returncode,
        }
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_ray_serve_answers_as_the_single_process_server(ray_run: dict[str, Any]) -> None:
    assert ray_run["scenario_rc"] == 0, ray_run["ray_log"]
    assert len(ray_run["pairs"]) >= 16
    for pair in ray_run["pairs"]:
        single, ray = pair["single"], pair["ray"]
        where = f"{pair['request']['method']} {pair['request']['path']}"
        assert ray["status"] == single["status"], (where, single, ray)
        assert ray["body"] == single["body"], where
        assert (ray["content_type"], ray["allow"]) == (single["content_type"], single["allow"])
        assert len(ray["request_ids"]) == 1, (where, ray["request_ids"])
    first = ray_run["pairs"][0]
    assert first["ray"]["request_ids"] == ["p-1"] == first["single"]["request_ids"]
    statuses = [pair["ray"]["status"] for pair in ray_run["pairs"]]
    assert statuses.count(200) == 9 and {400, 401, 404, 405} <= set(statuses)
    code, seconds = ray_run["ray_stop"]
    assert code == 0 and seconds < 60  # SIGINT: serve.shutdown(), ray.shutdown()


def test_a_repository_change_reaches_every_local_replica(ray_run: dict[str, Any]) -> None:
    pinned = ray_run["pin"]
    assert pinned["status"] == 200, pinned
    assert pinned["body"] == {
        "name": "iris",
        "version": "2",
        "state": "READY",
        "pinned": True,
        "workers": 2,
    }
    # Answered once both replicas serve it: whichever replica answers, it lists version 2.
    assert ray_run["versions_after_pin"] == [["1", "2"]] * len(ray_run["versions_after_pin"])
    assert ray_run["versions_after_unpin"] == [["1"]] * len(ray_run["versions_after_unpin"])
    refused = ray_run["deploy"]
    assert refused["status"] == 409
    assert refused["body"]["error"].startswith(
        "deploy: expected a server with one replica, found 2 (each would run its own rollout); "
        "restart it with --replicas 1"
    )


def test_a_scrape_on_any_replica_counts_every_replicas_requests(ray_run: dict[str, Any]) -> None:
    metrics = ray_run["metrics"]
    before, after = metrics["before"], metrics["after"]
    # Each replica alone would answer its own share, and the scrapes would disagree.
    assert len(set(before)) == 1 and before[0] > 0, before
    assert after == [before[0] + metrics["sent"]] * len(after), (before, after)


def test_batch_predict_on_ray_writes_the_in_process_output(ray_run: dict[str, Any]) -> None:
    batch = ray_run["batch"]
    assert batch["code"] == 0, batch["stderr"][-3000:]
    assert f"{ray_run['rows']:,} rows scored with iris:1 on ray" in batch["stdout"]
    on_ray, local = pq.read_table(batch["out"]), pq.read_table(ray_run["local"])
    assert on_ray.schema == local.schema
    assert on_ray.equals(local)


def test_batch_predict_on_ray_fails_in_one_line_on_a_bad_value(ray_run: dict[str, Any]) -> None:
    nan = ray_run["nan"]
    assert nan["code"] == 2
    errors = [line for line in nan["stderr"].splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: column 'petal_width': expected a number, found null (row 1234); 1 such "
        "value(s) in this batch"
    ], nan["stderr"][-3000:]
    assert not Path(nan["out"]).exists()
