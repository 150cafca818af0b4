"""The ``readyml`` command line. Commands are thin: parse, call the library, render.

Exit codes: 0 ok; 1 a check failed (gate vetoed, not reproducible, error anomalies);
2 a usage, config, data or registry error (one red line, no traceback). Each command group
lives in its own module and is registered here.
"""

from __future__ import annotations

import typer

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
    score,
    serve,
)

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
app.add_typer(data.schema_app, name="schema")
app.add_typer(models.app, name="models")
app.add_typer(review.app, name="review")


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
