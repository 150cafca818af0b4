"""What every command module shares: error handling, common options, the registry."""

from __future__ import annotations

import contextlib
import functools
import getpass
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, ParamSpec, TypeVar

import typer

from readyml import _console as console
from readyml.errors import ConfigError, ReadymlError

if TYPE_CHECKING:
    from readyml.registry import Registry

P = ParamSpec("P")
R = TypeVar("R")

ProjectOpt = Annotated[
    Path, typer.Option("--project", "-p", help="Project directory (holds readyml.yaml).")
]
FormatOpt = Annotated[str, typer.Option("--format", help="Output format: text or json.")]


def cli_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn user-caused errors into one red line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ReadymlError as exc:
            console.error_line(str(exc))
            raise typer.Exit(code=2) from None

    return wrapper


def output_format(value: str, option: str = "--format") -> Literal["text", "json"]:
    """Check the value of the output option (``--format``, or ``option`` where that is taken)."""
    if value not in ("text", "json"):
        raise ConfigError(f"{option}: expected 'text' or 'json', found {value!r}")
    return "json" if value == "json" else "text"


def who() -> str:
    """Who is acting, for audit records: ``READYML_USER`` or the login name."""
    return os.environ.get("READYML_USER") or getpass.getuser()


def write_output(path: Path, text: str, option: str = "--out") -> None:
    """Write an output file whole (a temporary file renamed), or raise a one-line
    ``ConfigError`` naming ``option``; nothing is left behind when it fails."""
    if path.is_dir():
        raise ConfigError(f"{option}: expected a file name, found a folder ({str(path)!r})")
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise ConfigError(f"{option}: cannot write {str(path)!r} ({exc.strerror or exc})") from exc


def output_folder(path: Path, option: str = "--out") -> Path:
    """Create the folder an output is written into (before any work is done), or raise a
    one-line ``ConfigError`` naming ``option``."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option}: expected a folder, found a file ({str(path)!r})")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{option}: cannot create the folder {str(path)!r} ({exc.strerror or exc})"
        ) from exc
    return path


def project_registry(project: Path) -> Registry:
    """The registry of the project in ``project``.

    The spec is found but not parsed: the registry's commands need only where the project
    is, and must work while ``readyml.yaml`` has a mistake elsewhere.
    """
    from readyml.config import WORKSPACE_DIR, find_spec_file
    from readyml.registry import open_registry

    workspace = find_spec_file(project).parent.resolve() / WORKSPACE_DIR
    workspace.mkdir(parents=True, exist_ok=True)
    return open_registry(workspace)
