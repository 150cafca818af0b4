from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from readyml.cli.deploy import app
from readyml.deploy import KubernetesManifests
from readyml.errors import ConfigError

Tool = Callable[..., subprocess.CompletedProcess[str]]


def _validate(run_tool: Tool, paths: list[Path]) -> None:
    completed = run_tool("kubernetes-validate", "--strict", "--quiet", *map(str, paths))
    assert completed.returncode == 0, completed.stdout + completed.stderr


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def _manifests(**options: Any) -> KubernetesManifests:
    return KubernetesManifests(
        name="iris", image="readyml-iris:v1", model="iris@champion", **options
    )


def test_plain_manifests_validate_strictly(tmp_path: Path, run_tool: Tool) -> None:
    paths = _manifests(namespace="ml").write(tmp_path)
    assert {p.name for p in paths} == {
        "configmap.yaml",
        "secret.example.yaml",
        "deployment.yaml",
        "service.yaml",
        "hpa.yaml",
        "pdb.yaml",
    }
    _validate(run_tool, paths)


def test_deployment_is_probed_bounded_non_root_and_never_drops_capacity(tmp_path: Path) -> None:
    _manifests().write(tmp_path)
    spec = _load(tmp_path / "deployment.yaml")["spec"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    refs = {next(iter(ref)): next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert refs == {"configMapRef": "readyml-iris-config", "secretRef": "readyml-iris-secrets"}


def test_canary_pair_shares_one_service(tmp_path: Path, run_tool: Tool) -> None:
    paths = _manifests(canary=True, canary_model="iris:2").write(tmp_path)
    _validate(run_tool, paths)
    stable = _load(tmp_path / "deployment.yaml")
    canary = _load(tmp_path / "deployment-canary.yaml")
    service = _load(tmp_path / "service.yaml")
    selector = service["spec"]["selector"]
    for deployment in (stable, canary):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
    assert stable["spec"]["selector"] != canary["spec"]["selector"]
    env = canary["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "READYML_MODEL", "value": "iris:2"} in env


def test_argo_rollout_has_canary_steps_and_the_rest_validates(
    tmp_path: Path, run_tool: Tool
) -> None:
    # kubernetes-validate has no schema for Argo's CRD: its structure is checked here.
    paths = _manifests(argo=True).write(tmp_path)
    rollout_path = tmp_path / "rollout.yaml"
    _validate(run_tool, [p for p in paths if p != rollout_path])
    rollout = _load(rollout_path)
    assert rollout["apiVersion"] == "argoproj.io/v1alpha1" and rollout["kind"] == "Rollout"
    spec = rollout["spec"]
    assert spec["selector"]["matchLabels"].items() <= (
        spec["template"]["metadata"]["labels"].items()
    )
    steps = spec["strategy"]["canary"]["steps"]
    assert [s["setWeight"] for s in steps if "setWeight" in s] == [10, 50]
    assert all("duration" in s["pause"] for s in steps if "pause" in s)
    assert spec["strategy"]["canary"]["maxUnavailable"] == 0
    hpa = _load(tmp_path / "hpa.yaml")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Rollout"
    assert not (tmp_path / "deployment.yaml").exists()


def test_canary_and_argo_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="--canary and --argo"):
        _manifests(canary=True, argo=True).render()


def test_cli_writes_manifests_for_a_registered_version(
    trained_project: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, ["k8s", "iris@champion", "-p", str(trained_project), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    container = _load(tmp_path / "deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "readyml-iris:v1"
    missing = CliRunner().invoke(
        app, ["k8s", "nope@champion", "-p", str(trained_project), "--out", str(tmp_path)]
    )
    assert missing.exit_code == 2


@pytest.mark.parametrize(
    ("canary", "message"),
    [
        (["--canary"], "--canary-model: model 'iris' alias: expected an existing alias"),
        (["--canary", "--canary-model", "iris:99"], "--canary-model: "),
        (["--canary", "--canary-model", "nope:1"], "--canary-model: "),
    ],
)
def test_cli_canary_model_must_be_a_version_of_the_model(
    trained_project: Path, tmp_path: Path, canary: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        app, ["k8s", "iris:1", "-p", str(trained_project), "--out", str(tmp_path), *canary]
    )
    assert result.exit_code == 2
    assert message in result.output
    assert not list(tmp_path.iterdir())


def test_cli_canary_on_the_stable_image_warns(trained_project: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            *("k8s", "iris@champion", "-p", str(trained_project), "--out", str(tmp_path / "k")),
            *("--canary", "--canary-model", "iris:1"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "warning: the canary runs the stable's image" in result.output
    assert (tmp_path / "k" / "deployment-canary.yaml").is_file()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"replicas": 0}, "replicas: expected 1 to max_replicas"),
        ({"max_replicas": 0}, "max_replicas: expected 1 or more, found 0"),
        ({"namespace": "Bad_NS"}, "--namespace: expected a DNS-1123 label"),
        ({"image": ""}, "--image: expected an image reference"),
        ({"canary_model": "iris:2"}, "--canary-model: expected --canary with it"),
        ({"canary_image": "readyml-iris:v2"}, "--canary-image: expected --canary with it"),
        ({"canary": True, "canary_model": "bad ref!"}, "--canary-model: model reference"),
        ({"canary": True, "canary_image": "Bad Image"}, "--canary-image: expected an image"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_written(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    values = {"name": "iris", "image": "readyml-iris:v1", "model": "iris@champion", **options}
    with pytest.raises(ConfigError, match=message):
        KubernetesManifests(**values).write(tmp_path / "k8s")
    assert not (tmp_path / "k8s").exists()


def test_a_folder_with_manifests_or_a_file_is_refused(tmp_path: Path) -> None:
    # Writing over older manifests would leave a stale deployment-canary.yaml to apply.
    _manifests(canary=True).write(tmp_path / "k8s")
    with pytest.raises(ConfigError, match="expected an empty or new folder"):
        _manifests().write(tmp_path / "k8s")
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ConfigError, match="expected a folder, found the file"):
        _manifests().write(tmp_path / "file")


def test_secret_template_applied_unedited_enables_no_token(tmp_path: Path) -> None:
    _manifests().write(tmp_path)
    # Not among what `kubectl apply -f DIR` reads (a folder's files, not its subfolders).
    assert "Secret" not in {_load(p)["kind"] for p in tmp_path.glob("*.yaml")}
    secret = _load(tmp_path / "templates" / "secret.example.yaml")
    assert secret["stringData"]["READYML_SERVE_TOKEN"] == ""


def test_cli_manifests_of_a_version_serve_that_version(
    trained_project: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, ["k8s", "iris:1", "-p", str(trained_project), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert _load(tmp_path / "configmap.yaml")["data"]["READYML_MODEL"] == "iris:1"
