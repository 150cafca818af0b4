"""Run inside a fresh network and PID namespace by ``test_ray_engine.py``; not a test module.

Starts the single-process server and ``readyml serve --engine ray --replicas 2`` for the same
project, sends both the same requests over loopback, runs ``readyml batch-predict --engine
ray`` against the Ray cluster the server started, stops the Ray server with SIGINT (it shuts
Ray down through the API), and writes everything observed as JSON for the test to judge.
Being PID 1 of its namespace, this process takes every Ray process with it when it exits.

Usage: ``python ray_scenario.py SPEC.json`` where the spec holds ``root``, ``token``,
``batch_input``, ``nan_input``, ``workdir`` and ``results``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

# Seconds to wait for a server to answer /v2/health/ready (Ray starts replicas slowly).
START_TIMEOUT_S = 150.0
STOP_TIMEOUT_S = 60.0
# Requests sent between the two readings of /metrics, and scrapes in each reading.
METRICS_REQUESTS = 40
SCRAPES = 8
# How long a reading waits for the replicas' metrics to agree, and the time between its
# rounds of scrapes (longer than the 0.5 s tick at which replicas share their metrics).
SETTLE_TIMEOUT_S = 15.0
SETTLE_S = 1.0
REFERENCE_PORT = 8101
RAY_PORT = 8102
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
ROWS = [ROW, ROW | {"petal_length": 5.5, "petal_width": 2.1}, ROW | {"petal_length": 4.0}]


def requests(token: str) -> list[dict[str, Any]]:
    """The requests both servers answer: every protocol, errors and management calls."""
    auth = {"authorization": f"Bearer {token}"}
    v2 = {
        "id": "v2-1",
        "inputs": [
            {
                "name": name,
                "shape": [len(ROWS)],
                "datatype": "FP64",
                "data": [r[name] for r in ROWS],
            }
            for name in ROW
        ],
    }
    split = {"dataframe_split": {"columns": list(ROW), "data": [list(r.values()) for r in ROWS]}}
    return [
        {"method": "POST", "path": "/predict", "json": ROWS, "headers": {"x-request-id": "p-1"}},
        {"method": "POST", "path": "/predict", "json": [ROW] * 300},
        {"method": "POST", "path": "/invocations", "json": split},
        {"method": "POST", "path": "/v2/models/iris/infer", "json": v2},
        {"method": "POST", "path": "/v2/models/iris/versions/1/infer", "json": v2},
        {"method": "POST", "path": "/predict", "json": [ROW | {"sepal_width": "wide"}]},
        {"method": "POST", "path": "/predict", "json": [{"sepal_length": 1.0}]},
        {"method": "POST", "path": "/predict", "content": b"{not json"},
        {"method": "PUT", "path": "/predict"},
        {"method": "GET", "path": "/nope"},
        {"method": "GET", "path": "/v2/models/iris"},
        {"method": "GET", "path": "/v2/models/iris/versions/9/ready"},
        {"method": "GET", "path": "/v2/health/ready"},
        {"method": "GET", "path": "/openapi.json"},
        {"method": "POST", "path": "/v2/repository/index", "json": {}},
        {"method": "POST", "path": "/v2/repository/index", "json": {}, "headers": auth},
    ]


def observe(client: httpx.Client, request: dict[str, Any]) -> dict[str, Any]:
    answer = client.request(
        request["method"],
        request["path"],
        json=request.get("json"),
        content=request.get("content"),
        headers=request.get("headers"),
    )
    try:
        body: Any = answer.json()
    except ValueError:
        body = answer.text
    return {
        "status": answer.status_code,
        "content_type": answer.headers.get("content-type"),
        "allow": answer.headers.get("allow"),
        "request_ids": answer.headers.get_list("x-request-id"),
        "body": body,
    }


def repository_changes(url: str, token: str) -> dict[str, Any]:
    """Pin version 2 on the Ray server, read which versions answer on new connections (Ray's
    proxy spreads them over the replicas), unpin it; a rollout is refused."""
    auth = {"authorization": f"Bearer {token}"}
    repository = f"{url}/v2/repository/models/iris"
    found: dict[str, Any] = {}

    def versions() -> list[Any]:
        seen = []
        for _ in range(16):
            with httpx.Client(timeout=30) as fresh:
                seen.append(fresh.get(f"{url}/v2/models/iris").json().get("versions"))
        return seen

    with httpx.Client(timeout=120) as client:
        parameters = {"parameters": {"version": 2, "pin": True}}
        found["pin"] = observe_url(client, f"{repository}/load", parameters, auth)
        found["versions_after_pin"] = versions()
        unpin = {"parameters": {"version": 2}}
        found["unpin"] = observe_url(client, f"{repository}/unload", unpin, auth)
        found["versions_after_unpin"] = versions()
        deploy = {"model": "iris", "version": 2, "mode": "direct"}
        found["deploy"] = observe_url(client, f"{url}/v2/management/deploy", deploy, auth)
    return found


def summed_metrics(url: str) -> dict[str, Any]:
    """Read the /predict count from /metrics on new connections (Ray's proxy spreads them
    over the replicas), send requests the same way, and read it again."""

    def predicted() -> float:
        with httpx.Client(timeout=30) as fresh:
            text = fresh.get(f"{url}/metrics").text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "readyml_requests"
            for sample in family.samples
            if sample.name == "readyml_requests_total" and sample.labels["route"] == "/predict"
        )

    def reading() -> list[float]:
        # Settled once two rounds of scrapes, more than a tick apart, all agree: by then
        # every replica has sent the actor its latest metrics.
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        previous: list[float] = []
        while True:
            seen = [predicted() for _ in range(SCRAPES)]
            if (seen == previous and len(set(seen)) == 1) or time.monotonic() > deadline:
                return seen
            previous = seen
            time.sleep(SETTLE_S)

    before = reading()
    for _ in range(METRICS_REQUESTS):
        with httpx.Client(timeout=30) as fresh:
            fresh.post(f"{url}/predict", json=[ROW])
    return {"before": before, "after": reading(), "sent": METRICS_REQUESTS}


def observe_url(
    client: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    answer = client.post(url, json=body, headers=headers)
    return {"status": answer.status_code, "body": answer.json()}


def start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < START_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2.0).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url}: not ready after {START_TIMEOUT_S:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=STOP_TIMEOUT_S)
    return code, time.monotonic() - started


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    workdir = Path(spec["workdir"])
    env = dict(os.environ, READYML_SERVE_TOKEN=spec["token"])
    cli = [sys.executable, "-c", "from readyml.cli import main; main()"]
    serve = [*cli, "serve", "-p", spec["root"], "--no-access-log"]
    results: dict[str, Any] = {}
    reference = start([*serve, "--port", str(REFERENCE_PORT)], workdir / "reference.log", env)
    on_ray = start(
        [*serve, "--port", str(RAY_PORT), "--engine", "ray", "--replicas", "2"],
        workdir / "ray-serve.log",
        env,
    )
    try:
        wait_ready(f"http://127.0.0.1:{REFERENCE_PORT}", reference)
        results["ray_ready_s"] = wait_ready(f"http://127.0.0.1:{RAY_PORT}", on_ray)
        pairs = []
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{REFERENCE_PORT}", timeout=30) as one,
            httpx.Client(base_url=f"http://127.0.0.1:{RAY_PORT}", timeout=30) as ray,
        ):
            for request in requests(spec["token"]):
                pairs.append(
                    {"request": request | {"content": None}, "single": observe(one, request)}
                    | {"ray": observe(ray, request)}
                )
        results["pairs"] = pairs
        results.update(repository_changes(f"http://127.0.0.1:{RAY_PORT}", spec["token"]))
        results["metrics"] = summed_metrics(f"http://127.0.0.1:{RAY_PORT}")
        batch = [*cli, "batch-predict", "iris@champion", "-p", spec["root"]]
        ray_batch = ["--engine", "ray", "--ray-address", "auto", "--actors", "2"]
        ray_batch += ["--batch-rows", "256", "--keep", "id", "--row-id"]
        for name, source in (("batch", spec["batch_input"]), ("nan", spec["nan_input"])):
            out = workdir / f"{name}-ray.parquet"
            started = time.monotonic()
            done = subprocess.run(
                [*batch, source, "--out", str(out), *ray_batch],
                capture_output=True,
                text=True,
                env=env,
                timeout=START_TIMEOUT_S,
            )
            results[name] = {
                "code": done.returncode,
                "stdout": done.stdout,
                "stderr": done.stderr,
                "out": str(out),
                "seconds": time.monotonic() - started,
            }
        results["ray_stop"] = stop(on_ray)
    finally:
        for process in (on_ray, reference):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
        results["ray_log"] = (workdir / "ray-serve.log").read_text(errors="replace")[-4000:]
        Path(spec["results"]).write_text(json.dumps(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
