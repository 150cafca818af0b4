"""The ``readyml`` command line. Commands are thin: parse, call the library, render.

Exit codes: 0 ok; 1 a check failed (gate vetoed, not reproducible, error anomalies);
2 a usage, config, data or registry error (one red line, no traceback).
"""

from __future__ import annotations

import functools
import getpass
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import typer

from readyml import _console as console
from readyml.errors import ConfigError, ReadymlError

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="readyml: production-ready ML, with evidence."
)
models_app = typer.Typer(no_args_is_help=True, help="Inspect and move registered model versions.")
app.add_typer(models_app, name="models")

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


def _format(value: str) -> Literal["text", "json"]:
    if value not in ("text", "json"):
        raise ConfigError(f"--format: expected 'text' or 'json', found {value!r}")
    return "json" if value == "json" else "text"


def _who() -> str:
    return os.environ.get("READYML_USER") or getpass.getuser()


@app.command()
@cli_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the project.")],
    force: Annotated[bool, typer.Option(help="Overwrite an existing readyml.yaml.")] = False,
) -> None:
    """Write a commented starter project (readyml.yaml, data/, .gitignore)."""
    from readyml.scaffold import init_project

    for path in init_project(directory, force=force):
        console.stdout.print(f"wrote {path}")
    console.stdout.print("next: put your data in data/, edit readyml.yaml, then run 'readyml run'")


@app.command()
@cli_errors
def run(
    project: ProjectOpt = Path("."),
    force: Annotated[bool, typer.Option(help="Rerun every step, ignoring cached results.")] = False,
    check_reproducible: Annotated[
        bool, typer.Option("--check-reproducible", help="Train twice and compare predictions.")
    ] = False,
    promote: Annotated[bool, typer.Option(help="Make a blessed new version the champion.")] = False,
    fmt: FormatOpt = "text",
) -> None:
    """Run the training pipeline.

    Steps: load → profile → validate → split → train → evaluate → gate → register → export.
    """
    from readyml.config import Project
    from readyml.train import (
        check_reproducible as check,
    )
    from readyml.train import (
        default_reporter,
        open_project_registry,
        run_project,
    )
    from readyml.train.progress import JsonLinesReporter

    output = _format(fmt)
    loaded = Project.load(project)
    registry = open_project_registry(loaded)
    reporter = JsonLinesReporter() if output == "json" else default_reporter()
    result = run_project(loaded, registry=registry, reporter=reporter, force=force)
    if result.error is not None:
        raise result.error
    summary: dict[str, Any] = {
        "run_id": result.run_id,
        "status": result.status,
        "steps": {s.name: s.status for s in result.steps},
        "metrics": result.value("metrics"),
        "gate": result.value("gate"),
        "registered": result.value("registered"),
    }
    failed = result.value("gate")["decision"] == "vetoed"
    if check_reproducible:
        report = check(loaded, result, registry=registry)
        summary["reproducibility"] = report.to_dict()
        failed = failed or not report.passed
    if promote and not failed:
        ref = f"{summary['registered']['name']}:{summary['registered']['version']}"
        current = _champion_version(registry, summary["registered"]["name"])
        if current != summary["registered"]["version"]:
            registry.promote(ref, who=_who(), reason=f"run {result.run_id[:8]} --promote")
            summary["promoted"] = ref
    if output == "json":
        console.print_json(summary)
    else:
        _print_run_summary(summary)
    if failed:
        raise typer.Exit(code=1)


def _champion_version(registry: Any, name: str) -> int | None:
    try:
        return int(registry.get(f"{name}@champion").version)
    except ReadymlError:
        return None


def _print_run_summary(summary: dict[str, Any]) -> None:
    metrics = summary["metrics"]
    registered = summary["registered"]
    primary = metrics["primary"]
    console.key_values(
        "run",
        [
            ("run id", summary["run_id"]),
            (
                "version",
                f"{registered['name']}:{registered['version']}"
                + ("" if registered["new"] else " (unchanged)"),
            ),
            (primary, console.fmt_metric(metrics["valid"].get(primary))),
            ("gate", summary["gate"]["decision"]),
        ],
    )
    if "reproducibility" in summary:
        rep = summary["reproducibility"]
        verdict = "[green]reproducible[/]" if rep["passed"] else "[red]NOT reproducible[/]"
        console.stdout.print(
            f"  {verdict}: {rep['identical_predictions']:.2%} identical predictions, "
            f"max |Δ| = {rep['max_abs_difference']:.3g} (tolerance {rep['tolerance']:g})"
        )
    if "promoted" in summary:
        console.stdout.print(f"  promoted {summary['promoted']} to champion")


@models_app.command("list")
@cli_errors
def models_list(project: ProjectOpt = Path("."), fmt: FormatOpt = "text") -> None:
    """List registered models with their newest version and aliases."""
    registry = _registry(project)
    summaries = registry.list_models()
    if _format(fmt) == "json":
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


@models_app.command("show")
@cli_errors
def models_show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Show one version: status, metrics, gate decision, lineage, signature, input example."""
    version = _registry(project).get(ref)
    data = version.to_dict()
    if _format(fmt) == "json":
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


@models_app.command("promote")
@cli_errors
def models_promote(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION (or NAME@ALIAS) to promote.")],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
    reason: Annotated[str, typer.Option(help="Why; kept in the history.")] = "",
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Point an alias (champion by default) at a version. A vetoed version is refused."""
    event = _registry(project).promote(ref, alias=alias, who=_who(), reason=reason)
    _print_event(event, fmt)


@models_app.command("rollback")
@cli_errors
def models_rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Option(help="Alias to move back.")] = "champion",
    reason: Annotated[str, typer.Option(help="Why; kept in the history.")] = "",
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Move an alias back to the version it pointed at before its last move."""
    event = _registry(project).rollback(name, alias=alias, who=_who(), reason=reason)
    _print_event(event, fmt)


@models_app.command("history")
@cli_errors
def models_history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Every alias move: from, to, when, who, why."""
    events = _registry(project).history(name, alias=alias)
    if _format(fmt) == "json":
        console.print_json([e.to_dict() for e in events])
        return
    console.table(
        None,
        ["when", "alias", "from", "to", "who", "reason"],
        [[e.at, e.alias, e.from_version, e.to_version, e.who, e.reason] for e in events],
    )


@models_app.command("verify")
@cli_errors
def models_verify(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    project: ProjectOpt = Path("."),
) -> None:
    """Check every file of a version against its recorded sha256."""
    import tempfile

    registry = _registry(project)
    version = registry.get(ref)
    with tempfile.TemporaryDirectory() as tmp:
        registry.download(version, Path(tmp))
    console.stdout.print(
        f"{version.name}:{version.version}: {len(version.artifacts)} file(s) verified"
    )


@models_app.command("download")
@cli_errors
def models_download(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    out: Annotated[Path, typer.Option(help="Folder to write the version's files into.")],
    project: ProjectOpt = Path("."),
) -> None:
    """Copy a version's files out of the artifact store, verified."""
    registry = _registry(project)
    version = registry.get(ref)
    registry.download(version, out)
    console.stdout.print(f"{version.name}:{version.version} → {out}")


def _print_event(event: Any, fmt: str) -> None:
    if _format(fmt) == "json":
        console.print_json(event.to_dict())
        return
    console.stdout.print(
        f"{event.model_name}@{event.alias}: {event.from_version or '-'} → {event.to_version}"
        + (f" ({event.reason})" if event.reason else "")
    )


def _registry(project: Path) -> Any:
    from readyml.config import Project
    from readyml.train import open_project_registry

    return open_project_registry(Project.load(project))


@app.command()
@cli_errors
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to build the demo project.")
    ] = Path("readyml-demo"),
) -> None:
    """Build a project on bundled real data (Seattle weather 2012–2015) and run it end to end."""
    from readyml.demo import run_demo

    code = run_demo(directory)
    if code:
        raise typer.Exit(code=code)


def main() -> None:
    """Console-script entry point."""
    app()
