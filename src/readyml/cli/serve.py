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
    runtime: Annotated[
        str | None,
        typer.Option(
            help="native, onnx, or auto (the parity-checked ONNX export when it is faster)."
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="Where PyTorch models predict: auto (a GPU when present), cpu, cuda[:N]."
        ),
    ] = None,
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
    engine: Annotated[
        str | None,
        typer.Option(help="uvicorn (one machine) or ray (Ray Serve replicas; extra 'ray')."),
    ] = None,
    replicas: Annotated[
        int | None, typer.Option(help="Ray Serve replicas (engine ray), a fixed number.")
    ] = None,
    min_replicas: Annotated[
        int | None, typer.Option(help="Autoscaling lower bound (engine ray).")
    ] = None,
    max_replicas: Annotated[
        int | None,
        typer.Option(help="Autoscaling upper bound (engine ray); set: autoscaling on."),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="An existing Ray cluster (auto, HOST:PORT, ray://HOST:PORT); "
            "default: start a local one."
        ),
    ] = None,
) -> None:
    """Serve models over REST: Open Inference Protocol V2, MLflow /invocations, /predict."""
    from pydantic import ValidationError

    from readyml.config import Project, ServingSpec, describe_validation_error
    from readyml.errors import ConfigError
    from readyml.serve.server import check_startup, run

    loaded = Project.load(project)
    spec = loaded.spec.serving
    overrides: dict[str, object] = {
        key: value
        for key, value in {
            "host": host,
            "port": port,
            "workers": workers,
            "runtime": runtime,
            "device": device,
            "access_log": access_log,
            "engine": engine,
        }.items()
        if value is not None
    }
    ray_overrides = {
        key: value
        for key, value in {
            "replicas": replicas,
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "address": ray_address,
        }.items()
        if value is not None
    }
    if ray_overrides:
        overrides["ray"] = spec.ray.model_dump() | ray_overrides
    if batching is not None:
        overrides["batching"] = spec.batching.model_copy(update={"enabled": batching})
    if request_log is not None:
        overrides["request_log"] = spec.request_log.model_copy(update={"enabled": request_log})
    try:
        spec = ServingSpec.model_validate(spec.model_dump() | overrides)
    except ValidationError as exc:
        raise ConfigError(f"serve options: {describe_validation_error(exc)}") from None
    if spec.engine == "ray":
        scale = (
            f"Ray Serve, {spec.ray.replicas} replica(s)"
            if spec.ray.max_replicas is None
            else f"Ray Serve, {spec.ray.min_replicas}–{spec.ray.max_replicas} replicas"
        )
    else:
        scale = f"{spec.workers} worker(s)"
    check_startup(loaded, spec, model or [])
    served = ", ".join(_pinned_marked(model or spec.models)) or f"{loaded.spec.name}@champion"
    # "starting": the models load after this line, and a damaged one still stops the server.
    console.stdout.print(
        f"readyml serve: starting {served} on http://{spec.host}:{spec.port} ({scale})"
    )
    run(loaded, spec=spec, models=model or [], log_level=log_level)


def _pinned_marked(refs: list[str]) -> list[str]:
    """``refs`` as said at start: a later reference to a model already named is pinned."""
    from readyml.types import ModelRef  # here: the CLI imports no pandas before a command

    names: set[str] = set()
    marked = []
    for ref in refs:
        name = ModelRef.parse(ref).name
        marked.append(f"{ref} (pinned)" if name in names else ref)
        names.add(name)
    return marked
