"""The evaluation report: CLI commands, JSON, and the HTML page rendered in real Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from evaluate.conftest import RanProject
from readyml.cli import compress as compress_cli
from readyml.cli import evaluate as evaluate_cli
from readyml.cli import models as models_cli

# Chromium flags that work in containers without a display or network (ENVIRONMENT.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PLOTS = ["confusion", "roc", "pr", "calibration", "slices", "baselines", "importance", "staleness"]


def _app() -> typer.Typer:
    app = typer.Typer()
    app.registered_commands += evaluate_cli.app.registered_commands
    app.registered_commands += compress_cli.app.registered_commands
    app.add_typer(models_cli.app, name="models")
    return app


@pytest.fixture(scope="module")
def report_paths(
    ran_regions: RanProject, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    out = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(
        _app(),
        [
            "evaluate",
            "regions:1",
            "-p",
            str(ran_regions.root),
            "--out",
            str(out),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    paths: dict[str, str] = json.loads(result.stdout)
    return paths


def test_evaluate_writes_json_with_every_section(report_paths: dict[str, str]) -> None:
    report = json.loads(Path(report_paths["json"]).read_text())
    assert report["model"] == "regions:1" and report["gate"]["decision"] == "blessed"
    evaluation = report["evaluation"]
    for key in (
        "valid",
        "ci",
        "slices",
        "baselines",
        "importance",
        "feature_cost",
        "serving",
        "fairness",
        "staleness",
        "spec_review",
    ):
        assert evaluation.get(key), key
    assert report["curves"]["confusion"] and report["curves"]["roc"]


def test_evaluate_keeps_the_registered_drop_column_importance(
    report_paths: dict[str, str], ran_regions: RanProject
) -> None:
    registered = ran_regions.registry.get("regions:1").metrics["importance"]
    assert registered["method"] == "permutation + drop-column"
    importance = json.loads(Path(report_paths["json"]).read_text())["evaluation"]["importance"]
    assert importance["method"] == "permutation + drop-column"
    for name, values in importance["features"].items():
        assert values["drop_column"] == registered["features"][name]["drop_column"], name


def test_evaluate_reports_an_onnx_export(ran_regions: RanProject, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(ran_regions.root, root)
    runner = CliRunner()
    exported = runner.invoke(_app(), ["compress", "regions:1", "--format", "onnx", "-p", str(root)])
    assert exported.exit_code == 0, exported.output
    result = runner.invoke(
        _app(),
        [
            "evaluate",
            "regions:2",
            "-p",
            str(root),
            "--out",
            str(tmp_path / "r"),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(Path(json.loads(result.stdout)["json"]).read_text())
    assert report["model"] == "regions:2" and report["evaluation"]["serving"]


def test_evaluate_into_a_file_exits_2(ran_regions: RanProject, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("mine")
    result = CliRunner().invoke(
        _app(), ["evaluate", "regions:1", "-p", str(ran_regions.root), "--out", str(taken)]
    )
    assert result.exit_code == 2
    assert "--out: expected a folder, found a file" in result.output
    assert taken.read_text() == "mine"


def test_evaluating_another_models_version_exits_2(ran_regions: RanProject, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(ran_regions.root, root)
    spec = root / "readyml.yaml"
    spec.write_text(re.sub(r"(?m)^name: .*$", "name: other", spec.read_text()))
    result = CliRunner().invoke(_app(), ["evaluate", "regions:1", "-p", str(root)])
    assert result.exit_code == 2, result.output
    assert "expected a version of this project's model 'other'" in result.output
    assert "found model 'regions'" in result.output


def test_models_show_json_carries_gate_baselines_and_slices(ran_regions: RanProject) -> None:
    result = CliRunner().invoke(
        _app(), ["models", "show", "regions:1", "-p", str(ran_regions.root), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["gate"]["decision"] == "blessed" and shown["gate"]["reasons"]
    assert shown["metrics"]["baselines"]["linear"]["metrics"]["accuracy"] is not None
    assert any(s["name"] == "north" for s in shown["metrics"]["slices"])


def test_tune_records_trials_and_writes_back_only_what_scores_better(
    ran_regions: RanProject, tmp_path: Path
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(ran_regions.root, root)
    spec = (root / "readyml.yaml").read_text()
    tune = ["tune", "-p", str(root), "--n-trials", "2", "--write-back"]
    result = CliRunner().invoke(_app(), [*tune, "--format", "json"])
    assert result.exit_code == 0, result.output
    study = json.loads(result.stdout)
    # Unlimited depth (the current params) beats both trials' max_depth: nothing is written.
    assert len(study["trials"]) == 2 and study["best_value"] < study["current_value"]
    assert not study["wrote_back"] and (root / "readyml.yaml").read_text() == spec
    result = CliRunner().invoke(_app(), tune)
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split())  # lines wrap at the console's width
    assert "written back no: the best trial's accuracy 0." in shown
    assert "does not beat the current parameters' 0." in shown


def test_html_report_renders_its_plots_in_chromium(report_paths: dict[str, str]) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("READYML_REQUIRE_SERVICES") == "1":
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    html = Path(report_paths["html"])
    text = html.read_text()
    assert "<script" not in text and not re.search(r"""(src|href)=["']?https?:""", text)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(html.as_uri())
            assert "BLESSED" in page.inner_text("#gate")
            for name in PLOTS:
                box = page.locator(f"#plot-{name} svg").bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 100, name
                shapes = page.locator(f"#plot-{name} svg :is(rect, polyline, circle)").count()
                assert shapes >= 2, name
        finally:
            browser.close()
