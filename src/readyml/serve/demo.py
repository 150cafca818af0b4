"""The demo's serving step: start ``readyml serve`` as a real process and talk to it.

One request by each protocol (``/predict``, MLflow ``/invocations``, Open Inference Protocol
V2 with JSON tensors and with binary tensors), answered by the champion, then the server is
stopped. Only the standard library is used on the client side, as any user could.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from readyml.config import Project
from readyml.errors import ServeError
from readyml.registry import CHAMPION, Registry

# Seconds to wait for the server to become ready, and for it to stop.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[str | None, bytes]:
    """POST; return the Inference-Header-Content-Length of the answer (if any) and its body."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.headers.get("inference-header-content-length"), answer.read()
    except urllib.error.HTTPError as error:
        return None, error.read()


# V2 datatype of each signature dtype the demo's tabular models use.
_V2_DATATYPES = {"int64": "INT64", "int32": "INT32", "bool": "BOOL", "float32": "FP32"}


def _datatype(dtype: str) -> str:
    if dtype in _V2_DATATYPES:
        return _V2_DATATYPES[dtype]
    return "FP64" if dtype.startswith("float") else "BYTES"


def _requests(
    row: dict[str, Any], dtypes: dict[str, str]
) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(protocol, path, body, headers) for one row, by each protocol."""
    json_type = {"Content-Type": "application/json"}
    columns = list(row)
    tensors = {
        "inputs": [
            {
                "name": name,
                "shape": [1],
                "datatype": _datatype(dtypes.get(name, "float64")),
                "data": [row[name]],
            }
            for name in columns
        ]
    }
    raw = np.array([[float(row[name]) for name in columns]], dtype="<f8").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [1, len(columns)],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "predict"}],
        }
    ).encode()
    return [
        ("simple /predict", "/predict", json.dumps([row]).encode(), json_type),
        (
            "MLflow /invocations",
            "/invocations",
            json.dumps(
                {"dataframe_split": {"columns": columns, "data": [list(row.values())]}}
            ).encode(),
            json_type,
        ),
        ("V2 JSON tensors", "/v2/models/{name}/infer", json.dumps(tensors).encode(), json_type),
        (
            "V2 binary tensor",
            "/v2/models/{name}/infer",
            header + raw,
            {"Inference-Header-Content-Length": str(len(header))},
        ),
    ]


def replay(url: str, rows: list[dict[str, Any]], *, id_prefix: str) -> list[str]:
    """Send each row as its own ``/predict`` request with a caller-chosen request id.

    Returns the ids of the answered requests, so that labels can be fed back for them.
    """
    answered: list[str] = []
    headers = {"Content-Type": "application/json"}
    for number, row in enumerate(rows):
        request_id = f"{id_prefix}-{number:06d}"
        body = json.dumps([row]).encode()
        request = urllib.request.Request(
            f"{url}/predict",
            data=body,
            headers={**headers, "X-Request-Id": request_id},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                answer.read()
        except urllib.error.HTTPError:
            continue
        answered.append(request_id)
    return answered


@contextlib.contextmanager
def demo_server(project: Project, *, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``readyml serve`` for ``project`` on a free loopback port; yield its URL.

    The server is stopped (SIGINT, then killed after ``STOP_TIMEOUT_S``) when the block ends.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-c",
        "from readyml.cli.serve import app; app()",
        "--project",
        str(project.root),
        "--port",
        str(port),
        "--no-access-log",
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1):
                        break
                except (urllib.error.URLError, OSError):
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        tail = log.read().decode(errors="replace")[-2000:]
                        raise ServeError(f"the demo server did not start:\n{tail}") from None
                    time.sleep(0.1)
            yield url
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def serve_demo(
    project: Project,
    registry: Registry,
    *,
    replay_rows: list[dict[str, Any]] | None = None,
    id_prefix: str = "demo",
) -> tuple[list[tuple[str, Any, Any]], list[str]]:
    """Serve the champion; ask once by each protocol, then replay ``replay_rows``.

    Returns the (protocol, request, answer) triples and the request ids of the replayed rows.
    """
    name = project.spec.name
    champion = registry.get(f"{name}@{CHAMPION}")
    row = dict(champion.input_example[0])
    results: list[tuple[str, Any, Any]] = []
    with demo_server(project) as url:
        dtypes = {c["name"]: str(c["dtype"]) for c in champion.signature.get("inputs", [])}
        for protocol, path, body, headers in _requests(row, dtypes):
            length, content = _post(url + path.format(name=name), body, headers)
            answer: Any = json.loads(content if length is None else content[: int(length)])
            split = headers.get("Inference-Header-Content-Length")
            request: Any = (
                body.decode()
                if split is None
                else f"{body[: int(split)].decode()} + {len(body) - int(split)} raw bytes"
            )
            results.append((protocol, request, answer))
        replayed = replay(url, replay_rows or [], id_prefix=id_prefix)
    return results, replayed


def logs_written(project: Project) -> list[Path]:
    """The request-log files the demo's server wrote."""
    return sorted((project.workspace / "logs").glob("**/*.parquet"))
