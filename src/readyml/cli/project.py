"""Project commands: init, run, demo."""

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
    sigterm_exits,
    who,
)
from readyml.errors import ConfigError, ReadymlError

app = typer.Typer()


@app.command()
@cli_errors
def init(
    # A str, not a Path: Path("") is ".", and an empty argument must not mean "here".
    directory: Annotated[str, typer.Argument(help="Where to create the project ('.': here).")],
    force: Annotated[bool, typer.Option(help="Overwrite an existing readyml.yaml.")] = False,
    ci: Annotated[
        str | None, typer.Option("--ci", help="Also write a CI workflow: github.")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="The model's name in the registry (default: the folder's)."),
    ] = None,
) -> None:
    """Write a starter project: readyml.yaml, data/, .gitignore and, with --ci, a CI workflow."""
    from readyml.scaffold import init_project

    if not directory.strip():
        raise ConfigError(
            "directory: expected a path, found an empty string (use '.' for this folder)"
        )
    for path in init_project(Path(directory), force=force, ci=ci, name=name):
        console.stdout.print(f"wrote {path}")
    console.stdout.print("next: put your data in data/, edit readyml.yaml, then run 'readyml run'")


# The pipeline's steps in order, for the help of 'run' (a test pins it to the pipeline's).
RUN_STEPS = (
    "load",
    "privacy",
    "profile",
    "validate",
    "split",
    "review",
    "tune",
    "train",
    "staleness",
    "evaluate",
    "gate",
    "register",
    "export",
)
_RUN_HELP = (
    "Run the training pipeline; exits 1 when the gate vetoes the new version.\n\n"
    f"Steps: {' → '.join(RUN_STEPS)}. Each is skipped when its inputs are unchanged."
)


@app.command(help=_RUN_HELP)
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
    """Run the training pipeline (its help: ``_RUN_HELP``)."""
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

    output = output_format(fmt)
    loaded = Project.load(project)
    registry = open_project_registry(loaded)
    reporter = JsonLinesReporter() if output == "json" else default_reporter()
    with sigterm_exits():  # SIGTERM marks the run failed, as Ctrl-C does, then exits 143
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
            registry.promote(ref, who=who(), reason=f"run {result.run_id[:8]} --promote")
            summary["promoted"] = ref
    if output == "json":
        console.print_json(summary)
    else:
        model = result.value("model")
        _print_run_summary(
            summary,
            others=loaded.spec.metrics.others,
            outputs="probabilities" if model.has_proba else None,
        )
    if failed:
        raise typer.Exit(code=1)


def _champion_version(registry: Any, name: str) -> int | None:
    try:
        return int(registry.get(f"{name}@champion").version)
    except ReadymlError:
        return None


def _print_run_summary(summary: dict[str, Any], *, others: list[str], outputs: str | None) -> None:
    metrics = summary["metrics"]
    registered = summary["registered"]
    primary = metrics["primary"]
    shown = [(name, console.fmt_metric(metrics["valid"].get(name))) for name in others]
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
            *(item for item in shown if item[0] != primary),
            ("gate", summary["gate"]["decision"]),
        ],
    )
    if "reproducibility" in summary:
        rep = summary["reproducibility"]
        verdict = "[green]reproducible[/]" if rep["passed"] else "[red]NOT reproducible[/]"
        task = summary["metrics"].get("task")
        line = reproducibility_line(rep, task=task, outputs=outputs)
        console.stdout.print(f"  {verdict}: {line}")
    if "promoted" in summary:
        console.stdout.print(f"  promoted {summary['promoted']} to champion")


def reproducibility_line(rep: dict[str, Any], *, task: str | None, outputs: str | None) -> str:
    """What two trainings' predictions had in common and what differed, in words:
    "labels identical, probabilities differ by up to 0.031 (tolerance 0)".

    ``outputs`` names what ``max_abs_difference`` measured beside the labels
    (``"probabilities"``), ``None`` when the model has no probabilities.
    """
    rows, spread, tolerance = rep["n_rows"], rep["max_abs_difference"], rep["tolerance"]
    differ = round((1.0 - rep["identical_predictions"]) * rows)
    if task == "regression":
        found = (
            f"{differ} of {rows} predicted values differ, by up to {spread:.3g}"
            if differ
            else f"identical predicted values on {rows} rows"
        )
    elif differ:
        found = f"{differ} of {rows} predicted labels differ"
        if outputs is not None:
            found += f"; {outputs} by up to {spread:.3g}"
    elif outputs is not None and spread > 0:
        found = f"labels identical, {outputs} differ by up to {spread:.3g}"
    else:
        found = f"identical predictions on {rows} rows"
    return f"{found} (tolerance {tolerance:g})"


@app.command()
@cli_errors
def demo(
    directory: Annotated[
        Path,
        typer.Option(
            "--dir", help="Where to build the demo: a new or empty folder, or one it built."
        ),
    ] = Path("readyml-demo"),
    with_torch: Annotated[
        bool | None,
        typer.Option(
            "--with-torch/--no-torch",
            help="Also train and compress a digits CNN (default: when torch is installed).",
        ),
    ] = None,
) -> None:
    """Build a project on bundled real data (Seattle weather 2012–2015) and run it end to end."""
    from readyml.demo import run_demo

    code = run_demo(directory, with_torch=with_torch)
    if code:
        raise typer.Exit(code=code)
