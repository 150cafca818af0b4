"""``readyml approve`` and ``readyml retrains``: retrains started by monitoring alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from readyml import _console as console
from readyml.cli._common import FormatOpt, ProjectOpt, cli_errors, output_format, who

app = typer.Typer(help="Approve and list retrains started by alerts.")


@app.command("approve")
@cli_errors
def approve(
    run: Annotated[str, typer.Argument(help="The retrain id (rt-…) or its pipeline run id.")],
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Approve a retrained candidate waiting for approval, then roll it out; or retry the
    roll-out of one whose deploy failed (state deploy_failed)."""
    from readyml.config import Project
    from readyml.feedback.retrain import approve as approve_retrain
    from readyml.train import open_project_registry

    form = output_format(fmt)
    loaded = Project.load(project)
    record = approve_retrain(loaded, open_project_registry(loaded), run, who=who())
    if form == "json":
        console.print_json(record.to_dict())
    else:
        console.stdout.print(f"{record.id}: {record.state}: {record.reason}")
    if record.state == "deploy_failed":
        raise typer.Exit(1)


@app.command("retrains")
@cli_errors
def retrains(project: ProjectOpt = Path("."), fmt: FormatOpt = "text") -> None:
    """Every retrain an alert triggered, with its outcome, oldest first."""
    from readyml.config import Project
    from readyml.feedback.retrain import settle_rollouts
    from readyml.train import open_project_registry

    form = output_format(fmt)
    loaded = Project.load(project)
    records = settle_rollouts(loaded, open_project_registry(loaded))
    if form == "json":
        console.print_json([r.to_dict() for r in records])
        return
    console.table(
        "retrains on alert",
        ["id", "at", "alerts", "state", "version", "reason"],
        [
            [
                r.id,
                r.at[:19],
                ", ".join(sorted({a["name"] for a in r.alerts})),
                r.state,
                r.version if r.version is not None else "",
                r.reason,
            ]
            for r in records
        ],
    )
