"""``readyml runs``: the project's pipeline runs, newest first."""

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
    when_utc,
)
from readyml.errors import ConfigError, VersionNotFound

app = typer.Typer()

ERROR_WIDTH = 100  # characters of a run's error shown in the text table


@app.command("runs")
@cli_errors
def runs(
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
    every_project: Annotated[
        bool, typer.Option("--all", help="Runs of every project in the store, not only this one.")
    ] = False,
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """List pipeline runs, newest first: status, duration, the version each registered, errors.

    A run whose process was killed is settled before listing: failed, its error saying
    "abandoned". "registered" lists the versions that carry the run's id.
    """
    fmt = output_format(fmt)
    if limit < 1:
        raise ConfigError(f"--limit: expected a whole number of runs, at least 1, found {limit}")
    name = None if every_project else _project_name(project)
    registry = project_registry(project)
    records = registry.store.list_runs(name, limit=limit)
    versions: dict[str, list[int]] = {}
    for model in {record.project for record in records}:
        try:
            listed = registry.list_versions(model)
        except VersionNotFound:  # no run of this project registered a version yet
            continue
        for version in listed:
            if version.run_id is not None:
                versions.setdefault(version.run_id, []).append(version.version)
    if fmt == "json":
        console.print_json(
            [{**record.to_dict(), "versions": versions.get(record.id, [])} for record in records]
        )
        return
    rows: list[list[Any]] = [
        [
            record.id[:12],
            *([record.project] if every_project else []),
            when_utc(record.started_at),
            record.status,
            "-" if record.duration_s is None else f"{record.duration_s:.1f}",
            ", ".join(f"{record.project}:{v}" for v in versions.get(record.id, [])) or "-",
            _cut(record.error),
        ]
        for record in records
    ]
    columns = ["run", "started", "status", "seconds", "registered", "error"]
    if every_project:
        columns.insert(1, "project")
    console.table(None, columns, rows)


def _project_name(project: Path) -> str:
    """The model name in the project's spec, read without checking the rest of the spec
    (listing runs must work while the spec has a mistake elsewhere)."""
    import yaml

    from readyml.config import find_spec_file

    spec = find_spec_file(project)
    try:
        raw = yaml.safe_load(spec.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"'{spec}': cannot read it ({type(exc).__name__})") from exc
    name = raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"'{spec}' name: expected the model's name to list its runs, found {name!r} "
            "(or pass --all)"
        )
    return name


def _cut(error: str | None) -> str:
    if not error:
        return "-"
    line = " ".join(error.split())
    return line if len(line) <= ERROR_WIDTH else line[: ERROR_WIDTH - 1] + "…"
