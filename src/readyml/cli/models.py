"""``readyml models``: inspect and move registered model versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from readyml import _console as console
from readyml.cli._common import (
    FormatOpt,
    ProjectOpt,
    cli_errors,
    output_format,
    project_registry,
    who,
)

app = typer.Typer(no_args_is_help=True, help="Inspect and move registered model versions.")


@app.command("list")
@cli_errors
def models_list(project: ProjectOpt = Path("."), fmt: FormatOpt = "text") -> None:
    """List registered models with their newest version and aliases."""
    registry = project_registry(project)
    summaries = registry.list_models()
    if output_format(fmt) == "json":
        console.print_json([s.to_dict() for s in summaries])
        return
    console.table(
        None,
        ["model", "latest", "aliases"],
        [
            [s.name, s.latest_version, ", ".join(f"{a}→{v}" for a, v in sorted(s.aliases.items()))]
            for s in summaries
        ],
    )


@app.command("show")
@cli_errors
def models_show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Show one version: status, metrics, gate decision, lineage, signature, input example."""
    version = project_registry(project).get(ref)
    data = version.to_dict()
    if output_format(fmt) == "json":
        console.print_json(data)
        return
    metrics = data.get("metrics", {}).get("valid", {})
    console.key_values(
        f"{version.name}:{version.version}",
        [
            ("status", version.status),
            ("aliases", ", ".join(version.aliases) or "-"),
            ("created", version.created_at),
            ("run", version.run_id),
            ("parent", version.parent_version or "-"),
            ("gate", (version.gate or {}).get("decision", "-")),
            *[(k, console.fmt_metric(v)) for k, v in metrics.items()],
            (
                "inputs",
                ", ".join(f"{c['name']}:{c['dtype']}" for c in version.signature.get("inputs", [])),
            ),
            ("files", ", ".join(a.name for a in version.artifacts)),
        ],
    )
    console.stdout.print("input_example:")
    console.print_json(version.input_example)


@app.command("promote")
@cli_errors
def models_promote(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION (or NAME@ALIAS) to promote.")],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
    reason: Annotated[str, typer.Option(help="Why; kept in the history.")] = "",
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Point an alias (champion by default) at a version. A vetoed version is refused."""
    event = project_registry(project).promote(ref, alias=alias, who=who(), reason=reason)
    _print_event(event, fmt)


@app.command("rollback")
@cli_errors
def models_rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Option(help="Alias to move back.")] = "champion",
    reason: Annotated[str, typer.Option(help="Why; kept in the history.")] = "",
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Move an alias back to the version it pointed at before its last move."""
    event = project_registry(project).rollback(name, alias=alias, who=who(), reason=reason)
    _print_event(event, fmt)


@app.command("history")
@cli_errors
def models_history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Every alias move: from, to, when, who, why."""
    events = project_registry(project).history(name, alias=alias)
    if output_format(fmt) == "json":
        console.print_json([e.to_dict() for e in events])
        return
    console.table(
        None,
        ["when", "alias", "from", "to", "who", "reason"],
        [[e.at, e.alias, e.from_version, e.to_version, e.who, e.reason] for e in events],
    )


@app.command("verify")
@cli_errors
def models_verify(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    project: ProjectOpt = Path("."),
) -> None:
    """Check every file of a version against its recorded sha256."""
    import tempfile

    registry = project_registry(project)
    version = registry.get(ref)
    with tempfile.TemporaryDirectory() as tmp:
        registry.download(version, Path(tmp))
    console.stdout.print(
        f"{version.name}:{version.version}: {len(version.artifacts)} file(s) verified"
    )


@app.command("download")
@cli_errors
def models_download(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    out: Annotated[Path, typer.Option(help="Folder to write the version's files into.")],
    project: ProjectOpt = Path("."),
) -> None:
    """Copy a version's files out of the artifact store, verified."""
    registry = project_registry(project)
    version = registry.get(ref)
    registry.download(version, out)
    console.stdout.print(f"{version.name}:{version.version} → {out}")


def _print_event(event: Any, fmt: str) -> None:
    if output_format(fmt) == "json":
        console.print_json(event.to_dict())
        return
    console.stdout.print(
        f"{event.model_name}@{event.alias}: {event.from_version or '-'} → {event.to_version}"
        + (f" ({event.reason})" if event.reason else "")
    )
