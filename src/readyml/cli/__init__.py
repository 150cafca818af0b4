"""The ``readyml`` command line. Commands are thin: parse, call the library, render.

Exit codes: 0 ok; 1 a check failed (gate vetoed, not reproducible, error anomalies);
2 a usage, config, data or registry error (one red line, no traceback). Each command group
lives in its own module and is registered here.
"""

from __future__ import annotations

import sys

import typer

try:  # typer 0.20 and later carry their own copy of click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on click itself
    from click.exceptions import NoArgsIsHelpError, UsageError  # type: ignore[assignment]

from readyml import _console as console
from readyml.cli import (
    batch,
    capture,
    compress,
    data,
    deploy,
    evaluate,
    models,
    monitor,
    project,
    retrain,
    review,
    rollout,
    runs,
    score,
    serve,
)
from readyml.cli._command import use_for_every_command

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="readyml: production-ready ML, with evidence."
)
app.registered_commands += project.app.registered_commands
app.registered_commands += evaluate.app.registered_commands
app.registered_commands += score.app.registered_commands
app.registered_commands += compress.app.registered_commands
app.registered_commands += monitor.app.registered_commands
app.registered_commands += serve.app.registered_commands
app.registered_commands += batch.app.registered_commands
app.registered_commands += rollout.app.registered_commands
app.registered_commands += data.app.registered_commands
app.registered_commands += deploy.app.registered_commands
app.registered_commands += retrain.app.registered_commands
app.registered_commands += capture.app.registered_commands
app.registered_commands += runs.app.registered_commands
app.add_typer(data.schema_app, name="schema")
app.add_typer(models.app, name="models")
app.add_typer(review.app, name="review")
use_for_every_command(app)


def main(args: list[str] | None = None) -> None:
    """Console-script entry point: usage errors (a bad option value, a missing argument) are
    one red line and exit 2, like every other user error, not click's boxed usage text."""
    try:
        code = app(args=args, prog_name="readyml", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        sys.exit(2)
    except UsageError as exc:
        where = f" (see: {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        console.error_line(exc.format_message() + where)
        sys.exit(2)
    except typer.Abort:
        console.error_line("aborted")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
