"""A real image: build the champion of a trained project with podman, run it, ask it.

No image registry is reachable, so the base image is made here: ``debootstrap`` writes a
minimal Debian with Python, ``podman import`` turns it into an image. That takes about a
minute, so the image is kept between runs in podman storage outside the repository
(``READYML_TEST_CACHE``, default ``~/.cache/readyml-tests``; delete ``podman/`` there to
start over); a run that finds it only builds and runs readyml's image. Every podman call
names that storage (``--root``/``--runroot``) and a ``containers.conf`` (runc, cgroupfs,
file limits) through ``CONTAINERS_CONF``, and uses the host network (no iptables changes).

pip inside the build reaches the package index with this machine's settings, if it has
any: the CA bundle (``pip config get global.cert``) goes into the context's ``wheels/``
and is named by the ``PIP_CERT`` build argument; the index by ``PIP_INDEX_URL``.
readyml's own wheel is built from this checkout into ``wheels/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import _unavailable, free_port
from readyml.cli.deploy import app as deploy_app
from readyml.config import Project
from readyml.deploy import build_image
from readyml.predict import Prediction, Predictor
from readyml.registry import CHAMPION
from readyml.train import open_project_registry, run_project
from support import IRIS_SPEC, write_project

from .conftest import RENUMBERED_VERSION

pytestmark = [pytest.mark.container, pytest.mark.slow]

TOOLS = ("podman", "buildah", "runc", "debootstrap")
INSTALL_HINT = "apt-get install -y podman buildah debootstrap runc"
SUITE = "bookworm"
# Python and venv for the builder stage; bump the tag when this list changes.
BASE_PACKAGES = ("python3", "python3-venv")
BASE_IMAGE = f"localhost/readyml-test-base:{SUITE}-python3"
BUILDER_IMAGE = "localhost/readyml-test-builder:latest"
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""
# Where the CA bundle goes in the build context (the builder stage runs pip in /build).
CERT_IN_CONTEXT = "wheels/ca-bundle.pem"
# A fixed wheel timestamp (1980-01-01, zip's first): the same checkout gives the same
# wheel, so the image's pip layer is reused from the previous run.
WHEEL_EPOCH = "315532800"
# Seconds allowed for: debootstrap, the server to become ready, one request.
DEBOOTSTRAP_TIMEOUT_S = 900
READY_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 10.0
ROWS = [
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    {"sepal_length": 6.2, "sepal_width": 2.9, "petal_length": 4.3, "petal_width": 1.3},
    {"sepal_length": 7.7, "sepal_width": 3.0, "petal_length": 6.1, "petal_width": 2.3},
    {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8},
]
REPO = Path(__file__).resolve().parents[2]


class Podman:
    """podman with this suite's storage and configuration on every call."""

    def __init__(self, cache: Path) -> None:
        self.global_args = ["--root", str(cache / "root"), "--runroot", str(cache / "runroot")]

    def __call__(
        self, *args: str, timeout: float = 120, stdin: Any = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *self.global_args, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=stdin,
        )


def _check_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        _unavailable(f"{', '.join(missing)} not installed ({INSTALL_HINT})")
    if os.geteuid() != 0:
        _unavailable("debootstrap and rootful podman need root")


def _debian_mirror() -> str:
    """The Debian mirror apt uses here: a deb822 ``URIs:`` field or a one-line ``deb`` entry."""
    for path in APT_SOURCES:
        if not path.exists():
            continue
        for stanza in path.read_text().split("\n\n"):
            fields: dict[str, list[str]] = {}
            for line in stanza.splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line).split()  # no [options]
                if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                    return words[1]  # one-line format: deb [options] URI SUITE COMPONENTS
                key, colon, value = line.partition(":")
                if colon and not line.startswith(("#", " ")):
                    fields[key.strip()] = value.split()
            if "deb" in fields.get("Types", []) and SUITE in fields.get("Suites", []):
                return fields["URIs"][0]
    _unavailable(f"no Debian {SUITE} mirror in apt's sources ({', '.join(map(str, APT_SOURCES))})")


def _make_base_image(podman: Podman, cache: Path) -> None:
    """debootstrap a minimal Debian with Python and import it, unless it exists already."""
    if podman("image", "exists", BASE_IMAGE).returncode == 0:
        return
    rootfs = cache / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    try:
        debootstrap = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                _debian_mirror(),
            ],
            capture_output=True,
            text=True,
            timeout=DEBOOTSTRAP_TIMEOUT_S,
            check=False,
        )
        if debootstrap.returncode != 0:
            _unavailable(f"debootstrap failed: {debootstrap.stdout[-2000:]}")
        with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
            imported = podman("import", "-", BASE_IMAGE, stdin=tar.stdout, timeout=600)
        assert (tar.returncode, imported.returncode) == (0, 0), imported.stderr
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def _pip_setting(key: str) -> str | None:
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", key],
        capture_output=True,
        text=True,
        check=False,
    )
    value = completed.stdout.strip()
    return value if completed.returncode == 0 and value else None


def _pip_build_args(context: Path) -> list[str]:
    """``--build-arg`` options for this machine's pip CA bundle and index, where set."""
    args: list[str] = []
    cert = _pip_setting("global.cert") or os.environ.get("PIP_CERT")
    if cert and Path(cert).is_file():
        shutil.copyfile(cert, context / CERT_IN_CONTEXT)
        args += ["--build-arg", f"PIP_CERT={CERT_IN_CONTEXT}"]
    index = _pip_setting("global.index-url") or os.environ.get("PIP_INDEX_URL")
    if index and index.startswith(("http://", "https://")):
        args += ["--build-arg", f"PIP_INDEX_URL={index}"]
    return args


def _readyml_wheel(wheels: Path, scratch: Path) -> None:
    """Build readyml's wheel from this checkout (a copy: no build/ left in the tree)."""
    source = scratch / "readyml-source"
    shutil.copytree(
        REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    wheel = ["wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)]
    completed = subprocess.run(
        [sys.executable, "-m", "pip", *wheel, str(source)],
        capture_output=True,
        text=True,
        env=os.environ | {"SOURCE_DATE_EPOCH": WHEEL_EPOCH},
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def _in_process(project: Path) -> Prediction:
    """The project's champion's answer to ``ROWS``, predicted here."""
    registry = open_project_registry(Project.load(project))
    try:
        predictor = Predictor.load(registry, "iris@champion")
    finally:
        registry.store.close()
    part, _ = predictor.from_records(ROWS)
    return predictor.predict_parts([part])


def _post(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
        return json.loads(response.read())


def _wait_ready(podman: Podman, container: str, url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as response,
        ):
            if response.status == 200:
                return
        running = podman("inspect", "--format", "{{.State.Running}}", container).stdout.strip()
        if running != "true" or time.monotonic() > deadline:
            logs = podman("logs", container)
            pytest.fail(
                f"container {container} not ready on {url} (running: {running}): "
                f"{(logs.stdout + logs.stderr)[-3000:]}"
            )
        time.sleep(0.5)


@pytest.fixture(scope="module")
def podman(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[Podman]:
    """podman with a cached base image (made on first use), the storage locked meanwhile."""
    _check_tools()
    cache = Path(os.environ.get("READYML_TEST_CACHE", "~/.cache/readyml-tests")).expanduser()
    cache = cache / "podman"
    cache.mkdir(parents=True, exist_ok=True)
    conf = cache / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    monkeypatch_module.setenv("CONTAINERS_CONF", str(conf))
    runner = Podman(cache)
    # Another session's prune must not remove what this one builds: one at a time.
    with (cache / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _make_base_image(runner, cache)
        yield runner


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def image(
    podman: Podman, renumbered_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The champion's baked image, built with ``readyml build --base``; removed after."""
    scratch = tmp_path_factory.mktemp("image")
    context = scratch / "context"
    args = ["build", "iris@champion", "-p", str(renumbered_project), "--out", str(context)]
    result = CliRunner().invoke(deploy_app, [*args, "--base", BASE_IMAGE])
    assert result.exit_code == 0, result.output
    _readyml_wheel(context / "wheels", scratch)
    tag = f"localhost/readyml-test-iris:v{RENUMBERED_VERSION}"
    options = ["--network=host", *_pip_build_args(context)]
    build = functools.partial(build_image, context, engine="podman", extra_args=podman.global_args)
    try:
        # The builder stage first, tagged, so the prune below keeps its pip layer for the
        # next run; the full build then takes that stage from the cache.
        build(tag=BUILDER_IMAGE, build_options=[*options, "--target", "builder"])
        build(tag=tag, build_options=options)
        yield tag
    finally:
        podman("rmi", "--force", tag)
        podman("image", "prune", "--force")  # earlier runs' builders, this run's layers


def test_image_serves_the_champion_as_in_process_with_its_version_number(
    podman: Podman, image: str, renumbered_project: Path
) -> None:
    expected = _in_process(renumbered_project)
    assert expected.proba is not None
    expected_proba = expected.proba.tolist()

    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    assert "/v2/health/ready" in " ".join(inspected["Healthcheck"]["Test"])  # docker format

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    container = f"readyml-test-{port}"
    serve = ["--host", "127.0.0.1", "--port", str(port)]
    started = podman("run", "--detach", "--name", container, "--network=host", image, *serve)
    assert started.returncode == 0, started.stderr
    try:
        _wait_ready(podman, container, url)
        inputs = [
            {
                "name": name,
                "datatype": "FP64",
                "shape": [len(ROWS)],
                "data": [r[name] for r in ROWS],
            }
            for name in ROWS[0]
        ]
        v2 = _post(f"{url}/v2/models/iris/versions/{RENUMBERED_VERSION}/infer", {"inputs": inputs})
        assert v2["model_version"] == str(RENUMBERED_VERSION)
        outputs = {output["name"]: output for output in v2["outputs"]}
        assert outputs["predict"]["data"] == expected.labels_list
        flat = [p for row in expected_proba for p in row]
        assert outputs["predict_proba"]["data"] == pytest.approx(flat, abs=1e-12)

        simple = _post(f"{url}/predict", ROWS)
        assert (simple["model"], simple["version"]) == ("iris", RENUMBERED_VERSION)
        assert simple["predictions"] == expected.labels_list
        assert [p for row in simple["probabilities"] for p in row] == pytest.approx(flat, abs=1e-12)
    finally:
        podman("rm", "--force", "--time", "5", container)


@pytest.fixture(scope="module")
def forest_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An iris project whose champion is a random forest (served through ONNX Runtime)."""
    model = {
        "flavor": "sklearn",
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 20, "random_state": 0},
    }
    root = write_project(tmp_path_factory.mktemp("forest-project"), {**IRIS_SPEC, "model": model})
    project = Project.load(root)
    registry = open_project_registry(project)
    try:
        result = run_project(project, registry=registry)
        assert result.status == "succeeded", result.error
        registry.set_alias("iris", CHAMPION, 1, who="test", reason="forest image")
    finally:
        registry.store.close()
    return root


def test_a_forest_image_carries_onnx_runtime_and_serves_as_in_process(
    podman: Podman, forest_project: Path, tmp_path: Path
) -> None:
    context = tmp_path / "context"
    args = ["build", "iris@champion", "-p", str(forest_project), "--out", str(context)]
    result = CliRunner().invoke(deploy_app, [*args, "--base", BASE_IMAGE])
    assert result.exit_code == 0, result.output
    assert "installs readyml[serve,onnx])" in result.output
    assert (context / "requirements.txt").read_text().startswith("readyml[serve,onnx]==")
    _readyml_wheel(context / "wheels", tmp_path)
    tag = "localhost/readyml-test-forest:v1"
    options = ["--network=host", *_pip_build_args(context)]
    port = free_port()
    container = f"readyml-test-{port}"
    try:
        build_image(
            context, engine="podman", extra_args=podman.global_args, tag=tag, build_options=options
        )
        probe = "import onnx, onnxruntime; print(onnxruntime.__version__)"
        run = ["run", "--rm", "--network=host", "--entrypoint", "python", tag, "-c", probe]
        imported = podman(*run)
        assert imported.returncode == 0, imported.stderr

        expected = _in_process(forest_project)
        assert expected.proba is not None

        url = f"http://127.0.0.1:{port}"
        serve = ["--host", "127.0.0.1", "--port", str(port)]
        started = podman("run", "--detach", "--name", container, "--network=host", tag, *serve)
        assert started.returncode == 0, started.stderr
        _wait_ready(podman, container, url)
        answer = _post(f"{url}/predict", ROWS)
        assert answer["predictions"] == expected.labels_list
        flat = [p for row in answer["probabilities"] for p in row]
        assert flat == pytest.approx(expected.proba.ravel().tolist(), abs=1e-12)
    finally:
        podman("rm", "--force", "--time", "5", container)
        podman("rmi", "--force", tag)
        podman("image", "prune", "--force")
