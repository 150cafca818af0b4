"""`readyml serve` option errors: one line, exit 2, before anything is loaded."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from readyml.cli import app

from .conftest import train_iris

runner = CliRunner()


def test_unknown_device_is_one_line_naming_what_was_expected(tmp_path: Path) -> None:
    root = train_iris(tmp_path)
    result = runner.invoke(app, ["serve", "-p", str(root), "--device", "gpu"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "device" in lines[0] and "auto|cpu|cuda" in lines[0] and "'gpu'" in lines[0]
