from __future__ import annotations

import copy
import dataclasses
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from readyml.config import SPEC_FILE, Project
from readyml.deploy import ContainerBuild
from readyml.deploy.container import uses_onnx_runtime
from readyml.errors import ConfigError, ReadymlError
from readyml.predict import Predictor
from readyml.registry import ModelVersion, open_registry
from readyml.registry.requirements import model_libraries, requirements_text
from readyml.train import open_project_registry

from .conftest import RENUMBERED_VERSION

Tool = Callable[..., subprocess.CompletedProcess[str]]


def _build(root: Path, out: Path, *, bake: bool = True) -> None:
    project = Project.load(root)
    registry = open_project_registry(project)
    try:
        ContainerBuild(ref="iris@champion", bake=bake).write(project, registry, out)
    finally:
        registry.store.close()


@pytest.fixture(scope="module")
def baked(renumbered_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ctx") / "baked"
    _build(renumbered_project, out)
    return out


@pytest.fixture(scope="module")
def pulled(trained_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ctx") / "pulled"
    _build(trained_project, out, bake=False)
    return out


def test_dockerfile_passes_hadolint(baked: Path, pulled: Path, run_tool: Tool) -> None:
    for context in (baked, pulled):
        completed = run_tool("hadolint", "--failure-threshold", "info", str(context / "Dockerfile"))
        assert completed.returncode == 0, completed.stdout + completed.stderr


def test_dockerfile_is_two_stage_non_root_and_probes_readiness_with_urllib(baked: Path) -> None:
    text = (baked / "Dockerfile").read_text()
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert froms == ["FROM python:3.11-slim AS builder", "FROM python:3.11-slim"]
    final = text.split("FROM python:3.11-slim\n", 1)[1]
    assert "--only-binary=:all:" in text.split("FROM python:3.11-slim\n", 1)[0]
    assert "pip install" not in final and "apt-get" not in text and "gcc" not in text
    assert "USER 10001:10001" in final
    assert "HEALTHCHECK" in final and "urllib.request" in final and "curl" not in text
    assert "/v2/health/ready" in final


def test_requirements_pin_the_training_environment(baked: Path) -> None:
    model = json.loads((baked / "model.json").read_text())
    trained = model["lineage"]["fingerprints"]["environment"]["packages"]
    lines = (baked / "requirements.txt").read_text().splitlines()
    assert all("==" in line for line in lines)
    for name in ("numpy", "pandas", "scikit-learn", "skops"):  # the sklearn flavor's
        assert f"{name}=={trained[name]}" in lines
    assert lines[0].startswith("readyml[serve]==")
    pinned = {line.split("==")[0] for line in lines[1:]}
    assert {"uvicorn", "orjson", "prometheus-client", "sqlalchemy", "pydantic"} <= pinned


def test_requirements_leave_out_what_the_model_and_server_do_not_use(baked: Path) -> None:
    model = json.loads((baked / "model.json").read_text())
    trained = model["lineage"]["fingerprints"]["environment"]["packages"]
    pinned = {line.split("==")[0] for line in (baked / "requirements.txt").read_text().split()}
    unused = {"torch", "xgboost", "xgboost-cpu", "lightgbm", "onnx", "onnxruntime"}
    assert not unused & pinned, f"trained beside: {sorted(unused & set(trained))}"


def test_requirements_pin_a_model_library_without_lineage_as_installed(
    trained_project: Path,
) -> None:
    # A compressed or API-registered version records no training environment.
    registry = open_project_registry(Project.load(trained_project))
    try:
        version = dataclasses.replace(registry.get("iris@champion"), lineage={})
    finally:
        registry.store.close()
    build = ContainerBuild(ref="iris@champion")
    lines = build.requirements(version, ["onnx", "onnxruntime"], onnx=True)
    pinned = dict(line.split("==") for line in lines[1:])
    for name in ("onnx", "onnxruntime", "numpy"):
        assert pinned[name] == importlib.metadata.version(name), name
    with pytest.raises(ConfigError, match="expected no-such-library in the version's lineage"):
        build.requirements(version, ["no-such-library"])


def _trained_with(root: Path, **packages: str) -> ModelVersion:
    """The champion of ``root``, as if trained beside ``packages`` (name=version)."""
    registry = open_project_registry(Project.load(root))
    try:
        version = registry.get("iris@champion")
    finally:
        registry.store.close()
    lineage = copy.deepcopy(version.lineage)
    recorded = lineage["fingerprints"]["environment"]["packages"]
    recorded.update({name.replace("_", "-"): value for name, value in packages.items()})
    return dataclasses.replace(version, lineage=lineage)


def assert_installable(text: str) -> None:
    """Every line of ``text`` is a comment or ``NAME==VERSION`` that a default index serves."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        (specifier,) = Requirement(line).specifier
        assert specifier.operator == "==" and Version(specifier.version).local is None, line
    assert "://" not in text and "download." not in text, text  # no index is named


def test_requirements_pin_a_local_build_by_its_public_version(trained_project: Path) -> None:
    # torch's own index serves 2.13.0+cpu; a default index serves no local label.
    version = _trained_with(trained_project, torch="2.13.0+cpu")
    build = ContainerBuild(ref="iris@champion")
    pins = build.pins(version, ["torch"])
    assert "torch==2.13.0" in build.requirements(version, ["torch"])
    text = requirements_text(pins)
    assert_installable(text)
    lines = text.splitlines()
    comment = lines[lines.index("torch==2.13.0") - 1]
    assert comment.startswith("# torch: trained with 2.13.0+cpu, a local build (+cpu)"), comment
    assert "vendor's own index" in comment


def test_build_context_pins_a_local_build_by_its_public_version(
    trained_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    numpy = importlib.metadata.version("numpy")
    version = _trained_with(trained_project, numpy=f"{numpy}+mkl")
    project = Project.load(trained_project)
    registry = open_project_registry(project)
    monkeypatch.setattr(registry, "get", lambda ref: version)
    try:
        result = ContainerBuild(ref="iris@champion").write(project, registry, tmp_path / "ctx")
    finally:
        registry.store.close()
    text = (tmp_path / "ctx" / "requirements.txt").read_text()
    assert_installable(text)
    assert f"# numpy: trained with {numpy}+mkl" in text and f"\nnumpy=={numpy}\n" in text
    assert f"numpy=={numpy}" in result.requirements
    # The build says how to get that build into the image (the index's own would differ).
    (warning,) = [w for w in result.warnings if w.startswith("numpy ")]
    assert f"numpy {numpy}+mkl: the model was trained with this local build" in warning
    assert "wheels/" in warning and "PIP_INDEX_URL" in warning
    sbom = json.loads((tmp_path / "ctx" / "sbom.json").read_text())
    (component,) = [c for c in sbom["components"] if c["name"] == "numpy"]
    assert component["version"] == numpy
    assert component["properties"] == [{"name": "readyml:pinned_from", "value": "training"}]


def test_requirements_of_an_xgboost_model_leave_out_the_distribution_it_lacked(
    trained_project: Path,
) -> None:
    # The xgboost flavor records both distribution names; the one not installed, "unknown".
    versions = {"python": "3.11", "xgboost-cpu": "3.2.0", "xgboost": "unknown"}
    flavor = {"flavor": "xgboost", "versions": versions}
    assert model_libraries(flavor) == ["xgboost-cpu"]
    version = _trained_with(trained_project, xgboost_cpu="3.2.0")
    lines = ContainerBuild(ref="iris@champion").requirements(version, model_libraries(flavor))
    assert "xgboost-cpu==3.2.0" in lines


def test_pulled_image_adds_store_drivers_and_no_registry(pulled: Path) -> None:
    requirements = (pulled / "requirements.txt").read_text()
    assert requirements.startswith("readyml[serve,postgres,s3]==")
    assert "\ns3fs==" in requirements
    assert not (pulled / "app" / ".readyml").exists()
    assert not (pulled / "app" / "SHA256SUMS").exists()


def test_sbom_lists_packages_model_and_file_hashes(baked: Path) -> None:
    sbom = json.loads((baked / "sbom.json").read_text())
    model = json.loads((baked / "model.json").read_text())
    kinds = {c["type"] for c in sbom["components"]}
    assert kinds == {"library", "machine-learning-model", "file"}
    files = {
        c["name"]: c["hashes"][0]["content"] for c in sbom["components"] if c["type"] == "file"
    }
    assert files == {a["name"]: a["sha256"] for a in model["artifacts"]}
    libraries = {c["name"]: c["version"] for c in sbom["components"] if c["type"] == "library"}
    assert (
        libraries["scikit-learn"]
        == model["lineage"]["fingerprints"]["environment"]["packages"]["scikit-learn"]
    )


def test_baked_registry_serves_the_version_from_anywhere(baked: Path, tmp_path: Path) -> None:
    moved = tmp_path / "app"
    shutil.copytree(baked / "app", moved)
    project = Project.load(moved)
    assert project.spec.serving.host == "0.0.0.0"
    assert project.spec.serving.models == ["iris@champion"]
    registry = open_registry(project.workspace)
    try:
        predictor = Predictor.load(registry, "iris@champion")
    finally:
        registry.store.close()
    assert predictor.name == "iris"
    assert predictor.version == RENUMBERED_VERSION


def test_baked_registry_keeps_the_version_number_and_metadata(
    baked: Path, renumbered_project: Path
) -> None:
    source = open_project_registry(Project.load(renumbered_project))
    registry = open_registry(baked / "app" / ".readyml")
    try:
        original = source.get("iris@champion")
        versions = registry.list_versions("iris")
        assert [v.version for v in versions] == [RENUMBERED_VERSION]
        assert registry.get("iris@champion").version == RENUMBERED_VERSION
    finally:
        registry.store.close()
        source.store.close()
    copy = versions[0]
    assert copy.tags == {**original.tags, "readyml.source": f"iris:{RENUMBERED_VERSION}"}
    assert copy.created_at == original.created_at
    assert (copy.status, copy.model_fingerprint) == (original.status, original.model_fingerprint)
    assert (copy.signature, copy.metrics, copy.lineage, copy.gate) == (
        original.signature,
        original.metrics,
        original.lineage,
        original.gate,
    )
    assert [(a.name, a.sha256) for a in copy.artifacts] == [
        (a.name, a.sha256) for a in original.artifacts
    ]
    image = json.loads((baked / "image.json").read_text())
    assert image["source"] == f"iris:{RENUMBERED_VERSION}"


def _entrypoint(context: Path, app: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("READYML_")}
    environment |= {"READYML_APP_DIR": str(app), **env}
    return subprocess.run(
        [sys.executable, str(context / "entrypoint.py"), "--verify-only"],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )


def test_entrypoint_refuses_a_tampered_baked_model(baked: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(baked / "app", app)
    assert _entrypoint(baked, app).returncode == 0
    victim = app / (app / "SHA256SUMS").read_text().split()[1]
    victim.write_bytes(victim.read_bytes() + b"x")
    completed = _entrypoint(baked, app)
    assert completed.returncode == 3
    assert "expected sha256" in completed.stderr


def test_entrypoint_of_pulled_image_needs_the_store_urls(pulled: Path) -> None:
    completed = _entrypoint(pulled, pulled / "app")
    assert completed.returncode == 2
    assert "READYML_STORE_URL" in completed.stderr
    ok = _entrypoint(
        pulled,
        pulled / "app",
        READYML_STORE_URL="postgresql+psycopg://u@db/readyml",
        READYML_ARTIFACTS_URL="s3://bucket/artifacts",
    )
    assert ok.returncode == 0, ok.stderr


def test_dockerignore_keeps_the_baked_registry(baked: Path) -> None:
    ignored = (baked / ".dockerignore").read_text().splitlines()
    assert "app/.readyml" not in ignored and "**/__pycache__" in ignored


def test_build_refuses_a_folder_with_files(trained_project: Path, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="expected an empty or new folder"):
        _build(trained_project, tmp_path)


def test_cli_build_writes_a_context_and_refuses_unknown_engines(
    trained_project: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from readyml.cli.deploy import app

    out = tmp_path / "ctx"
    args = ["build", "iris@champion", "-p", str(trained_project), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--format", "json", "--base", "localbase:bookworm"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["image"] == "readyml-iris:v1"
    froms = [
        line for line in (out / "Dockerfile").read_text().splitlines() if line.startswith("FROM ")
    ]
    assert froms == ["FROM localbase:bookworm AS builder", "FROM localbase:bookworm"]
    assert (out / "sbom.json").exists()
    text = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "text")])
    assert text.exit_code == 0, text.output
    assert "(model baked in; serves iris@champion; installs readyml[serve])" in text.output
    other = tmp_path / "other"
    bad = CliRunner().invoke(app, [*args[:-1], str(other), "--engine", "rkt"])
    assert bad.exit_code == 2
    assert "--engine" in bad.output and not other.exists()


def _flavor(estimator: str) -> dict[str, str]:
    return {"flavor": "sklearn", "estimator": estimator}


@pytest.mark.parametrize(
    ("flavor", "runtime", "baked", "expected"),
    [
        (_flavor("sklearn.ensemble._forest.RandomForestClassifier"), "native", True, True),
        (_flavor("sklearn.ensemble._forest.ExtraTreesClassifier"), "native", True, True),
        (_flavor("sklearn.ensemble._gb.GradientBoostingClassifier"), "native", True, True),
        (_flavor("sklearn.linear_model._logistic.LogisticRegression"), "native", True, False),
        (_flavor("sklearn.ensemble._forest.RandomForestRegressor"), "native", True, False),
        ({"flavor": "xgboost", "estimator": "RandomForestClassifier"}, "native", True, False),
        ({}, "native", False, False),
        ({"flavor": "onnx"}, "native", True, True),  # an ONNX export: only ONNX Runtime runs it
        (_flavor("sklearn.linear_model._logistic.LogisticRegression"), "onnx", True, True),
        # auto can choose an export only from a registry: a baked one holds none.
        (_flavor("sklearn.linear_model._logistic.LogisticRegression"), "auto", False, True),
        (_flavor("sklearn.linear_model._logistic.LogisticRegression"), "auto", True, False),
    ],
)
def test_onnx_runtime_goes_in_where_the_server_would_use_it(
    flavor: dict[str, str], runtime: str, baked: bool, expected: bool
) -> None:
    assert uses_onnx_runtime(flavor, runtime, baked=baked) is expected


def test_runtime_onnx_puts_onnx_runtime_in_the_image(trained_project: Path, tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(trained_project, root)
    spec_path = root / SPEC_FILE
    spec = yaml.safe_load(spec_path.read_text())
    spec.setdefault("serving", {})["runtime"] = "onnx"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    _build(root, tmp_path / "ctx")
    lines = (tmp_path / "ctx" / "requirements.txt").read_text().splitlines()
    assert lines[0].startswith("readyml[serve,onnx]==")
    pinned = {line.split("==")[0] for line in lines[1:]}
    assert {"onnx", "onnxruntime", "skl2onnx"} <= pinned


def test_build_refuses_a_file_as_out_or_a_path_under_one(
    trained_project: Path, tmp_path: Path
) -> None:
    file = tmp_path / "file"
    file.write_text("mine")
    for out in (file, file / "ctx"):
        with pytest.raises(ConfigError, match="expected a folder, found the file"):
            _build(trained_project, out)
    assert file.read_text() == "mine"


def test_build_into_a_folder_that_cannot_be_made_is_a_config_error(
    trained_project: Path,
) -> None:
    with pytest.raises(ConfigError, match="--out '/proc/readyml-out': cannot create the folder"):
        _build(trained_project, Path("/proc/readyml-out"))


def test_failed_build_leaves_the_folder_as_it_found_it(
    trained_project: Path, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    shutil.copytree(trained_project, root)
    model = next((root / ".readyml" / "artifacts" / "models").rglob("model.*"))
    model.write_bytes(model.read_bytes() + b"x")  # the download fails its sha256 check
    with pytest.raises(ReadymlError, match="expected sha256"):
        _build(root, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReadymlError, match="expected sha256"):
        _build(root, tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.parametrize(
    "option",
    [["--base", ""], ["--base", "python:3.11-slim\nRUN id"], ["--tag", "Bad Tag!"]],
)
def test_cli_build_refuses_a_bad_image_reference(
    trained_project: Path, tmp_path: Path, option: list[str]
) -> None:
    from typer.testing import CliRunner

    from readyml.cli.deploy import app

    out = tmp_path / "ctx"
    args = ["build", "iris@champion", "-p", str(trained_project), "--out", str(out), *option]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"{option[0]}: expected an image reference" in result.output
    assert not out.exists()


def test_pulled_image_of_a_version_serves_that_version(
    trained_project: Path, tmp_path: Path
) -> None:
    project = Project.load(trained_project)
    registry = open_project_registry(project)
    try:
        result = ContainerBuild(ref="iris:1", bake=False).write(project, registry, tmp_path / "c")
    finally:
        registry.store.close()
    assert result.served_ref == "iris:1"
    assert json.loads((tmp_path / "c" / "image.json").read_text())["ref"] == "iris:1"


def test_baked_image_serves_its_registry_whatever_the_store_urls(
    baked: Path, tmp_path: Path
) -> None:
    # A stand-in for readyml on PATH shows the environment the entry point starts it with.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "readyml"
    fake.write_text(
        f"#!{sys.executable}\nimport os\n"
        "print(os.environ.get('READYML_STORE_URL'), os.environ.get('READYML_ARTIFACTS_URL'))\n"
    )
    fake.chmod(0o755)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("READYML_")}
    environment |= {
        "PATH": f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}",
        "READYML_APP_DIR": str(baked / "app"),
        "READYML_STORE_URL": "postgresql+psycopg://USER:PASSWORD@HOST:5432/readyml",
        "READYML_ARTIFACTS_URL": "s3://bucket/artifacts",
    }
    completed = subprocess.run(
        [sys.executable, str(baked / "entrypoint.py")],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["None", "None"]
