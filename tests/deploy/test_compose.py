from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from readyml.cli.deploy import app


def _vendored_schema(name: str) -> dict[str, Any]:
    """A schema that check-jsonschema vendors from schemastore (works offline)."""
    pytest.importorskip("check_jsonschema", reason="check-jsonschema is in the dev extra")
    text = (
        resources.files("check_jsonschema")
        .joinpath("builtin_schemas", "vendor", name)
        .read_text(encoding="utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def test_compose_stack_matches_the_compose_spec(trained_project: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["compose", "iris@champion", "-p", str(trained_project), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    document = yaml.safe_load((tmp_path / "docker-compose.yml").read_text())
    jsonschema.validate(document, _vendored_schema("compose-spec.json"))
    services = document["services"]
    assert set(services) == {"server", "postgres", "minio", "prometheus", "alertmanager"}
    assert all("healthcheck" in service for service in services.values())
    for name in ("postgres", "minio", "prometheus", "alertmanager"):
        volume = next(v for v in services[name]["volumes"] if not v.startswith("./"))
        assert volume.split(":")[0] in document["volumes"]
    server = services["server"]
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert server["environment"]["READYML_STORE_URL"].startswith("postgresql+psycopg://")


def test_prometheus_loads_readyml_alert_rules(trained_project: Path, tmp_path: Path) -> None:
    CliRunner().invoke(
        app, ["compose", "iris@champion", "-p", str(trained_project), "--out", str(tmp_path)]
    )
    config = yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())
    rules = yaml.safe_load((tmp_path / "prometheus" / "alert_rules.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alert_rules.yml"]
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert "ReadymlHighErrorRate" in names
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]


def test_github_workflow_matches_the_schema_and_runs_the_gates(tmp_path: Path) -> None:
    from readyml.cli.project import app as project_app

    result = CliRunner().invoke(project_app, ["init", str(tmp_path), "--ci", "github"])
    assert result.exit_code == 0, result.output
    workflow = yaml.safe_load((tmp_path / ".github" / "workflows" / "readyml.yml").read_text())
    jsonschema.validate(workflow, _vendored_schema("github-workflows.json"))
    runs = [step.get("run", "") for step in workflow["jobs"]["readyml"]["steps"]]
    commands = [r for r in runs if "readyml " in r and "pip install" not in r]
    assert [c.split("readyml ")[1].split()[0].rstrip(";") for c in commands] == [
        "run",
        "check",
        "score",
    ]
    assert "readyml score --fail-under 3" in commands[-1]
    assert any("pytest" in r for r in runs)
    bad = CliRunner().invoke(project_app, ["init", str(tmp_path / "x"), "--ci", "gitlab"])
    assert bad.exit_code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad ref!"], "model reference 'bad ref!'"),
        (["nope@champion"], "model: expected a registered model (models: iris), found 'nope'"),
        (["iris@champion", "--port", "0"], "port: expected 1 to 65535, found 0"),
        (["iris@champion", "--build-context", ""], "--build-context: expected a folder"),
    ],
)
def test_compose_refuses_bad_values_and_writes_nothing(
    trained_project: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "stack"
    result = CliRunner().invoke(
        app, ["compose", *args, "-p", str(trained_project), "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()


def test_compose_refuses_a_folder_with_files_or_a_file(
    trained_project: Path, tmp_path: Path
) -> None:
    args = ["compose", "iris@champion", "-p", str(trained_project), "--out"]
    assert CliRunner().invoke(app, [*args, str(tmp_path / "stack")]).exit_code == 0
    again = CliRunner().invoke(app, [*args, str(tmp_path / "stack")])
    assert again.exit_code == 2 and "expected an empty or new folder" in again.output
    (tmp_path / "file").write_text("mine")
    file = CliRunner().invoke(app, [*args, str(tmp_path / "file")])
    assert file.exit_code == 2 and "expected a folder, found the file" in file.output


def test_github_workflow_needs_no_dependency_file_for_its_cache() -> None:
    from readyml.deploy import github_workflow

    # setup-python's pip cache fails without requirements.txt or pyproject.toml, and a new
    # readyml project has neither.
    workflow = yaml.safe_load(github_workflow())
    setup = next(
        step
        for step in workflow["jobs"]["readyml"]["steps"]
        if step.get("uses", "").startswith("actions/setup-python")
    )
    assert "cache" not in setup["with"]


def test_the_workflow_s_gates_pass_on_a_fresh_checkout_of_a_reviewed_project(
    tmp_path: Path,
) -> None:
    # The job starts from the repository alone: no .readyml/, no shared registry.
    from readyml.cli.project import app as project_app
    from support import iris_frame

    root = tmp_path / "project"
    assert CliRunner().invoke(project_app, ["init", str(root), "--ci", "github"]).exit_code == 0
    (root / "data").mkdir(exist_ok=True)
    iris_frame().rename(columns={"species": "target"}).to_csv(
        root / "data" / "train.csv", index=False
    )
    workflow = yaml.safe_load((root / ".github" / "workflows" / "readyml.yml").read_text())
    steps = [
        s["run"] for s in workflow["jobs"]["readyml"]["steps"] if "readyml " in s.get("run", "")
    ]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **workflow["jobs"]["readyml"]["env"],
    }
    env |= {key: "" for key in workflow["jobs"]["readyml"]["env"]}  # no secrets set

    def step(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True
        )

    train, *gates = [s for s in steps if "pip install" not in s]
    assert step(train).returncode == 0  # readyml run: trains, writes schema.yaml
    schema = yaml.safe_load((root / "schema.yaml").read_text())
    for feature in schema["features"]:  # the review a team does before committing it
        feature["description"] = f"{feature['name']} in cm"
        feature["meta"] = {**(feature.get("meta") or {}), "owner": "data team"}
    (root / "schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    shutil.rmtree(root / ".readyml")  # a fresh checkout again
    for command in [train, *gates]:
        done = step(command)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    assert "not gated: no shared registry" in done.stdout
