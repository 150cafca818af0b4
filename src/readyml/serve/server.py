"""Build the server for a project and run it under uvicorn (one process, or ``workers``).

With several workers each process loads the models itself: the options travel to them in
the ``READYML_SERVE_OPTIONS`` environment variable and :func:`app_from_environment` builds
the app in each. The supervisor (:mod:`readyml.serve.supervisor`) gives them a folder they
share, through which model changes reach every worker (:mod:`readyml.serve.workers`) and
a scrape of ``/metrics`` sums them all (:class:`~readyml.serve.metrics.WorkerMetrics`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import socket
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from readyml.config import Project, ServingSpec
from readyml.data.schema import Schema, load_schema
from readyml.errors import ConfigError, ServeError
from readyml.monitor import feedback_app
from readyml.predict import Predictor, takes_tensor
from readyml.registry import CHAMPION, Registry, open_registry
from readyml.serve.access_log import AccessLog
from readyml.serve.alias_watch import AliasWatcher
from readyml.serve.app import FEEDBACK_PATH, Mount, ServingApp, logs_folder
from readyml.serve.deployment import Deployment, ModelTable
from readyml.serve.metrics import ServerMetrics, WorkerMetrics
from readyml.serve.pages import monitoring_page, score_page
from readyml.serve.request_log import RequestLog
from readyml.serve.rollout import (
    RolloutManager,
    RolloutState,
    refuse_never_served,
    rollout_folder,
)
from readyml.serve.workers import METRICS_FOLDER, WorkerGroup
from readyml.types import JSON

OPTIONS_ENV = "READYML_SERVE_OPTIONS"
# How often (s) a thread waiting for the GIL may take it from the running one. Python's 5 ms
# default lets the inference worker and the event loop starve each other for whole batches.
GIL_SWITCH_INTERVAL_S = float(os.environ.get("READYML_GIL_SWITCH_S", "0.0002"))
SCHEMA_FILE = "schema.yaml"


def default_models(project: Project, spec: ServingSpec) -> list[str]:
    """The models to serve: ``serving.models``, else the project's champion."""
    return list(spec.models) or [f"{project.spec.name}@{CHAMPION}"]


def project_schema(project: Project) -> Schema | None:
    """The project's checked-in schema, if it has one."""
    path = project.root / SCHEMA_FILE
    return load_schema(path) if path.exists() else None


def check_startup(project: Project, spec: ServingSpec, models: Sequence[str] = ()) -> None:
    """Fail early, as a user error, on what would stop the server starting: a model reference
    that does not resolve, or an address uvicorn could not listen on (it would exit 3 with
    its own message). A Ray engine's proxy listens itself, so only the models are checked.

    Raises:
        ConfigError: Prediction routes are protected, but no token is set.
        VersionNotFound: A model or alias does not exist.
        VersionRefused: A version is vetoed or archived.
        ServeError: The host is unknown or the port is taken.
    """
    serving_token(spec)
    registry = open_registry(project.workspace)
    seen: set[tuple[str, int]] = set()
    for ref in list(models) or default_models(project, spec):
        version = refuse_never_served(registry, ref)
        if (version.name, version.version) in seen:
            raise ConfigError(
                f"models: expected each version once, found {version.name}:{version.version} "
                f"twice ({ref!r} is one of them)"
            )
        seen.add((version.name, version.version))
    if spec.engine == "uvicorn":
        check_address(spec.host, spec.port)


def serving_token(spec: ServingSpec, token: str | None = None) -> str | None:
    """The bearer token: ``token``, else ``$token_env`` (``None``: management calls are off).

    Raises:
        ConfigError: ``protect_predict`` is on but there is no token: every prediction
            would be a 401 while ``/v2/health/ready`` said 200.
    """
    token = token if token is not None else os.environ.get(spec.token_env) or None
    if spec.protect_predict and token is None:
        raise ConfigError(
            f"serving.protect_predict: expected a bearer token in ${spec.token_env} "
            "(prediction routes need one), found none set"
        )
    return token


def check_address(host: str, port: int) -> None:
    """Raise :class:`ServeError` unless ``host:port`` can be listened on now (as uvicorn
    binds: ``SO_REUSEADDR``, so a port in TIME_WAIT is free)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(
            f"serving.host: expected an address to listen on, found {host!r} ({exc.strerror})"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ServeError(
                f"serving.port: cannot listen on {host}:{port} ({exc.strerror}); choose "
                "another with --port"
            ) from None


def build_app(
    project: Project,
    *,
    spec: ServingSpec | None = None,
    models: Sequence[str] = (),
    registry: Registry | None = None,
    token: str | None = None,
    workers_folder: Path | None = None,
    replicas_sync: str | None = None,
    replicas: int = 1,
) -> ServingApp:
    """Load the models and assemble the app (nothing runs until the lifespan starts).

    Args:
        project: The project whose registry and workspace are used.
        spec: Serving settings; the project's ``serving`` section by default.
        models: References to serve; ``spec.models`` or the champion by default.
        registry: The registry; the project's by default.
        token: The bearer token; read from ``spec.token_env`` by default.
        workers_folder: The folder the workers of one server share (given to each worker
            when ``spec.workers`` > 1): model changes reach every worker, metrics are
            summed over them, and rollouts are refused.
        replicas_sync: The name of the Ray actor the replicas of one server share
            (:mod:`readyml.serve.replica_sync`; ``replicas`` of them at least): model
            changes reach every replica, metrics are summed over them, and rollouts are
            refused.
        replicas: How many replicas run at least (with ``replicas_sync``).

    Raises:
        VersionNotFound: A model, version or alias does not exist.
        FlavorError: A model cannot be loaded in the chosen runtime.
    """
    spec = spec if spec is not None else project.spec.serving
    if registry is None:
        project.workspace.mkdir(parents=True, exist_ok=True)
        registry = open_registry(project.workspace)
    refs = list(models) or default_models(project, spec)
    schema = project_schema(project)
    workers = None
    metrics: ServerMetrics = ServerMetrics()
    if workers_folder is not None:
        metrics = WorkerMetrics(folder=workers_folder / METRICS_FOLDER)
        workers = WorkerGroup(folder=workers_folder, workers=spec.workers, metrics=metrics)
    elif replicas_sync is not None:
        from readyml.serve.replica_sync import ActorStore, ReplicaMetrics

        store = ActorStore(replicas_sync)
        # Unique over nodes, and over pids reused by later replicas (a container's pid 1).
        replica_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        metrics = ReplicaMetrics(store, replica_id)
        workers = WorkerGroup(
            store=store,
            workers=replicas,
            metrics=metrics,
            worker_id=replica_id,
            noun="replica",
            one="--replicas 1",
        )
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="readyml-inference"
    )

    trusted_types = project.trusted_types()
    token = serving_token(spec, token)

    def load(ref: str) -> Predictor:
        return Predictor.load(
            registry,
            ref,
            schema=schema,
            runtime=spec.runtime,
            device=spec.device,
            trusted_types=trusted_types,
        )

    def repository() -> list[str]:
        return [summary.name for summary in registry.list_models()]

    request_log = None
    if spec.request_log.enabled:
        request_log = RequestLog(
            root=logs_folder(project.workspace),
            sample_rate=spec.request_log.sample_rate,
            buffer_rows=spec.request_log.buffer_rows,
            flush_interval_s=spec.request_log.flush_interval_s,
            compression=spec.request_log.compression,
            on_outcome=lambda model, outcome, rows: metrics.log_rows.labels(model, outcome).inc(
                rows
            ),
        )
    table = ModelTable()

    def make_deployment(predictor: Predictor) -> Deployment:
        return app.deploy(predictor)

    rollouts = RolloutManager(
        project=project.spec.name,
        registry=registry,
        table=table,
        folder=rollout_folder(project.workspace),
        load=load,
        make_deployment=make_deployment,
        spec=spec.rollout,
        logs=logs_folder(project.workspace),
    )
    watcher = None
    if spec.alias_poll_s > 0:
        watcher = AliasWatcher(
            registry=registry, rollouts=rollouts, metrics=metrics, poll_s=spec.alias_poll_s
        )
    app = ServingApp(
        table=table,
        spec=spec,
        metrics=metrics,
        executor=executor,
        request_log=request_log,
        access_log=AccessLog() if spec.access_log else None,
        token=token,
        loader=load,
        repository=repository,
        rollouts=rollouts,
        alias_watcher=watcher,
        workers=workers,
        mounts={
            FEEDBACK_PATH: Mount(
                feedback_app(project.workspace, labels=lambda: served_labels(table)), writes=True
            ),
            "/ui/monitoring": Mount(monitoring_page(project.workspace)),
            "/ui/score": Mount(score_page(project, registry)),
        },
    )
    for ref in refs:
        refuse_never_served(registry, ref)
        predictor = load(ref)
        if predictor.name in table:  # a later version of a model: pinned beside the first
            table.pin(make_deployment(predictor))
            continue
        table.put(make_deployment(predictor))
        if watcher is not None:
            watcher.follow(ref, predictor.version)
    if workers is None:
        rollouts.resume()
    else:
        report_paused_rollouts(rollouts, workers.workers, noun=workers.label, one=workers.one)
    return app


def report_paused_rollouts(
    rollouts: RolloutManager, workers: int, *, noun: str = "worker", one: str = "--workers 1"
) -> None:
    """Say which persisted rollouts a server with several workers leaves paused.

    Each worker would resume its own controller on the same records, so none does: the
    stable versions serve, and a restart with one worker resumes them.
    """
    active = (RolloutState.CANARY.value, RolloutState.SHADOW.value)
    for record in rollouts.status()["rollouts"]:
        if record.get("state") in active:
            print(
                f"readyml: rollout of {record.get('model')!r} paused: rollouts run with one "
                f"{noun}, found {workers}; restart with {one} to resume it",
                file=sys.stderr,
            )


def served_labels(table: ModelTable) -> tuple[list[str] | None, bool]:
    """The labels feedback may carry for the models served now, as ``(classes, numeric)``.

    Their classes when every model is a classifier, numbers when every one is a regressor,
    anything when they are mixed or none is served.
    """
    predictors = [deployment.predictor for deployment in table]
    if not predictors:
        return None, False
    if all(p.classes is not None for p in predictors):
        return sorted({str(c) for p in predictors for c in np.asarray(p.classes).tolist()}), False
    return None, all(p.task == "regression" for p in predictors)


def run(
    project: Project,
    *,
    spec: ServingSpec | None = None,
    models: Sequence[str] = (),
    log_level: str = "warning",
) -> None:
    """Serve until interrupted: uvicorn (uvloop and httptools when installed), or Ray Serve.

    ``spec.engine`` chooses: ``uvicorn`` runs one process or ``spec.workers``; ``ray`` runs
    ``spec.ray`` replicas on a Ray cluster (:mod:`readyml.serve.ray_engine`).
    """
    spec = spec if spec is not None else project.spec.serving
    if spec.engine == "ray":
        from readyml.serve import ray_engine

        ray_engine.run(project, spec=spec, models=models)
        return
    import uvicorn

    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    common: dict[str, Any] = {
        "host": spec.host,
        "port": spec.port,
        "log_level": log_level,
        "access_log": False,
        "lifespan": "on",
        "server_header": False,
        # readyml reads neither the client address nor the scheme that X-Forwarded-* rewrite.
        "proxy_headers": False,
        # No route speaks WebSocket: an Upgrade is ignored and the request answered as HTTP,
        # where uvicorn's WebSocket protocol answered a plain-text 500 for it.
        "ws": "none",
    }
    if spec.workers == 1:
        app = build_app(project, spec=spec, models=models)
        signatures = [deployment.predictor.signature for deployment in app.table]
        uvicorn.run(app, **common, http=http_protocol(spec.http_protocol, signatures))
        return
    signatures = []
    if spec.http_protocol == "auto":  # the workers load the models; read their signatures
        registry = open_registry(project.workspace)
        refs = list(models) or default_models(project, spec)
        signatures = [registry.get(ref).signature for ref in refs]
    common["http"] = http_protocol(spec.http_protocol, signatures)
    from readyml.serve import supervisor  # imports uvicorn, as this function does

    supervisor.run(
        options={
            "project": str(project.root),
            "spec": spec.model_dump(mode="json"),
            "models": list(models),
        },
        options_env=OPTIONS_ENV,
        workers=spec.workers,
        **common,
    )


def http_protocol(
    choice: str = "readyml", signatures: Sequence[JSON] = ()
) -> type[asyncio.Protocol] | str:
    """uvicorn's ``http`` setting for ``serving.http_protocol``.

    readyml's protocol (:mod:`readyml.serve._protocol`: request bodies gathered in a list or
    read straight into one buffer) for ``readyml``, and for ``auto`` when a model with one of
    ``signatures`` takes a tensor; else uvicorn's own httptools protocol. With both on one
    core at once, uvicorn's own cost 7 % less CPU a request on short JSON bodies; readyml's
    reads a 600 KB tensor with 1.5 times the answers a second. Either way request heads have
    a deadline and a size limit, and bytes that are not HTTP get a JSON 400
    (:mod:`readyml.serve.head_limits`).
    Without httptools, or with a uvicorn release the protocols were not checked against,
    uvicorn picks its own protocol (``"auto"``), without the head limits or the JSON 400.
    """
    import uvicorn

    try:
        from readyml.serve._protocol import (
            UVICORN_VERSIONS,
            ChunkedBodyProtocol,
            TimedHeadProtocol,
        )
    except ImportError:
        return "auto"
    # The protocols override some of uvicorn's methods as they are written in the versions
    # they were checked against; with any other uvicorn, uvicorn's own protocol serves.
    if not uvicorn.__version__.startswith(UVICORN_VERSIONS):
        return "auto"
    if choice == "uvicorn" or (choice == "auto" and not any(map(takes_tensor, signatures))):
        return TimedHeadProtocol
    return ChunkedBodyProtocol


def app_from_environment() -> ServingApp:
    """The app of one worker process, from ``READYML_SERVE_OPTIONS`` (see :func:`run`)."""
    raw = os.environ.get(OPTIONS_ENV)
    if not raw:
        raise ConfigError(f"{OPTIONS_ENV}: expected the serving options as JSON, found nothing")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    options = json.loads(raw)
    project = Project.load(Path(options["project"]))
    spec = ServingSpec.model_validate(options["spec"])
    folder = options.get("workers_folder")
    return build_app(
        project,
        spec=spec,
        models=options["models"],
        workers_folder=Path(folder) if folder is not None else None,
        replicas_sync=options.get("replicas_sync"),
        replicas=int(options.get("replicas", 1)),
    )
