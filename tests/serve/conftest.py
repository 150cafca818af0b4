"""A real ``readyml serve`` process on loopback, serving an iris model trained in the test."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.linear_model import LogisticRegression

from readyml.config import Project
from readyml.data import infer_schema, write_schema
from readyml.flavors.sklearn import SklearnModel
from readyml.train import open_project_registry
from support import IRIS_SPEC, iris_frame, write_project

TOKEN = "test-token-1234"
# Seconds to wait for the server to answer /v2/health/ready.
START_TIMEOUT_S = 60.0
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A started server: its URL, project folder and process."""

    url: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kwargs)


def train_iris(root: Path, serving: dict[str, Any] | None = None) -> Path:
    """An iris project whose champion (version 1) is registered directly, without a run.

    ``serving`` becomes the project's ``serving`` section. The schema is inferred and
    written as the pipeline would, so that the server reads it.
    """
    spec = dict(IRIS_SPEC)
    if serving is not None:
        spec["serving"] = serving
    write_project(root, spec)
    frame = iris_frame()
    write_schema(infer_schema(frame, label="species"), root / "schema.yaml")
    features = frame.drop(columns=["species"])
    model = SklearnModel(estimator=LogisticRegression(max_iter=500)).fit(features, frame["species"])
    registry = open_project_registry(Project.load(root))
    with tempfile.TemporaryDirectory() as tmp:
        written = model.save(Path(tmp))
        registry.register(
            "iris",
            files={path.name: path for path in written},
            model_fingerprint="iris-test",
            signature=model.signature(),
            input_example=[ROW],
            tags={"flavor": "sklearn"},
            status="blessed",
        )
    registry.promote("iris:1", who="tests", reason="serve tests")
    return root


@contextlib.contextmanager
def serve_process(
    root: Path, *args: str, token: str | None = TOKEN, env_extra: dict[str, str] | None = None
) -> Iterator[Server]:
    """Start ``readyml serve`` in ``root`` on a free port; stop it (and wait) afterwards."""
    port = free_port()
    env = {**os.environ, **(env_extra or {})}
    env.pop("READYML_SERVE_TOKEN", None)
    if token is not None:
        env["READYML_SERVE_TOKEN"] = token
    log = root / f"server-{port}.log"
    command = [
        sys.executable,
        "-c",
        "from readyml.cli.serve import app; app()",
        "--project",
        str(root),
        "--port",
        str(port),
        *args,
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    server = Server(url=f"http://127.0.0.1:{port}", root=root, process=process, log=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{server.url}/v2/health/ready", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def iris_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained iris project, shared by the session's servers."""
    return train_iris(
        tmp_path_factory.mktemp("iris-serve"),
        serving={"request_log": {"flush_interval_s": 0.2}, "max_body_bytes": 65536},
    )


@pytest.fixture(scope="session")
def server(iris_root: Path) -> Iterator[Server]:
    """One server for the session's protocol, validation and observability tests."""
    with serve_process(iris_root) as started:
        yield started


@pytest.fixture(scope="session")
def guarded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a tiny queue whose prediction routes need the token too."""
    serving = {
        "batching": {"max_batch_size": 2, "max_queue_rows": 4},
        "request_log": {"enabled": False},
        "access_log": False,
        "protect_predict": True,
    }
    root = train_iris(tmp_path_factory.mktemp("iris-guarded"), serving=serving)
    with serve_process(root) as started:
        yield started


def raw_post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def read_answers(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """``count`` HTTP/1.1 answers (status, body) read off a socket, by Content-Length."""
    buffer = b""
    answers: list[tuple[int, bytes]] = []
    while len(answers) < count:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(answers)} answers"
        buffer += chunk
        while b"\r\n\r\n" in buffer:
            head, _, rest = buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            if status == 100:
                buffer = rest
                answers.append((100, b""))
                continue
            length = next(
                int(line.split(":", 1)[1])
                for line in lines
                if line.lower().startswith("content-length:")
            )
            if len(rest) < length:
                break
            answers.append((status, rest[:length]))
            buffer = rest[length:]
    return answers
