"""Request logs in Parquet (read with DuckDB), JSON access lines, and a real Prometheus scrape."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from .conftest import ROW, Server, free_port

PROMETHEUS_START_TIMEOUT_S = 30.0


def test_request_log_is_written_and_readable_with_duckdb(server: Server) -> None:
    with server.client() as client:
        for index in range(5):
            client.post("/predict", json=[ROW, ROW], headers={"x-request-id": f"log-{index}"})
    pattern = str(server.root / ".readyml" / "logs" / "**" / "*.parquet")
    deadline = time.monotonic() + 10
    rows: list[tuple[object, ...]] = []
    with duckdb.connect() as con:
        while time.monotonic() < deadline:
            try:
                rows = con.execute(
                    "SELECT request_id, model, version, sepal_length, prediction, "
                    "proba_setosa, latency_ms, status, ts "
                    f"FROM read_parquet('{pattern}', hive_partitioning = false) "
                    "WHERE request_id LIKE 'log-%' ORDER BY request_id"
                ).fetchall()
            except duckdb.IOException:
                rows = []
            if len(rows) == 10:
                break
            time.sleep(0.2)
        columns = [
            row[0]
            for row in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet('{pattern}', hive_partitioning = false)"
            ).fetchall()
        ]
    assert len(rows) == 10
    request_id, model, version, sepal_length, prediction, proba, latency, status, ts = rows[0]
    assert (request_id, model, version, sepal_length, prediction) == (
        "log-0",
        "iris",
        1,
        5.1,
        "setosa",
    )
    assert 0.5 < float(str(proba)) <= 1.0 and float(str(latency)) > 0 and status == 200
    assert ts is not None
    assert columns[:4] == ["request_id", "ts", "model", "version"]
    assert {"proba_versicolor", "proba_virginica", "latency_ms", "status", "rss_mb"} <= set(columns)
    partitions = list(
        (server.root / ".readyml" / "logs" / "model=iris" / "version=1").glob("hour=*")
    )
    assert partitions and len(partitions[0].name) == len("hour=YYYYMMDDHH")
    # The writer's CPU time is exported: the log's cost, beyond one append per request.
    metrics = httpx.get(f"{server.url}/metrics").text
    cpu = [line for line in metrics.splitlines() if line.startswith("readyml_request_log_cpu")]
    assert cpu and float(cpu[0].split()[-1]) > 0


def test_access_log_lines_are_json_without_secrets(server: Server) -> None:
    with server.client() as client:
        client.post(
            "/predict",
            json=[ROW],
            headers={"x-request-id": "access-1", "Authorization": "Bearer zz"},
        )
    deadline = time.monotonic() + 5
    line = None
    while line is None and time.monotonic() < deadline:
        for text in server.log.read_text(errors="replace").splitlines():
            if '"access-1"' in text:
                line = json.loads(text)
        time.sleep(0.1)
    assert line is not None
    assert line["status"] == 200 and line["model"] == "iris" and line["path"] == "/predict"
    assert "zz" not in json.dumps(line)


def test_metrics_are_scraped_by_a_real_prometheus(server: Server) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    with server.client() as client:
        client.post("/predict", json=[ROW])
    port = free_port()
    target = server.url.removeprefix("http://")
    with tempfile.TemporaryDirectory(prefix="readyml-prom-") as tmp:
        config = Path(tmp) / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n  - job_name: readyml\n"
            f"    static_configs:\n      - targets: ['{target}']\n",
            encoding="utf-8",
        )
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--storage.tsdb.path={Path(tmp) / 'data'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + PROMETHEUS_START_TIMEOUT_S
            result: list[object] = []
            while time.monotonic() < deadline and not result:
                time.sleep(0.5)
                try:
                    answer = httpx.get(
                        f"http://127.0.0.1:{port}/api/v1/query",
                        params={"query": 'readyml_requests_total{route="/predict",status="200"}'},
                        timeout=2,
                    )
                except httpx.HTTPError:
                    continue
                if answer.status_code == 200:
                    result = answer.json()["data"]["result"]
            assert result, "Prometheus did not scrape readyml_requests_total"
            assert float(result[0]["value"][1]) >= 1  # type: ignore[index]
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
