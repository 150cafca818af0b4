from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from readyml.cli import app
from support import IRIS_SPEC, iris_frame, write_project

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _one_error_line(stderr: str) -> str:
    """The one human line; off a terminal, progress events are JSON lines beside it."""
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_run_then_models_commands(tmp_path: Path) -> None:
    write_project(tmp_path)
    code, out, _ = _invoke("run", "-p", str(tmp_path), "--format", "json", "--promote")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["registered"] == {"name": "iris", "version": 1, "new": True}
    assert summary["promoted"] == "iris:1"

    code, out, _ = _invoke("models", "list", "-p", str(tmp_path), "--format", "json")
    assert code == 0 and json.loads(out)[0]["name"] == "iris"

    code, out, _ = _invoke(
        "models", "show", "iris@champion", "-p", str(tmp_path), "--format", "json"
    )
    shown = json.loads(out)
    assert shown["version"] == 1 and shown["status"] == "blessed"
    assert shown["input_example"][0].keys() == {
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    }
    assert shown["gate"]["decision"] == "blessed"

    code, out, _ = _invoke("models", "show", "iris:1", "-p", str(tmp_path))
    assert code == 0 and "input_example" in out

    # The registry's commands need only where the project is, not a valid spec.
    (tmp_path / "readyml.yaml").write_text(yaml.safe_dump({**IRIS_SPEC, "features": 3}))
    code, out, _ = _invoke("models", "show", "iris@champion", "-p", str(tmp_path))
    assert code == 0 and "input_example" in out
    assert _invoke("run", "-p", str(tmp_path))[0] == 2


def test_run_summary_shows_the_other_metrics_the_spec_names(tmp_path: Path) -> None:
    spec = {**IRIS_SPEC, "metrics": {"primary": "accuracy", "others": ["f1_macro", "log_loss"]}}
    write_project(tmp_path, spec)
    code, out, _ = _invoke("run", "-p", str(tmp_path))
    assert code == 0
    for name in ("accuracy", "f1_macro", "log_loss"):
        assert re.search(rf"{name}\s+\d\.\d+", out), (name, out)


def test_promote_rollback_history_keep_reasons(tmp_path: Path) -> None:
    write_project(tmp_path)
    assert _invoke("run", "-p", str(tmp_path), "--promote")[0] == 0
    spec = {**IRIS_SPEC, "model": {**IRIS_SPEC["model"], "params": {"max_iter": 500, "C": 0.3}}}
    (tmp_path / "readyml.yaml").write_text(yaml.safe_dump(spec))
    assert _invoke("run", "-p", str(tmp_path))[0] == 0
    code, out, _ = _invoke(
        "models", "promote", "iris:2", "--reason", "better", "-p", str(tmp_path), "--format", "json"
    )
    assert code == 0 and json.loads(out)["to_version"] == 2
    code, out, _ = _invoke(
        "models", "rollback", "iris", "--reason", "oops", "-p", str(tmp_path), "--format", "json"
    )
    assert code == 0 and json.loads(out)["to_version"] == 1
    code, out, _ = _invoke("models", "history", "iris", "-p", str(tmp_path), "--format", "json")
    events = json.loads(out)
    # Alias moves and status changes, interleaved by time.
    assert [(e["kind"], e.get("to_version") or e.get("to_status")) for e in events] == [
        ("status", "blessed"),
        ("alias", 1),
        ("status", "blessed"),
        ("alias", 2),
        ("alias", 1),
    ]
    assert [e["reason"] for e in events][-2:] == ["better", "oops"]


def test_check_reproducible_passes(tmp_path: Path) -> None:
    write_project(tmp_path)
    code, out, _ = _invoke("run", "-p", str(tmp_path), "--check-reproducible", "--format", "json")
    assert code == 0
    assert json.loads(out)["reproducibility"]["passed"] is True


def test_vetoed_run_exits_1(tmp_path: Path) -> None:
    write_project(
        tmp_path, {**IRIS_SPEC, "gates": {"rules": [{"metric": "accuracy", "min": 0.9999}]}}
    )
    code, _, _ = _invoke("run", "-p", str(tmp_path))
    assert code == 1
    code, _, err = _invoke("models", "promote", "iris:1", "-p", str(tmp_path))
    assert code == 2 and "vetoed" in _one_error_line(err)


def test_run_promote_refuses_a_version_a_person_vetoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rerun whose gate blesses the model again neither lifts the veto nor promotes it."""
    monkeypatch.setenv("READYML_USER", "ana")
    write_project(tmp_path)
    assert _invoke("run", "-p", str(tmp_path))[0] == 0
    code, _, _ = _invoke(
        "models", "veto", "iris:1", "--reason", "leaks the label", "-p", str(tmp_path)
    )
    assert code == 0
    code, out, err = _invoke("run", "-p", str(tmp_path), "--promote")
    assert (code, out) == (2, "")
    assert _one_error_line(err) == (
        "error: model 'iris' version 1: expected a version that may become 'champion' (not "
        "vetoed or archived), found it vetoed (by ana: leaks the label)"
    )
    assert "this run's gate blessed it, a status set by a person stays" in err
    code, out, _ = _invoke("models", "show", "iris:1", "-p", str(tmp_path), "--format", "json")
    shown = json.loads(out)
    assert (shown["status"], shown["aliases"]) == ("vetoed", [])


def test_an_archived_version_is_refused_for_every_alias_with_the_person_s_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("READYML_USER", "ana")
    write_project(tmp_path)
    assert _invoke("run", "-p", str(tmp_path))[0] == 0
    code, _, _ = _invoke("models", "archive", "iris:1", "--reason", "retired", "-p", str(tmp_path))
    assert code == 0
    for alias in ("challenger", "staging", "champion"):
        code, out, err = _invoke(
            "models", "promote", "iris:1", "--alias", alias, "-p", str(tmp_path)
        )
        assert (code, out) == (2, "")
        # The person's reason, not the gate rules the version passed.
        assert _one_error_line(err) == (
            f"error: model 'iris' version 1: expected a version that may become '{alias}' "
            "(not vetoed or archived), found it archived (by ana: retired)"
        )
    code, out, _ = _invoke("models", "list", "-p", str(tmp_path), "--format", "json")
    assert json.loads(out)[0]["aliases"] == {}


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    write_project(tmp_path, {**IRIS_SPEC, "modle": {}})
    code, _, err = _invoke("run", "-p", str(tmp_path))
    assert code == 2
    assert "unknown key 'modle'" in _one_error_line(err)


def test_missing_data_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    write_project(tmp_path, {**IRIS_SPEC, "data": {"source": "data/missing.csv"}})
    code, _, err = _invoke("run", "-p", str(tmp_path))
    assert code == 2
    assert "file 'data/missing.csv' not found" in _one_error_line(err)


def test_unknown_column_is_one_line_and_exit_2(tmp_path: Path) -> None:
    write_project(tmp_path, {**IRIS_SPEC, "features": ["sepal_length", "petal_lenght"]})
    code, _, err = _invoke("run", "-p", str(tmp_path))
    assert code == 2
    assert "column 'petal_lenght' not in the data" in _one_error_line(err)


def test_a_slice_value_in_no_row_is_one_line_and_exit_2_and_a_small_slice_rule_vetoes(
    tmp_path: Path,
) -> None:
    rules = [{"metric": "accuracy", "min": 0.5, "slice": "setosa"}]
    typo = [{"name": "setosa", "column": "species", "values": ["setsoa"]}]
    write_project(tmp_path, {**IRIS_SPEC, "slices": typo, "gates": {"rules": rules}})
    code, _, err = _invoke("run", "-p", str(tmp_path))
    assert code == 2
    assert _one_error_line(err) == (
        "error: slices[setosa].values: expected values that occur in column 'species', found "
        "'setsoa' in no row of the data (did you mean 'setosa'?); its values: 'setosa', "
        "'versicolor', 'virginica'"
    )
    # Spelled right, the slice holds too few of the 45 validation rows to judge the rule.
    fixed = [{"name": "setosa", "column": "species", "values": ["setosa"]}]
    write_project(tmp_path, {**IRIS_SPEC, "slices": fixed, "gates": {"rules": rules}})
    code, out, _ = _invoke("run", "-p", str(tmp_path), "--format", "json")
    assert code == 1, out
    (failed,) = json.loads(out)["gate"]["failed"]
    assert failed.startswith(
        "accuracy >= 0.5 on slice 'setosa' failed: not judged, too few validation rows "
        "('setosa' too small to judge: "
    )


def test_bad_estimator_is_one_line_and_exit_2(tmp_path: Path) -> None:
    write_project(
        tmp_path, {**IRIS_SPEC, "model": {"estimator": "sklearn.linear_model.LogisticRegresion"}}
    )
    code, _, err = _invoke("run", "-p", str(tmp_path))
    assert code == 2
    assert "LogisticRegresion" in _one_error_line(err)


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ("def fit(X, y, params, seed):\n    return 1 +\n", "SyntaxError at train_fn.py:2"),
        ("x = 1 / 0\n", "ZeroDivisionError at train_fn.py:1: division by zero"),
    ],
)
def test_an_entry_point_failing_at_import_is_one_line_and_exit_2(
    tmp_path: Path, source: str, where: str
) -> None:
    write_project(tmp_path, {**IRIS_SPEC, "model": {"entry_point": "train_fn:fit"}})
    (tmp_path / "train_fn.py").write_text(source)
    code, _, err = _invoke("run", "-p", str(tmp_path))
    assert code == 2
    line = _one_error_line(err)
    assert "cannot import module 'train_fn' named by 'train_fn:fit'" in line and where in line
    # The attempt is a failed run, listed with its error like any other.
    code, out, _ = _invoke("runs", "-p", str(tmp_path), "--format", "json")
    assert code == 0
    (run,) = json.loads(out)
    assert run["status"] == "failed" and run["versions"] == []
    assert run["error"].startswith("before the first step: ") and where in run["error"]


def test_tampered_artifact_is_one_line_and_exit_2(tmp_path: Path) -> None:
    write_project(tmp_path)
    assert _invoke("run", "-p", str(tmp_path))[0] == 0
    blobs = [p for p in (tmp_path / ".readyml" / "artifacts" / "models").rglob("*") if p.is_file()]
    assert blobs
    target = max(blobs, key=lambda p: p.stat().st_size)
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    code, _, err = _invoke("models", "verify", "iris:1", "-p", str(tmp_path))
    assert code == 2
    line = _one_error_line(err)
    assert "'iris' version 1" in line and target.name in line
    code, _, err = _invoke(
        "models", "download", "iris:1", "--out", str(tmp_path / "out"), "-p", str(tmp_path)
    )
    assert code == 2 and target.name in _one_error_line(err)


def test_init_writes_a_runnable_starter(tmp_path: Path) -> None:
    code, out, _ = _invoke("init", str(tmp_path / "proj"))
    assert code == 0 and "readyml.yaml" in out
    code, _, err = _invoke("init", str(tmp_path / "proj"))
    assert code == 2 and "already exists" in _one_error_line(err)
    code, _, err = _invoke("init", str(tmp_path / "other"), "--name", "my model")
    assert code == 2 and "--name: expected a model name" in _one_error_line(err)


def test_unknown_reference_is_exit_2(tmp_path: Path) -> None:
    write_project(tmp_path)
    assert _invoke("run", "-p", str(tmp_path))[0] == 0
    code, _, err = _invoke("models", "show", "iris@staging", "-p", str(tmp_path))
    assert code == 2 and "staging" in _one_error_line(err)
    code, _, err = _invoke("models", "show", "bad name", "-p", str(tmp_path))
    assert code == 2


def test_the_cli_imports_no_heavy_module_before_a_command_runs() -> None:
    # Each command imports what it needs; `readyml --help` and a typo stay instant.
    script = (
        "import sys, readyml.cli; "
        "print(sorted(m for m in ('readyml.serve', 'sklearn', 'torch', 'pandas') "
        "if m in sys.modules))"
    )
    answer = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert answer.stdout.strip() == "[]"


def test_label_as_feature_is_one_line_and_exit_2(tmp_path: Path) -> None:
    write_project(tmp_path, {**IRIS_SPEC, "features": ["sepal_length", "species"]})
    code, _, err = _invoke("run", "-p", str(tmp_path))
    assert code == 2
    assert _one_error_line(err) == (
        "error: readyml.yaml: features: 'species' is the label; "
        "a model cannot take its own label as input"
    )


def test_one_class_label_is_one_line_and_exit_2(tmp_path: Path) -> None:
    write_project(tmp_path, frame=iris_frame().assign(species="a"))
    code, _, err = _invoke("run", "-p", str(tmp_path))
    assert code == 2
    assert _one_error_line(err) == (
        "error: label 'species': classification needs at least 2 classes, found 1 ('a')"
    )


def test_init_into_a_file_or_a_missing_parent_is_one_line_and_exit_2(tmp_path: Path) -> None:
    file = tmp_path / "wine.csv"
    file.write_text("a,b\n1,2\n")
    code, _, err = _invoke("init", str(file))
    assert code == 2
    assert _one_error_line(err) == (
        f"error: directory '{file}': expected a folder (new or existing), found a file"
    )
    code, _, err = _invoke("init", str(file / "sub"))
    assert code == 2
    assert f"directory '{file / 'sub'}': cannot create the project there" in _one_error_line(err)


def test_init_help_says_the_workflow_needs_ci() -> None:
    code, out, _ = _invoke("init", "--help")
    assert code == 0
    assert "with --ci, a CI workflow" in " ".join(out.split())


def _registry_project(root: Path) -> Path:
    """A project whose registry holds demo:1 (champion), demo:2 and a vetoed demo:3."""
    from readyml.registry import open_registry

    write_project(root)
    weights = root / "weights.bin"
    weights.write_bytes(b"weights")
    registry = open_registry(root / ".readyml")
    for fingerprint in ("a", "b"):
        registry.register("demo", files={"model.bin": weights}, model_fingerprint=fingerprint)
    registry.register(
        "demo",
        files={"model.bin": weights},
        model_fingerprint="c",
        status="vetoed",
        gate={"decision": "vetoed", "failed": ["accuracy 0.40 < 0.90"]},
    )
    registry.promote("demo:1", who="tests", reason="first")
    registry.store.close()
    return root


def _champion_moves(root: Path) -> list[list[int | None]]:
    code, out, _ = _invoke(
        "models", "history", "demo", "--alias", "champion", "-p", str(root), "--format", "json"
    )
    assert code == 0, out
    return [[e["from_version"], e["to_version"]] for e in json.loads(out)]


def test_promoting_the_champion_again_changes_nothing(tmp_path: Path) -> None:
    root = _registry_project(tmp_path)
    for ref in ("demo:1", "demo@champion"):
        code, out, err = _invoke("models", "promote", ref, "-p", str(root))
        assert (code, out, err) == (0, "demo:1 is already champion; nothing changed\n", "")
    code, out, _ = _invoke("models", "promote", "demo:1", "-p", str(root), "--format", "json")
    assert code == 0
    assert json.loads(out) == {
        "model_name": "demo",
        "alias": "champion",
        "from_version": 1,
        "to_version": 1,
        "moved": False,
    }
    assert _champion_moves(root) == [[None, 1]]
    code, out, _ = _invoke("models", "promote", "demo:2", "-p", str(root), "--format", "json")
    assert code == 0
    moved = json.loads(out)
    assert (moved["from_version"], moved["to_version"], moved["moved"]) == (1, 2, True)


def test_a_bad_format_is_refused_before_the_alias_moves(tmp_path: Path) -> None:
    root = _registry_project(tmp_path)
    code, _, err = _invoke("models", "promote", "demo:2", "-p", str(root), "--format", "yaml")
    assert code == 2
    assert _one_error_line(err) == "error: --format: expected 'text' or 'json', found 'yaml'"
    code, _, err = _invoke("models", "rollback", "demo", "-p", str(root), "--format", "yml")
    assert code == 2 and "found 'yml'" in _one_error_line(err)
    assert _champion_moves(root) == [[None, 1]]


def test_reasons_and_names_with_markup_are_printed_as_written(tmp_path: Path) -> None:
    root = _registry_project(tmp_path)
    reason = "fix [/b] and [bold]ticket[/bold] “42”"
    code, out, err = _invoke("models", "promote", "demo:2", "--reason", reason, "-p", str(root))
    assert (code, err) == (0, "")
    assert out == f"demo@champion: 1 → 2 ({reason})\n"
    code, out, err = _invoke("models", "history", "demo", "-p", str(root))
    assert (code, err) == (0, "")
    assert reason in out
    # Times to the second; a first move shows "-" as where it came from.
    assert re.search(r"\d\d:\d\d:\d\d\.\d", out) is None
    assert re.search(r"Z\s+│ alias\s+│ champion │ -\s+│ 1 ", out), out
    code, out, _ = _invoke("models", "history", "demo", "-p", str(root), "--format", "json")
    assert code == 0 and json.loads(out)[-1]["reason"] == reason


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["show", "nope:1"],
            "model: expected a registered model (models: demo), found 'nope'",
        ),
        (
            ["show", "demo:0"],
            "model 'demo' version: expected a registered version (versions: 1, 2, 3), found 0",
        ),
        (
            ["promote", "demo:99999999999999999999999"],
            "model 'demo' version: expected a registered version (versions: 1, 2, 3), "
            "found 99999999999999999999999",
        ),
        (
            ["show", "demo@staging"],
            "model 'demo' alias: expected an existing alias (aliases: champion), found 'staging'",
        ),
        (
            ["promote", "demo:3"],
            "model 'demo' version 3: expected a version that may become 'champion' (not vetoed "
            "or archived), found it vetoed (reasons: accuracy 0.40 < 0.90)",
        ),
        (
            ["promote", "demo:2", "--alias", "bad alias"],
            "alias: expected 1-64 letters, digits, '_', '.', '-', found 'bad alias'",
        ),
        (
            ["rollback", "demo"],
            "model 'demo' alias 'champion': expected a move from an earlier version, found "
            "nothing to roll back to (it never pointed at another version)",
        ),
        (
            ["rollback", "demo", "--alias", "staging"],
            "model 'demo' alias: expected an existing alias (aliases: champion), found 'staging'",
        ),
        (
            ["history", "demo", "--alias", "stagin"],
            "model 'demo' alias: expected an existing alias (aliases: champion), found 'stagin'",
        ),
        (
            ["history", "../demo"],
            "model: expected a registered model (models: demo), found '../demo'",
        ),
        (
            ["history", "demo", "--version", "9"],
            "model 'demo' version: expected a registered version (versions: 1, 2, 3), found 9",
        ),
        (
            ["history", "demo", "--version", "2", "--alias", "champion"],
            "--alias and --version: expected one of them, found both ('champion', 2)",
        ),
        (
            ["show", "demo:\u0661"],
            "model reference 'demo:\u0661': expected NAME, NAME:VERSION or NAME@ALIAS in ASCII",
        ),
    ],
)
def test_registry_mistakes_are_one_line_exit_2_and_change_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    root = _registry_project(tmp_path)
    code, out, err = _invoke("models", *args, "-p", str(root))
    assert (code, out) == (2, "")
    assert _one_error_line(err).startswith(f"error: {message}")
    assert _champion_moves(root) == [[None, 1]]


def test_veto_archive_and_restore_keep_who_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _registry_project(tmp_path)
    monkeypatch.setenv("READYML_USER", "ana")
    code, out, err = _invoke(
        "models", "veto", "demo:2", "--reason", "leaks [b]ids[/b]", "-p", str(root)
    )
    assert (code, out, err) == (0, "demo:2: candidate → vetoed (leaks [b]ids[/b])\n", "")
    code, out, _ = _invoke("models", "show", "demo:2", "-p", str(root), "--format", "json")
    change = json.loads(out)["tags"]["status_change"]
    assert (change["status"], change["by"], change["reason"]) == (
        "vetoed",
        "ana",
        "leaks [b]ids[/b]",
    )
    # A vetoed version cannot become champion.
    code, _, err = _invoke("models", "promote", "demo:2", "-p", str(root))
    assert code == 2 and "vetoed" in _one_error_line(err)
    code, out, _ = _invoke("models", "veto", "demo:2", "--reason", "again", "-p", str(root))
    assert (code, out) == (0, "demo:2 is already vetoed; nothing changed\n")
    code, out, _ = _invoke(
        "models",
        "restore",
        "demo:2",
        "--reason",
        "false alarm",
        "-p",
        str(root),
        "--format",
        "json",
    )
    moved = json.loads(out)
    assert code == 0
    assert (moved["from_status"], moved["to_status"], moved["moved"]) == (
        "vetoed",
        "candidate",
        True,
    )
    assert moved["change"]["reason"] == "false alarm"
    code, out, _ = _invoke("models", "archive", "demo:3", "--reason", "old", "-p", str(root))
    assert (code, out) == (0, "demo:3: vetoed → archived (old)\n")


def test_history_interleaves_status_changes_with_alias_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _registry_project(tmp_path)
    monkeypatch.setenv("READYML_USER", "ana")
    assert _invoke("models", "veto", "demo:2", "--reason", "leaks ids", "-p", str(root))[0] == 0
    assert _invoke("models", "restore", "demo:2", "--reason", "fixed", "-p", str(root))[0] == 0
    assert _invoke("models", "promote", "demo:2", "--reason", "better", "-p", str(root))[0] == 0
    code, out, err = _invoke("models", "history", "demo", "-p", str(root))
    assert (code, err) == (0, "")
    lines = [line for line in out.splitlines() if "Z " in line]
    kinds = [re.split(r"\s*│\s*", line)[1:4] for line in lines]
    assert kinds == [
        ["status", "demo:1", "-"],
        ["status", "demo:2", "-"],
        ["status", "demo:3", "-"],
        ["alias", "champion", "-"],
        ["status", "demo:2", "candidate"],
        ["status", "demo:2", "vetoed"],
        ["alias", "champion", "1"],
    ]
    assert re.search(r"│ demo:3\s+│ -\s+│ vetoed\s+│ \(gate\)\s+│ accuracy 0.40 < 0.90", out), out
    assert re.search(r"│ candidate │ vetoed\s+│ ana\s+│ leaks ids", out), out
    events = _history_json(root, "--version", "2")
    assert [(e["kind"], e["from_status"], e["to_status"], e["who"]) for e in events] == [
        ("status", None, "candidate", None),
        ("status", "candidate", "vetoed", "ana"),
        ("status", "vetoed", "candidate", "ana"),
    ]
    assert {e["kind"] for e in _history_json(root, "--alias", "champion")} == {"alias"}


def _history_json(root: Path, *args: str) -> list[dict[str, object]]:
    code, out, _ = _invoke("models", "history", "demo", *args, "-p", str(root), "--format", "json")
    assert code == 0, out
    events: list[dict[str, object]] = json.loads(out)
    return events


def test_a_veto_of_a_gate_vetoed_version_is_recorded_as_the_person_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Otherwise a later run's gate, blessing the model under fixed rules, would lift it."""
    root = _registry_project(tmp_path)
    monkeypatch.setenv("READYML_USER", "ana")
    code, out, err = _invoke("models", "veto", "demo:3", "--reason", "confirmed", "-p", str(root))
    assert (code, out, err) == (
        0,
        "demo:3 is already vetoed; now recorded as set by ana (confirmed)\n",
        "",
    )
    code, out, _ = _invoke("models", "show", "demo:3", "-p", str(root), "--format", "json")
    change = json.loads(out)["tags"]["status_change"]
    assert (change["status"], change["by"], change["reason"]) == ("vetoed", "ana", "confirmed")
    code, out, _ = _invoke(
        "models", "veto", "demo:3", "--reason", "again", "-p", str(root), "--format", "json"
    )
    moved = json.loads(out)
    assert (code, moved["moved"], moved["change"]["reason"]) == (0, False, "confirmed")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["veto", "demo:1", "--reason", "bad"], "expected a version that is not 'champion'"),
        (["archive", "demo:1", "--reason", "old"], "expected a version that is not 'champion'"),
        (["veto", "demo:2", "--reason", " "], "--reason: expected why the version is to veto"),
        (["veto", "demo@champion", "--reason", "x"], "version: expected NAME:VERSION, found"),
        (["veto", "demo", "--reason", "x"], "version: expected NAME:VERSION, found 'demo'"),
        (["veto", "demo:9", "--reason", "x"], "expected"),
        (["restore", "demo:2", "--reason", "x"], "demo:2: expected a vetoed or archived version"),
    ],
)
def test_status_mistakes_are_one_line_exit_2_and_change_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    root = _registry_project(tmp_path)
    code, _, err = _invoke("models", *args, "-p", str(root))
    assert code == 2
    assert message in _one_error_line(err)
    code, out, _ = _invoke("models", "show", "demo:1", "-p", str(root), "--format", "json")
    assert (
        json.loads(out)["status"] == "candidate" and "status_change" not in json.loads(out)["tags"]
    )
    code, out, _ = _invoke("models", "show", "demo:2", "-p", str(root), "--format", "json")
    assert json.loads(out)["status"] == "candidate"


def test_download_into_an_existing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    root = _registry_project(tmp_path / "p")
    file = tmp_path / "afile"
    file.write_text("keep me", encoding="utf-8")
    code, _, err = _invoke("models", "download", "demo:1", "--out", str(file), "-p", str(root))
    assert code == 2
    assert _one_error_line(err) == f"error: --out: expected a folder, found a file ('{file}')"
    assert file.read_text(encoding="utf-8") == "keep me"


def test_init_refuses_an_empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _invoke("init", "")
    assert code == 2
    assert _one_error_line(err) == (
        "error: directory: expected a path, found an empty string (use '.' for this folder)"
    )
    assert list(tmp_path.iterdir()) == []


def test_run_help_lists_the_steps_the_pipeline_runs() -> None:
    from readyml.cli.project import RUN_STEPS
    from readyml.train.steps import default_steps

    assert tuple(step.name for step in default_steps()) == RUN_STEPS
    code, out, _ = _invoke("run", "--help")
    assert code == 0 and " → ".join(RUN_STEPS) in " ".join(out.split())


@pytest.mark.parametrize(
    ("identical", "spread", "task", "outputs", "line"),
    [
        (1.0, 0.0, "classification", "probabilities", "identical predictions on 40 rows"),
        (
            1.0,
            0.0312,
            "classification",
            "probabilities",
            "labels identical, probabilities differ by up to 0.0312",
        ),
        (0.95, 0.4, "classification", "probabilities", "2 of 40 predicted labels differ; "),
        (0.95, 1.0, "classification", None, "2 of 40 predicted labels differ (tolerance 0)"),
        (0.5, 0.25, "regression", None, "20 of 40 predicted values differ, by up to 0.25"),
    ],
)
def test_reproducibility_line_says_what_differed(
    identical: float, spread: float, task: str, outputs: str | None, line: str
) -> None:
    from readyml.cli.project import reproducibility_line

    rep = {
        "n_rows": 40,
        "identical_predictions": identical,
        "max_abs_difference": spread,
        "tolerance": 0.0,
    }
    assert line in reproducibility_line(rep, task=task, outputs=outputs)


def test_runs_lists_the_project_runs_newest_first_with_what_they_registered(
    tmp_path: Path,
) -> None:
    write_project(tmp_path)
    assert _invoke("run", "-p", str(tmp_path))[0] == 0
    (tmp_path / "data" / "iris.csv").write_text(
        (tmp_path / "data" / "iris.csv").read_text().splitlines()[0] + "\n"
    )
    assert _invoke("run", "-p", str(tmp_path))[0] != 0
    code, out, _ = _invoke("runs", "-p", str(tmp_path), "--format", "json")
    assert code == 0
    failed, succeeded = json.loads(out)
    assert failed["status"] == "failed" and failed["error"] and failed["versions"] == []
    assert succeeded["status"] == "succeeded" and succeeded["versions"] == [1]
    code, out, _ = _invoke("runs", "-p", str(tmp_path), "--all")
    assert code == 0 and "iris:1" in out and "failed" in out and "project" in out
    code, out, _ = _invoke("runs", "-p", str(tmp_path), "--limit", "1", "--format", "json")
    assert [run["status"] for run in json.loads(out)] == ["failed"]
    code, _, err = _invoke("runs", "-p", str(tmp_path), "--limit", "0")
    assert code == 2 and "--limit: expected" in _one_error_line(err)


def test_a_failed_step_says_why_in_its_json_progress_event(tmp_path: Path) -> None:
    write_project(tmp_path)
    spec = yaml.safe_load((tmp_path / "readyml.yaml").read_text())
    spec["data"]["source"] = "missing.csv"
    (tmp_path / "readyml.yaml").write_text(yaml.safe_dump(spec))
    code, _, err = _invoke("run", "-p", str(tmp_path), "--format", "json")
    assert code == 2
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    (load,) = [e for e in events if e["event"] == "step_finished" and e["step"] == "load"]
    assert load["status"] == "failed"
    assert load["error"].startswith("data.source: file 'missing.csv' not found")


def test_a_folder_as_data_source_is_one_line_naming_a_glob(tmp_path: Path) -> None:
    write_project(tmp_path)
    (tmp_path / "folder").mkdir()
    spec = yaml.safe_load((tmp_path / "readyml.yaml").read_text())
    spec["data"]["source"] = "folder"
    (tmp_path / "readyml.yaml").write_text(yaml.safe_dump(spec))
    code, _, err = _invoke("run", "-p", str(tmp_path))
    assert code == 2
    assert "data.source: expected a file or a glob (e.g. 'folder/*.parquet'), found the folder" in (
        _one_error_line(err)
    )
