"""``readyml review import|list``: labelled review files in, versioned production datasets out.

``review import`` exits 0 when every row was kept (or left blank), 1 when some rows were
reported and skipped (the good rows are still stored), 2 for a usage or file error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from readyml import _console as console
from readyml.cli._common import FormatOpt, ProjectOpt, cli_errors, output_format

app = typer.Typer(no_args_is_help=True, help="Import labelled review sets; list sets and datasets.")


@app.command("import")
@cli_errors
def import_(
    file: Annotated[
        Path, typer.Argument(help="A filled examples.csv or examples.jsonl (or a .json array).")
    ],
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Check a filled review file row by row; store the good rows as a production dataset."""
    from readyml.config import Project
    from readyml.feedback.review_import import import_review

    form = output_format(fmt)
    loaded = Project.load(project)
    result = import_review(loaded.workspace, file, label=loaded.spec.label)
    if form == "json":
        console.print_json(result.to_dict())
    else:
        dataset = result.dataset
        stored = (
            f"stored as {dataset.ref} ({dataset.rows} rows, sha256 {dataset.fingerprint[:12]})"
            if dataset is not None
            else f"nothing stored: {result.note}"
            if result.note
            else "nothing stored"
        )
        console.key_values(
            f"review import {file.name}",
            [
                ("rows", str(result.rows)),
                ("kept", str(result.kept)),
                ("left blank", str(result.blank)),
                ("rejected", str(result.rejected)),
                ("dataset", stored),
            ],
        )
        for problem in result.problems:
            console.stderr.print(f"[red]{escape(problem)}[/]")
        if result.rejected > len(result.problems):
            console.stderr.print(f"… and {result.rejected - len(result.problems)} more")
    if result.rejected:
        raise typer.Exit(1)


@app.command("list")
@cli_errors
def list_(project: ProjectOpt = Path("."), fmt: FormatOpt = "text") -> None:
    """Review sets captured and production datasets stored, oldest first."""
    from readyml.config import Project
    from readyml.feedback.production import list_datasets
    from readyml.feedback.review_sets import list_review_sets

    form = output_format(fmt)
    loaded = Project.load(project)
    sets = list_review_sets(loaded.workspace)
    datasets = list_datasets(loaded.workspace)
    if form == "json":
        console.print_json(
            {
                "review_sets": [s.to_dict() for s in sets],
                "datasets": [d.to_dict() for d in datasets],
            }
        )
        return
    console.table(
        "review sets",
        ["id", "model", "examples", "reasons"],
        [
            [s.id, s.model, sum(s.counts.values()), ", ".join(k for k, v in s.counts.items() if v)]
            for s in sets
        ],
    )
    console.table(
        "production datasets",
        ["dataset", "rows", "review sets", "sha256"],
        [[d.ref, d.rows, ", ".join(d.review_sets), d.fingerprint[:12]] for d in datasets],
    )
