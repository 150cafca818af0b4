"""``readyml deploy``, ``readyml rollout`` and ``readyml rollback``: roll versions out and back."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from readyml import _console as console
from readyml.cli._common import FormatOpt, ProjectOpt, cli_errors, output_format, who

app = typer.Typer(help="Roll model versions out (canary, shadow) and back.")

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="The running server; default: serving.host and serving.port."),
]


def _server(project: Path, url: str | None) -> tuple[str, str]:
    """The server URL and the token variable, from the options or the project."""
    from readyml.config import Project

    spec = Project.load(project).spec.serving
    return url or f"http://{spec.host}:{spec.port}", spec.token_env


def _render(result: dict[str, Any], fmt: str, title: str) -> None:
    if output_format(fmt) == "json":
        console.print_json(result)
        return
    pairs = [(key, value) for key, value in result.items() if not isinstance(value, list | dict)]
    console.key_values(title, pairs)
    for decision in result.get("decisions", []):
        console.stdout.print(f"  {decision['at']} {decision['action']}: {decision['reason']}")


@app.command("deploy")
@cli_errors
def deploy(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS to roll out.")],
    project: ProjectOpt = Path("."),
    url: UrlOpt = None,
    mode: Annotated[
        str, typer.Option(help="canary (weighted steps), shadow (mirror first) or direct.")
    ] = "canary",
    canary: Annotated[
        str | None,
        typer.Option(
            help="Canary traffic steps in percent: '5' starts at 5 % and goes on by the "
            "configured steps above it; '5,50,100' gives every step (default: "
            "serving.rollout.steps)."
        ),
    ] = None,
    step_duration: Annotated[
        float | None, typer.Option(help="Least seconds per step (default: the spec's).")
    ] = None,
    shadow: Annotated[
        float | None, typer.Option(help="Seconds of mirroring before the canary.")
    ] = None,
    fmt: FormatOpt = "text",
) -> None:
    """Infra-validate a version on the running server, then roll it out."""
    from readyml.config import Project
    from readyml.errors import ConfigError
    from readyml.serve.management_client import management_call

    output_format(fmt)  # before the call: a usage error must not leave a rollout started
    if mode not in ("canary", "shadow", "direct"):
        raise ConfigError(f"--mode: expected canary, shadow or direct, found {mode!r}")
    spec = Project.load(project).spec
    overrides = _rollout_overrides(spec.serving.rollout.steps, mode, canary, step_duration, shadow)
    name, version = _version_of(project, ref)
    base, token_env = _server(project, url)
    body: dict[str, Any] = {"model": name, "version": version, "mode": mode}
    if overrides:
        body["rollout"] = overrides
    result = management_call(base, "/v2/management/deploy", body, token_env=token_env)
    _render(result, fmt, f"deploy {name}:{version}")


def _version_of(project: Path, ref: str) -> tuple[str, int]:
    """``ref`` as (name, version): NAME:VERSION as written, NAME@ALIAS as the registry has it."""
    from readyml.cli._common import project_registry
    from readyml.errors import ConfigError
    from readyml.types import ModelRef

    try:
        parsed = ModelRef.parse(ref) if ":" in ref or "@" in ref else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ConfigError(f"ref: expected NAME:VERSION or NAME@ALIAS, found {ref!r}")
    if parsed.version is not None:
        return parsed.name, parsed.version
    return parsed.name, project_registry(project).get(ref).version


def _rollout_overrides(
    configured: list[float],
    mode: str,
    canary: str | None,
    step_duration: float | None,
    shadow: float | None,
) -> dict[str, Any]:
    """The rollout settings the options change (the server checks their values)."""
    from readyml.errors import ConfigError

    overrides: dict[str, Any] = {}
    if canary is not None:
        steps = _canary_steps(canary, mode)
        if len(steps) == 1 and steps[0] < 100.0:  # the first step; configured ones follow
            steps += [step for step in configured if step > steps[0]] or [100.0]
        overrides["steps"] = steps
    for option, key, value in (
        ("--step-duration", "step_duration_s", step_duration),
        ("--shadow", "shadow_s", shadow),
    ):
        if value is not None:
            if not math.isfinite(value):
                raise ConfigError(f"{option}: expected a number of seconds, found {value}")
            overrides[key] = value
    return overrides


def _canary_steps(canary: str, mode: str) -> list[float]:
    """``--canary`` as percentages; a canary cannot start at 100 % (nothing to compare with)."""
    from readyml.errors import ConfigError

    if mode == "direct":
        raise ConfigError("--canary: expected --mode canary or shadow, found --mode direct")
    try:
        steps = [float(part) for part in canary.split(",")]
    except ValueError:
        steps = []
    if not steps or not all(math.isfinite(step) for step in steps):  # float() takes nan, inf
        raise ConfigError(f"--canary: expected percentages such as 5 or 5,50,100, found {canary!r}")
    if mode == "canary" and steps[0] >= 100.0:
        raise ConfigError(
            "--canary: expected a first step under 100 (a canary is judged against the stable "
            f"version's traffic, and at 100 % there is none; --mode shadow mirrors first), "
            f"found {canary!r}"
        )
    return steps


@app.command("rollout")
@cli_errors
def rollout(project: ProjectOpt = Path("."), url: UrlOpt = None, fmt: FormatOpt = "text") -> None:
    """Show the running server's rollouts: state, weight, windows and decisions."""
    from readyml.serve.management_client import management_call

    output_format(fmt)
    base, token_env = _server(project, url)
    result = management_call(base, "/v2/management/rollout", token_env=token_env)
    if output_format(fmt) == "json":
        console.print_json(result)
        return
    if not result["rollouts"]:
        console.stdout.print("no rollouts")
    for item in result["rollouts"]:
        _render(item, fmt, f"rollout of {item['model']}")


@app.command("rollback")
@cli_errors
def rollback(
    name: Annotated[str, typer.Argument(help="The model to roll back.")],
    project: ProjectOpt = Path("."),
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="The running server: abort its rollout of NAME, else serve the rolled-back "
            "champion at once.",
        ),
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit).")] = "rolled back by hand",
    fmt: FormatOpt = "text",
) -> None:
    """Abort the server's running rollout of NAME, or move ``champion`` back and serve it.

    During a canary or shadow on the server at ``--url`` only the rollout is aborted: the
    stable version keeps serving and ``champion`` does not move. A server that is
    unreachable or refuses the token fails the command before the registry changes. The
    wall time of the whole rollback is measured and recorded as evidence ``infra-7``.
    """
    from readyml.cli._common import project_registry
    from readyml.config import Project
    from readyml.serve.management_client import rollback_model

    output_format(fmt)
    token_env = _server(project, url)[1] if url is not None else "READYML_SERVE_TOKEN"
    result = rollback_model(
        project_registry(project),
        name,
        project=Project.load(project).spec.name,
        who=who(),
        reason=reason,
        url=url,
        token_env=token_env,
    )
    _render(result, fmt, f"rollback {name}")
