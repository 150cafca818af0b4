"""``readyml serve``: serve the project's champion (or any models) over REST."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from readyml import _console as console
from readyml.cli._common import ProjectOpt, cli_errors

app = typer.Typer(help="Serve models over REST.")


@app.command("serve")
@cli_errors
def serve(
    project: ProjectOpt = Path("."),
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="NAME, NAME:VERSION or NAME@ALIAS to serve (repeat for several); "
            "default: serving.models, else the project's champion.",
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    runtime: Annotated[str | None, typer.Option(help="native or onnx.")] = None,
    batching: Annotated[
        bool | None, typer.Option("--batching/--no-batching", help="Adaptive batching.")
    ] = None,
    request_log: Annotated[
        bool | None,
        typer.Option("--request-log/--no-request-log", help="Log requests to Parquet."),
    ] = None,
    access_log: Annotated[
        bool | None,
        typer.Option("--access-log/--no-access-log", help="JSON access lines on stderr."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "warning",
) -> None:
    """Serve models over REST: Open Inference Protocol V2, MLflow /invocations, /predict."""
    from readyml.config import Project, ServingSpec
    from readyml.errors import ConfigError
    from readyml.serve import run

    loaded = Project.load(project)
    spec = loaded.spec.serving
    overrides: dict[str, object] = {
        key: value
        for key, value in {
            "host": host,
            "port": port,
            "workers": workers,
            "runtime": runtime,
            "access_log": access_log,
        }.items()
        if value is not None
    }
    if batching is not None:
        overrides["batching"] = spec.batching.model_copy(update={"enabled": batching})
    if request_log is not None:
        overrides["request_log"] = spec.request_log.model_copy(update={"enabled": request_log})
    try:
        spec = ServingSpec.model_validate(spec.model_dump() | overrides)
    except ValueError as exc:
        raise ConfigError(f"serve options: {exc}".splitlines()[0]) from None
    console.stdout.print(
        f"readyml serve: {', '.join(model or spec.models) or loaded.spec.name + '@champion'} "
        f"on http://{spec.host}:{spec.port} ({spec.workers} worker(s))"
    )
    run(loaded, spec=spec, models=model or [], log_level=log_level)
