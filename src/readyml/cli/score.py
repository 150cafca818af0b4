"""``readyml score``, ``check``, ``explain`` and ``attest``: the ML Test Score commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from readyml import _console as console
from readyml.cli._common import (
    FormatOpt,
    ProjectOpt,
    cli_errors,
    output_format,
    sigterm_exits,
    who,
    write_output,
)
from readyml.errors import ConfigError

app = typer.Typer()


@app.command()
@cli_errors
def score(
    project: ProjectOpt = Path("."),
    fmt: Annotated[
        str, typer.Option("--format", help="Output format: text, json, markdown or html.")
    ] = "text",
    fail_under: Annotated[
        float | None,
        typer.Option("--fail-under", help="Exit with code 1 when the final score is below this."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the report to this file instead.")
    ] = None,
) -> None:
    """Compute the ML Test Score (28 tests) from recorded evidence and attestations."""
    from readyml.config import Project
    from readyml.errors import ConfigError
    from readyml.score import render, report_format, score_project, summary_line, table_rows
    from readyml.score.report import TABLE_COLUMNS, unattributed_lines
    from readyml.score.scoring import SECTION_MAX
    from readyml.train import open_project_registry

    chosen = report_format(fmt)
    if fail_under is not None and not 0.0 <= fail_under <= SECTION_MAX:
        raise ConfigError(
            f"--fail-under: expected a score from 0 to {SECTION_MAX:g}, found {fail_under:g}"
        )
    loaded = Project.load(project)
    report = score_project(loaded, open_project_registry(loaded))
    if out is not None:
        write_output(out, render(report, chosen))
        console.stdout.print(f"{summary_line(report)}\nwrote {out}")
    elif chosen == "text":
        console.table(f"ML Test Score: {report.project}", TABLE_COLUMNS, table_rows(report))
        console.stdout.print(f"\n[bold]{summary_line(report)}[/]")
    else:
        typer.echo(render(report, chosen), nl=False)
    for line in unattributed_lines(report):
        console.stderr.print(f"[yellow]warning:[/] {escape(line)}")
    if fail_under is not None and report.final < fail_under:
        console.error_line(f"ML Test Score {report.final:g} is below --fail-under {fail_under:g}")
        raise typer.Exit(code=1)


@app.command()
@cli_errors
def attest(
    test_id: Annotated[str, typer.Argument(help="Rubric test id, e.g. model-1.")],
    by: Annotated[str | None, typer.Option(help="Who ran the test (default: you).")] = None,
    note: Annotated[str, typer.Option(help="What was done.")] = "",
    link: Annotated[str, typer.Option(help="Where the results are documented.")] = "",
    failed: Annotated[bool, typer.Option("--failed", help="The manual test failed.")] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Record a manual test run in the project's attestations file (half a point while fresh)."""
    from readyml.config import Project
    from readyml.score import Attestation, append_attestation, parse_attestation

    loaded = Project.load(project)
    attestation = Attestation(
        test_id=test_id,
        by=who() if by is None else by,
        at=datetime.now(UTC),
        note=note,
        link=link,
        passed=not failed,
    )
    parse_attestation(attestation.to_dict(), "readyml attest")
    path = append_attestation(loaded.root / loaded.spec.score.attestations, attestation)
    console.stdout.print(f"{test_id}: attested by {attestation.by}; appended to {path}")


def _example(text: str) -> dict[str, Any]:
    """Parse ``--example``: inline JSON, or ``@FILE``."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--example: cannot read {text[1:]!r} ({exc})") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--example: expected a JSON object, found invalid JSON ({exc})") from exc
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, dict):
        raise ConfigError(f"--example: expected a JSON object, found {type(value).__name__}")
    return value


@app.command()
@cli_errors
def explain(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    example: Annotated[
        str | None,
        typer.Option(help="One input row as a JSON object, or @FILE (default: the version's)."),
    ] = None,
    project: ProjectOpt = Path("."),
    fmt: FormatOpt = "text",
) -> None:
    """Show each step of one prediction: input, transformed features, contributions, output."""
    from readyml.config import Project
    from readyml.score.explain import explain_prediction, record_explanation
    from readyml.train import open_project_registry

    output = output_format(fmt)
    loaded = Project.load(project)
    registry = open_project_registry(loaded)
    explanation = explain_prediction(
        registry,
        ref,
        _example(example) if example is not None else None,
        trusted_types=loaded.trusted_types(),
    )
    record_explanation(registry, loaded.spec.name, explanation, automated=False)
    if output == "json":
        console.print_json(explanation.to_dict())
        return
    console.stdout.print(f"[bold]{escape(explanation.model)}[/] ({escape(explanation.flavor)})")
    for number, step in enumerate(explanation.steps, start=1):
        console.stdout.print(
            f"\n[bold]{number}. {escape(step.name)}[/] [dim]{escape(step.kind)}[/]"
        )
        for key, value in step.rows(limit=25):
            console.stdout.print(f"  {key:<32} {value}", markup=False)
    verdict = "matches" if explanation.consistent else "DOES NOT match"
    prediction = explanation.to_dict()["prediction"]
    console.stdout.print(
        f"\nprediction: {prediction!r}; the step-by-step trace {verdict} predict()",
        markup=False,
    )
    if not explanation.consistent:
        raise typer.Exit(code=1)


@app.command()
@cli_errors
def check(
    project: ProjectOpt = Path("."),
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run only these checks (test ids); repeatable."),
    ] = None,
    skip: Annotated[
        list[str] | None,
        typer.Option("--skip", help="Do not run these checks (test ids); repeatable."),
    ] = None,
    fmt: FormatOpt = "text",
) -> None:
    """Run readyml's automated ML Test Score checks and record their evidence.

    Checks: data-4 schema meta rules, data-6 new-feature probe, data-7 feature-code tests,
    infra-2 model spec unit test, infra-3 pipeline on a sample, infra-5 step-by-step
    explanation of the champion, model-2 offline/online correlation.
    """
    from readyml.config import Project
    from readyml.score.checks import run_checks
    from readyml.train import open_project_registry, run_project
    from readyml.train.steps import fit_model

    output = output_format(fmt)
    loaded = Project.load(project)
    registry = open_project_registry(loaded)
    with sigterm_exits():  # a terminated run is recorded failed, not left running
        results = run_checks(
            loaded, registry, runner=run_project, fit=fit_model, only=only, skip=skip or ()
        )
    if output == "json":
        console.print_json([r.to_dict() for r in results])
    else:
        console.table(
            "readyml check",
            ["test", "check", "result", "details"],
            [[r.test_id, r.name, "passed" if r.passed else "FAILED", r.summary] for r in results],
        )
    if not all(r.passed for r in results):
        raise typer.Exit(code=1)
