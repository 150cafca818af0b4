"""`readyml serve` option errors: one line, exit 2, before anything is loaded."""

from __future__ import annotations

import socket
from pathlib import Path

from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner, Result

from readyml.cli import app

from .conftest import train_iris
from .test_rollout import register

runner = CliRunner()


def test_unknown_device_is_one_line_naming_what_was_expected(tmp_path: Path) -> None:
    root = train_iris(tmp_path)
    result = runner.invoke(app, ["serve", "-p", str(root), "--device", "gpu"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "device" in lines[0] and "auto|cpu|cuda" in lines[0] and "'gpu'" in lines[0]


def _one_line_error(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, lines
    assert "readyml serve:" not in result.stdout
    return lines[0]


def test_a_taken_port_is_one_line_before_anything_is_announced(tmp_path: Path) -> None:
    root = train_iris(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "-p", str(root), "--port", str(port)])
    line = _one_line_error(result)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line


def test_an_unknown_host_is_one_line(tmp_path: Path) -> None:
    root = train_iris(tmp_path)
    result = runner.invoke(app, ["serve", "-p", str(root), "--host", "no-such-host.invalid"])
    assert "serving.host" in _one_line_error(result)


def test_an_alias_that_does_not_exist_is_one_line_before_anything_is_announced(
    tmp_path: Path,
) -> None:
    root = train_iris(tmp_path)
    result = runner.invoke(app, ["serve", "-p", str(root), "-m", "iris@staging"])
    assert "alias: expected an existing alias (aliases: champion), found 'staging'" in (
        _one_line_error(result)
    )


def test_protected_predictions_without_a_token_are_one_line(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving={"protect_predict": True})
    result = runner.invoke(app, ["serve", "-p", str(root)], env={"READYML_SERVE_TOKEN": None})
    assert "serving.protect_predict: expected a bearer token" in _one_line_error(result)


def test_a_vetoed_version_is_one_line_before_anything_is_announced(tmp_path: Path) -> None:
    root = train_iris(tmp_path)
    version = register(root, lambda: LogisticRegression(max_iter=500, C=0.5))
    veto = ["models", "veto", f"iris:{version}", "--reason", "leaks", "-p", str(root)]
    assert runner.invoke(app, veto).exit_code == 0
    result = runner.invoke(app, ["serve", "-p", str(root), "-m", f"iris:{version}"])
    assert f"found version {version} vetoed" in _one_line_error(result)
