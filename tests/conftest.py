"""Shared fixtures: real PostgreSQL and S3-compatible (moto) servers on loopback.

Each service fixture skips the tests that need it when the service cannot be started here,
unless ``READYML_REQUIRE_SERVICES=1`` (as in CI), in which case it fails them instead.
PostgreSQL comes from ``READYML_TEST_PG_URL`` when set (``scripts/services.sh start``
writes it), else a throwaway server is started in a temporary folder for the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

# Seconds to wait for a started service to answer.
SERVICE_START_TIMEOUT_S = 30.0
# Credentials moto accepts (any work); fixed so that child processes can reuse them.
S3_KEY = "testing"
S3_SECRET = "testing"


def _unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when services are required."""
    if os.environ.get("READYML_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres(command: list[str]) -> list[str]:
    """Run a PostgreSQL binary as the postgres user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return command
    return ["su", "postgres", "-s", "/bin/sh", "-c", subprocess.list2cmdline(command)]


@contextlib.contextmanager
def _throwaway_postgres() -> Iterator[str]:
    bindir = Path(
        subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    workdir = Path(tempfile.mkdtemp(prefix="readyml-pg-"))
    pid: int | None = None
    try:
        if os.geteuid() == 0:
            shutil.chown(workdir, "postgres", "postgres")
        port = free_port()
        subprocess.run(
            _as_postgres(
                [
                    str(bindir / "initdb"),
                    "-D",
                    f"{workdir}/data",
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_postgres(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    f"{workdir}/data",
                    "-l",
                    f"{workdir}/log",
                    "-w",
                    "-o",
                    f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir}",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        pid = int((workdir / "data" / "postmaster.pid").read_text().splitlines()[0])
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
            deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database (``.../postgres``)."""
    url = os.environ.get("READYML_TEST_PG_URL")
    if url:
        yield url
        return
    if shutil.which("pg_config") is None:
        _unavailable("PostgreSQL is not installed (no pg_config) and READYML_TEST_PG_URL is unset")
    with contextlib.ExitStack() as stack:
        try:
            started = stack.enter_context(_throwaway_postgres())
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            _unavailable(f"cannot start PostgreSQL: {exc} {detail.decode(errors='replace')}")
        yield started


@pytest.fixture
def pg_database_url(pg_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(pg_url)
    name = f"readyml_test_{uuid.uuid4().hex[:12]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh metadata store URL, once per backend: SQLite file, then PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'workspace' / 'readyml.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    return url


def _moto_server_binary() -> str | None:
    beside = Path(sys.executable).parent / "moto_server"
    if beside.exists():
        return str(beside)
    return shutil.which("moto_server")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of an S3-compatible server (moto) on loopback, for the whole session."""
    binary = _moto_server_binary()
    if binary is None:
        _unavailable("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if process.poll() is not None or time.monotonic() > deadline:
                    _unavailable(f"moto_server did not answer on {url}")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_url(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://BUCKET/prefix`` in a fresh bucket, with the endpoint and keys in the environment."""
    import s3fs

    monkeypatch.setenv("READYML_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    bucket = f"readyml-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(
        endpoint_url=s3_endpoint, key=S3_KEY, secret=S3_SECRET, skip_instance_cache=True
    )
    fs.mkdir(bucket)
    return f"s3://{bucket}/artifacts"
