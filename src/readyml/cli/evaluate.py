"""``readyml evaluate`` and ``readyml tune``: evaluation reports and hyperparameter studies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from readyml import _console as console
from readyml.cli._common import (
    FormatOpt,
    ProjectOpt,
    cli_errors,
    output_folder,
    output_format,
    sigterm_exits,
)
from readyml.errors import ConfigError

app = typer.Typer()


def _up_to_date(project_dir: Path) -> tuple[Any, Any, Any]:
    """The project, its registry and a pipeline run (unchanged steps are skipped)."""
    from readyml.config import Project
    from readyml.train import open_project_registry, run_project

    project = Project.load(project_dir)
    registry = open_project_registry(project)
    with sigterm_exits():  # a terminated run is recorded failed, not left running
        result = run_project(project, registry=registry)
    if result.error is not None:
        raise result.error
    return project, registry, result


@app.command()
@cli_errors
def evaluate(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    project: ProjectOpt = Path("."),
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the report (default .readyml/reports/NAME-vVERSION)."),
    ] = None,
    fmt: FormatOpt = "text",
) -> None:
    """Evaluate a registered version on the project's validation split; write JSON and HTML.

    Exits 1 when the gate vetoes the version.
    """
    from readyml.train.evaluation_steps import evaluate_version

    output = output_format(fmt)
    if out is not None:
        output_folder(out)
    loaded, registry, result = _up_to_date(project)
    json_path, html_path, report = evaluate_version(
        loaded,
        ref,
        registry=registry,
        train=result.value("train"),
        valid=result.value("valid"),
        out=out,
        stored={"staleness": result.value("staleness"), "spec_review": result.value("review")},
    )
    gate = report["gate"]
    if output == "json":
        console.print_json(
            {"json": str(json_path), "html": str(html_path), "model": report["model"], "gate": gate}
        )
    else:
        console.stdout.print(f"{report['model']}: {gate['decision']}")
        for message in gate["failed"]:
            console.stdout.print(f"  failed: {message}")
        console.stdout.print(str(json_path))
        console.stdout.print(str(html_path))
    if gate["decision"] == "vetoed":
        raise typer.Exit(code=1)


@app.command()
@cli_errors
def tune(
    project: ProjectOpt = Path("."),
    n_trials: Annotated[
        int | None, typer.Option("--n-trials", help="Trials (default tuning.n_trials).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds for the study (default tuning.timeout_s).")
    ] = None,
    write_back: Annotated[
        bool,
        typer.Option(
            "--write-back", help="Write the best parameters into model.params of readyml.yaml."
        ),
    ] = False,
    fmt: FormatOpt = "text",
) -> None:
    """Run an Optuna study over tuning.space, cross-validated on the training split."""
    from readyml.train.evaluation_steps import tune_project

    output = output_format(fmt)
    if n_trials is not None and n_trials < 1:
        raise ConfigError(
            f"--n-trials: expected a number of trials of at least 1, found {n_trials}"
        )
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--timeout: expected seconds greater than 0, found {timeout:g}")
    loaded, registry, result = _up_to_date(project)
    study = tune_project(
        loaded,
        registry=registry,
        train=result.value("train"),
        run_id=result.run_id,
        n_trials=n_trials,
        timeout_s=timeout,
        write_back=write_back,
    )
    if output == "json":
        console.print_json(study)
        return
    console.key_values(
        "tuning",
        [
            ("metric", f"{study['metric']} ({study['direction']}, {study['cv']}-fold CV)"),
            ("trials", len(study["trials"])),
            ("best", console.fmt_metric(study["best_value"])),
            ("current params", console.fmt_metric(study["current_value"])),
            ("best params", study["best_params"]),
            ("trials file", study["artifact"]),
            ("written back", _written_back(study)),
        ],
    )


def _written_back(study: dict[str, Any]) -> str:
    """The tune summary's last line: what --write-back did, and why not when it did nothing."""
    if study["wrote_back"]:
        return "yes (readyml.yaml model.params)"
    reason = study.get("not_written")
    return f"no: {reason}; readyml.yaml is unchanged" if reason else "no (--write-back not given)"
