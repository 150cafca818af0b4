"""What every command module shares: error handling, common options, the registry."""

from __future__ import annotations

import contextlib
import functools
import getpass
import os
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
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


class Terminated(SystemExit):
    """SIGTERM arrived while :func:`sigterm_exits` was in force.

    A ``SystemExit``, so it unwinds like Ctrl-C (``finally`` blocks and ``except
    BaseException`` handlers run, and a running pipeline marks its run failed) and the
    process exits with 128 + the signal number, as if the signal had killed it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signal_name = signal.Signals(signum).name

    def __str__(self) -> str:
        return self.signal_name


@contextlib.contextmanager
def sigterm_exits() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the block runs, then restore the handler.

    After the first SIGTERM, later ones are ignored until the block ends, so that they do
    not interrupt the cleanup of the first (SIGKILL still does). Outside the main thread,
    where Python cannot set handlers, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


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


def when_utc(at: datetime) -> str:
    """A timestamp to the second, in UTC: ``2025-01-31 09:15:02Z`` (naive means UTC)."""
    utc = at if at.tzinfo is None else at.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%SZ")
