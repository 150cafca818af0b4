"""``readyml build``, ``readyml k8s`` and ``readyml compose``: deployment files for a version."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from readyml import _console as console
from readyml.cli._common import FormatOpt, ProjectOpt, cli_errors, output_format, project_registry

if TYPE_CHECKING:
    from readyml.registry import Registry

app = typer.Typer(help="Container images, Kubernetes manifests and compose stacks.")

RefArg = Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")]
PortOpt = Annotated[int, typer.Option(help="Port the server listens on in the container.")]


@app.command("build")
@cli_errors
def build(
    ref: RefArg,
    out: OutOpt,
    project: ProjectOpt = Path("."),
    bake: Annotated[
        bool,
        typer.Option(
            "--bake/--no-bake",
            help="Bake the model into the image (default) or pull it from "
            "READYML_STORE_URL / READYML_ARTIFACTS_URL at start.",
        ),
    ] = True,
    base: Annotated[str, typer.Option(help="Base image of both stages.")] = "python:3.11-slim",
    port: PortOpt = 8080,
    engine: Annotated[
        str | None, typer.Option(help="podman or docker: also build the image.")
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Image tag (default readyml-NAME:vN).")] = None,
    fmt: FormatOpt = "text",
) -> None:
    """Write a container build context: Dockerfile, .dockerignore, sbom.json, the model."""
    from readyml.config import Project
    from readyml.deploy import ContainerBuild, build_image
    from readyml.deploy.container import ENGINES, check_image
    from readyml.errors import ConfigError

    output = output_format(fmt)
    if engine is not None and engine not in ENGINES:
        raise ConfigError(f"--engine: expected one of {list(ENGINES)}, found {engine!r}")
    if tag is not None:
        check_image("--tag", tag)
    loaded = Project.load(project)
    registry = project_registry(project)
    result = ContainerBuild(ref=ref, bake=bake, base=base, port=port).write(loaded, registry, out)
    image = tag or result.image
    if engine is not None:
        build_image(out, tag=image, engine=engine)
    if output == "json":
        console.print_json(result.to_dict() | {"image": image})
        return
    for warning in result.warnings:
        console.stdout.print(f"warning: {warning}")
    how = "baked in" if result.baked else "pulled from the registry at start"
    installs = result.requirements[0].split("==")[0]
    console.stdout.print(
        f"wrote {out} for {result.source_version} (model {how}; serves {result.served_ref}; "
        f"installs {installs})",
        markup=False,  # readyml[serve] is a name, not a style
    )
    if engine is None:
        console.stdout.print(f"next: docker build -t {image} {out}")
    else:
        console.stdout.print(f"built {image}")


@app.command("k8s")
@cli_errors
def k8s(
    ref: RefArg,
    out: OutOpt,
    project: ProjectOpt = Path("."),
    image: Annotated[
        str | None, typer.Option(help="Image to run (default readyml-NAME:vN).")
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="Namespace of every object.")] = None,
    replicas: Annotated[int, typer.Option(help="Minimum replicas of the stable track.")] = 2,
    max_replicas: Annotated[int, typer.Option(help="Autoscaler's maximum.")] = 10,
    canary: Annotated[
        bool, typer.Option("--canary", help="Add a canary Deployment behind the Service.")
    ] = False,
    canary_model: Annotated[
        str | None, typer.Option(help="Model the canary serves (default NAME@challenger).")
    ] = None,
    canary_image: Annotated[
        str | None, typer.Option(help="Image of the canary (default: --image).")
    ] = None,
    argo: Annotated[
        bool, typer.Option("--argo", help="An Argo Rollouts Rollout instead of a Deployment.")
    ] = False,
    port: PortOpt = 8080,
) -> None:
    """Write Kubernetes manifests: Deployment, Service, autoscaler, budget, config."""
    from readyml.deploy import KubernetesManifests, image_name
    from readyml.deploy.kubernetes import SECRET_TEMPLATE
    from readyml.registry import CHAMPION
    from readyml.types import ModelRef

    registry = project_registry(project)
    version = registry.get(ref)
    parsed = ModelRef.parse(ref)
    # NAME:VERSION is served as that version; an alias (champion for NAME) follows its moves.
    pinned = parsed.version is not None
    if canary:
        _check_canary(registry, version.name, canary_model, canary_image)
    manifests = KubernetesManifests(
        name=version.name,
        image=image if image is not None else image_name(version),
        model=version.ref if pinned else f"{version.name}@{parsed.alias or CHAMPION}",
        namespace=namespace,
        replicas=replicas,
        max_replicas=max_replicas,
        canary=canary,
        canary_model=canary_model,
        canary_image=canary_image,
        argo=argo,
        port=port,
    )
    for path in manifests.write(out):
        console.stdout.print(f"wrote {path}")
    console.stdout.print(
        f"next: fill in {out / SECRET_TEMPLATE} and apply it, then kubectl apply -f {out}"
    )


def _check_canary(
    registry: Registry, name: str, canary_model: str | None, canary_image: str | None
) -> None:
    """The canary's model must exist and be a version of the stable's model; a canary on
    the stable's image can serve it only if that image pulls from the registry."""
    from readyml.errors import ConfigError, ReadymlError

    target = canary_model or f"{name}@challenger"
    try:
        found = registry.get(target)
    except ReadymlError as exc:
        raise ConfigError(f"--canary-model: {exc}") from None
    if found.name != name:
        raise ConfigError(
            f"--canary-model: expected a version of {name!r} (the canary shares its Service), "
            f"found {found.ref}"
        )
    if canary_image is None:
        console.stdout.print(
            f"warning: the canary runs the stable's image; it serves {target} only if that "
            "image pulls from the registry (readyml build --no-bake), else pass --canary-image"
        )


@app.command("compose")
@cli_errors
def compose(
    ref: RefArg,
    out: OutOpt,
    project: ProjectOpt = Path("."),
    build_context: Annotated[
        str, typer.Option(help="The server's build context, relative to --out.")
    ] = "build",
    port: PortOpt = 8080,
) -> None:
    """Write docker-compose.yml: server, PostgreSQL, MinIO, Prometheus, Alertmanager."""
    from readyml.config import Project
    from readyml.deploy import ComposeStack
    from readyml.deploy.container import DEFAULT_PORT
    from readyml.monitor.prometheus import alert_rules

    loaded = Project.load(project)
    project_registry(project).get(ref)  # the next step builds its image: it must exist
    stack = ComposeStack(
        project=loaded.spec.name, model=ref, build_context=build_context, port=port
    )
    rules = alert_rules(loaded.spec.monitoring.performance, project=loaded.spec.name)
    for path in stack.write(out, alert_rules=rules):
        console.stdout.print(f"wrote {path}")
    port_option = "" if port == DEFAULT_PORT else f" --port {port}"
    console.stdout.print(
        f"next: readyml build {ref} --no-bake{port_option} --out {out / build_context}, set "
        "POSTGRES_PASSWORD, MINIO_PASSWORD and READYML_SERVE_TOKEN, then docker compose up"
    )
