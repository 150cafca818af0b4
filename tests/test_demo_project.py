"""Where ``readyml demo`` builds its project: only a new, empty or demo-built folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from readyml import demo
from readyml.cli import app
from readyml.demo import DEMO_MARKER, create_demo_project
from readyml.train.steps import SCHEMA_FILE


def _error(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_demo_refuses_a_file_another_project_and_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    assert _error("demo", "--dir", str(tmp_path / "notes.txt")) == (
        f"error: demo --dir: expected a folder, found a file: {tmp_path / 'notes.txt'}"
    )
    assert CliRunner().invoke(app, ["init", str(tmp_path / "mine")]).exit_code == 0
    spec = (tmp_path / "mine" / "readyml.yaml").read_text()
    line = _error("demo", "--dir", str(tmp_path / "mine"))
    assert line.startswith("error: demo --dir: expected a new folder or one the demo built")
    assert (tmp_path / "mine" / "readyml.yaml").read_text() == spec
    assert not (tmp_path / "mine" / ".readyml").exists()  # nothing ran, nothing stored
    line = _error("demo", "--dir", str(tmp_path))
    assert line.startswith("error: demo --dir: expected a new or empty folder")


def test_an_interrupted_build_leaves_nothing_and_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "demo"

    def killed(directory: Path, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the last step of the build: git

    with monkeypatch.context() as patched:
        patched.setattr(demo, "_check_in", killed)
        with pytest.raises(KeyboardInterrupt):
            create_demo_project(target)
    assert not target.exists() and list(tmp_path.iterdir()) == []
    # What a SIGKILL leaves: a half-built staging folder beside the target, never the target.
    (tmp_path / ".demo.partial" / "data").mkdir(parents=True)
    assert create_demo_project(target)
    assert (target / SCHEMA_FILE).exists() and (target / DEMO_MARKER).exists()
    assert (target / ".git").exists() or shutil.which("git") is None
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]
    assert not create_demo_project(target)  # a built demo is reused


def test_an_empty_folder_is_filled_marker_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved: list[str] = []
    rename = Path.rename

    def recorded(self: Path, target: Path) -> Path:
        moved.append(self.name)
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", recorded)
    assert create_demo_project(tmp_path)
    assert moved[-1] == DEMO_MARKER and (tmp_path / "readyml.yaml").exists()
    assert not (tmp_path.parent / f".{tmp_path.name}.partial").exists()
    assert not create_demo_project(tmp_path)
