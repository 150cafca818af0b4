"""``readyml models``: inspect and move registered model versions.

Text output escapes rich markup in everything the registry holds (reasons, names, paths):
a reason such as ``"fix [/b]"`` is shown as written, never styled or refused.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from readyml import _console as console
from readyml.cli._common import (
    FormatOpt,
    ProjectOpt,
    cli_errors,
    output_folder,
    output_format,
    project_registry,
    when_utc,
    who,
)
from readyml.errors import ConfigError

if TYPE_CHECKING:
    from readyml.registry import AliasEvent, ModelVersion, StatusEvent
    from readyml.types import VersionStatus

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
            [
                s.name,
                s.latest_version,
                ", ".join(f"{a}→{v}" for a, v in sorted(s.aliases.items())),
            ]
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
    pairs: list[tuple[str, Any]] = [
        ("status", version.status),
        ("status set", _status_note(version.tags.get("status_change"))),
        ("aliases", ", ".join(version.aliases) or "-"),
        ("created", when_utc(version.created_at)),
        ("run", version.run_id or "-"),
        ("parent", version.parent_version or "-"),
        ("gate", (version.gate or {}).get("decision", "-")),
        *[(k, console.fmt_metric(v)) for k, v in metrics.items()],
        (
            "inputs",
            ", ".join(f"{c['name']}:{c['dtype']}" for c in version.signature.get("inputs", [])),
        ),
        ("files", ", ".join(a.name for a in version.artifacts)),
    ]
    console.key_values(f"{version.name}:{version.version}", pairs)
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
    """Point an alias (champion by default) at a version. A vetoed or archived one is refused.

    Promoting the version the alias already names changes nothing and records nothing.
    """
    fmt = output_format(fmt)
    registry = project_registry(project)
    version = registry.get(ref)
    event = registry.promote(version.ref, alias=alias, who=who(), reason=reason)
    if event is not None:
        _print_event(event, fmt)
    elif fmt == "json":
        console.print_json(
            {
                "model_name": version.name,
                "alias": alias,
                "from_version": version.version,
                "to_version": version.version,
                "moved": False,
            }
        )
    else:
        console.stdout.print(escape(f"{version.ref} is already {alias}; nothing changed"))


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
    fmt = output_format(fmt)
    event = project_registry(project).rollback(name, alias=alias, who=who(), reason=reason)
    _print_event(event, fmt)


_STATUS_MOVES: dict[str, VersionStatus] = {
    "veto": "vetoed",
    "archive": "archived",
    "restore": "candidate",
}
ReasonOpt = Annotated[str, typer.Option(help="Why (required); kept on the version.")]


@app.command("veto")
@cli_errors
def models_veto(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION to veto.")],
    reason: ReasonOpt,
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Mark a version unfit: it can no longer be promoted. The champion cannot be vetoed."""
    _set_status(ref, "veto", reason, project, fmt)


@app.command("archive")
@cli_errors
def models_archive(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION to archive.")],
    reason: ReasonOpt,
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Retire a version: kept for audit, never promoted. The champion cannot be archived."""
    _set_status(ref, "archive", reason, project, fmt)


@app.command("restore")
@cli_errors
def models_restore(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION to make a candidate again.")],
    reason: ReasonOpt,
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Make a vetoed or archived version a candidate again (its gate decision is kept)."""
    _set_status(ref, "restore", reason, project, fmt)


def _set_status(ref: str, move: str, reason: str, project: Path, fmt: str) -> None:
    from readyml.registry.registry import status_set_by_person

    fmt = output_format(fmt)
    if ":" not in ref or "@" in ref:
        raise ConfigError(f"version: expected NAME:VERSION, found {ref!r}")
    if not reason.strip():
        raise ConfigError(f"--reason: expected why the version is to {move}, found nothing")
    registry = project_registry(project)
    before = registry.get(ref)
    status = _STATUS_MOVES[move]
    if move == "restore" and before.status not in ("vetoed", "archived"):
        raise ConfigError(
            f"{before.ref}: expected a vetoed or archived version to restore, "
            f"found it {before.status}"
        )
    if before.status == status and status_set_by_person(before) is not None:
        if fmt == "json":
            console.print_json(_status_move(before, before, moved=False))
        else:
            console.stdout.print(escape(f"{before.ref} is already {status}; nothing changed"))
        return
    # A veto the gate made is recorded as a person's too: a later run's gate, blessing the
    # same model under fixed rules, lifts only its own veto.
    by = who()
    after = registry.set_status(before.name, before.version, status, who=by, reason=reason)
    moved = before.status != after.status
    if fmt == "json":
        console.print_json(_status_move(before, after, moved=moved))
        return
    if moved:
        console.stdout.print(escape(f"{after.ref}: {before.status} → {after.status} ({reason})"))
    else:
        console.stdout.print(
            escape(f"{after.ref} is already {status}; now recorded as set by {by} ({reason})")
        )


def _status_note(change: Any) -> str:
    """Who set the status by hand, when and why; ``-`` if only the gate ever did."""
    if not isinstance(change, dict):
        return "-"
    at = str(change.get("at"))
    with contextlib.suppress(ValueError):  # a hand-edited tag is shown as written
        at = when_utc(datetime.fromisoformat(at))
    return f"{change.get('status')} by {change.get('by')} at {at}: {change.get('reason')}"


def _status_move(before: ModelVersion, after: ModelVersion, *, moved: bool) -> dict[str, Any]:
    return {
        "model_name": after.name,
        "version": after.version,
        "from_status": before.status,
        "to_status": after.status,
        "moved": moved,
        "change": after.tags.get("status_change"),
    }


@app.command("history")
@cli_errors
def models_history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str | None, typer.Option(help="Only this alias's moves.")] = None,
    version: Annotated[int | None, typer.Option(help="Only this version's status changes.")] = None,
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Every alias move and status change, oldest first: when (UTC), what, from, to, who, why.

    ``kind`` says which: ``alias`` (or ``alias rollback``) for a move of the alias named in
    ``what``, ``status`` for a status change of the version named there. A status set by
    the gate or by code shows ``(gate)`` or ``-`` as who.
    """
    fmt = output_format(fmt)
    if alias is not None and version is not None:
        raise ConfigError(
            f"--alias and --version: expected one of them, found both ({alias!r}, {version})"
        )
    registry = project_registry(project)
    moves = [] if version is not None else registry.history(name, alias=alias)
    changes = [] if alias is not None else registry.status_history(name, version)
    # Each list is in the order it was recorded; a stable sort by time interleaves them.
    entries = sorted(
        [(e.at, {"kind": "status", **e.to_dict()}, _status_row(e)) for e in changes]
        + [(e.at, {"kind": "alias", **e.to_dict()}, _alias_row(e)) for e in moves],
        key=lambda entry: entry[0],
    )
    if fmt == "json":
        console.print_json([entry for _, entry, _ in entries])
        return
    console.table(
        None,
        ["when", "kind", "what", "from", "to", "who", "reason"],
        [row for _, _, row in entries],
    )


def _status_row(event: StatusEvent) -> list[Any]:
    who = event.who
    if who is None:
        who = "(gate)" if event.gate_decision is not None else "-"
    return [
        when_utc(event.at),
        "status",
        event.ref,
        event.from_status or "-",
        event.to_status,
        who,
        event.reason or "-",
    ]


def _alias_row(event: AliasEvent) -> list[Any]:
    return [
        when_utc(event.at),
        "alias rollback" if event.action == "rollback" else "alias",
        event.alias,
        event.from_version if event.from_version is not None else "-",
        event.to_version,
        event.who,
        event.reason or "-",
    ]


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
        escape(f"{version.name}:{version.version}: {len(version.artifacts)} file(s) verified")
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
    registry.download(version, output_folder(out))
    console.stdout.print(escape(f"{version.name}:{version.version} → {out}"))


def _print_event(event: AliasEvent, fmt: str) -> None:
    if fmt == "json":
        console.print_json({**event.to_dict(), "moved": True})
        return
    from_version = "-" if event.from_version is None else event.from_version
    console.stdout.print(
        escape(
            f"{event.model_name}@{event.alias}: {from_version} → {event.to_version}"
            + (f" ({event.reason})" if event.reason else "")
        )
    )
