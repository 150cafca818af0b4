"""``readyml capture``: select production examples from the request log for review."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from readyml import _console as console
from readyml.cli._common import FormatOpt, ProjectOpt, cli_errors, output_format
from readyml.errors import ConfigError

app = typer.Typer(help="Capture production examples for review.")


@app.command("capture")
@cli_errors
def capture(
    project: ProjectOpt = Path("."),
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="NAME, NAME@ALIAS or NAME:VERSION whose traffic to read; default the "
            "project's model, judged against its champion.",
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Start of the window (ISO time, UTC if naive).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="End of the window, exclusive (ISO time).")
    ] = None,
    last: Annotated[
        str | None, typer.Option("--last", help="Window of this DURATION up to now (e.g. 7d).")
    ] = None,
    budget: Annotated[
        list[str] | None,
        typer.Option("--budget", help="REASON=N examples for one reason; repeatable."),
    ] = None,
    confidence_below: Annotated[
        float,
        typer.Option(
            "--confidence-below", help="Top probability under which a prediction is low-confidence."
        ),
    ] = 0.6,
    rare_share: Annotated[
        float,
        typer.Option(
            "--rare-share", help="Training share under which a value or slice is rare (0.02: 2 %)."
        ),
    ] = 0.02,
    fmt: FormatOpt = "text",
) -> None:
    """Select logged examples for review and write them as a review set.

    Reasons, in priority order: misprediction, low_confidence, drift, rare_slice,
    schema_violation, and a random control sample. Examples already in a review set are
    never selected again.
    """
    from readyml.config import Project, duration_seconds
    from readyml.feedback.capture import capture as run_capture
    from readyml.feedback.capture import resolve_budget
    from readyml.train import open_project_registry

    form = output_format(fmt)
    counts = resolve_budget(parse_budget(budget or []))
    now = datetime.now(UTC)
    start = parse_instant(since, "--since")
    end = parse_instant(until, "--until")
    if last is not None:
        if start is not None:
            raise ConfigError("--last: expected --last or --since, found both")
        start = now - timedelta(seconds=duration_seconds(last, key="--last"))
    loaded = Project.load(project)
    result = run_capture(
        loaded,
        open_project_registry(loaded),
        model=model,
        since=start,
        until=end,
        budget=counts,
        confidence_below=confidence_below,
        rare_share=rare_share,
        now=now,
    )
    if form == "json":
        console.print_json(result.to_dict())
        return
    title = f"{result.model} (reference v{result.reference_version}) — {result.rows_scanned:,} "
    title += f"logged rows, {result.already_captured:,} captured before"
    console.table(
        title,
        ["reason", "selected", "matched", "budget"],
        [[r, n, result.matched[r], counts[r]] for r, n in result.counts.items()],
    )
    for note in result.notes:
        console.stdout.print(f"note: {note}")
    if result.path is None:
        console.stdout.print("no examples selected; no review set written")
    else:
        console.stdout.print(f"wrote {result.total} examples to {result.path}")


def parse_budget(items: list[str]) -> dict[str, int]:
    """``REASON=N`` options as a mapping (reasons are checked by ``resolve_budget``).

    >>> parse_budget(["drift=5", "random=0"])
    {'drift': 5, 'random': 0}
    """
    budget: dict[str, int] = {}
    for item in items:
        reason, sep, count = item.partition("=")
        try:
            if not sep:
                raise ValueError(item)
            budget[reason.strip()] = int(count)
        except ValueError:
            raise ConfigError(f"--budget: expected REASON=N, found {item!r}") from None
    return budget


def parse_instant(text: str | None, option: str) -> datetime | None:
    """An ISO date or time (naive: UTC), or ``None``."""
    if text is None:
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{option}: expected an ISO time such as 2026-06-01 or 2026-06-01T12:00, found {text!r}"
        ) from None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
