"""The ASGI application: routes, the shared request flow, and the lifespan.

Chosen by measurement over FastAPI (see ``docs/serving.md``): the app is a plain ASGI
callable in Starlette's style. Prediction routes run a lean flow — read the body, decode
(orjson), check against the signature (vectorised), queue for the batcher, answer with two
``send`` calls — and every other route is a small handler. One place maps every
:class:`~readyml.errors.ReadymlError` to its status and JSON body; anything else is a bug,
answered 500 with the request id and logged with its traceback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import json
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from readyml import __version__
from readyml.config import ServingSpec
from readyml.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    PredictionFailed,
    ReadymlError,
)
from readyml.predict import NonFiniteOutput, Part, Prediction, Predictor
from readyml.predict.inputs import shorten
from readyml.registry import CHAMPION
from readyml.serve import head_limits, mlflow, simple, v2
from readyml.serve._http import (
    ASGIApp,
    BodyBudget,
    Message,
    Receive,
    Request,
    Scope,
    Send,
    check_json_type,
    error_content,
    error_headers,
    parse_json,
    send_bytes,
    send_json,
    with_request_id,
)
from readyml.serve.access_log import AccessLog
from readyml.serve.alias_watch import AliasWatcher
from readyml.serve.auth import BearerAuth
from readyml.serve.batching import BatchStats
from readyml.serve.deployment import Deployment, ModelTable
from readyml.serve.metrics import CONTENT_TYPE, ServerMetrics
from readyml.serve.openapi import build_openapi
from readyml.serve.request_log import SEAL_INTERVAL_S, RequestLog
from readyml.serve.rollout import RolloutManager, Route
from readyml.serve.workers import ModelChange, WorkerGroup
from readyml.types import NAME_RULE, ModelRef

# How often buffered access-log lines are written (s).
ACCESS_LOG_FLUSH_S = 0.5
# How long shutdown waits for queued requests (s).
DRAIN_TIMEOUT_S = 10.0
_MODELS_PREFIX = "/v2/models/"
_REPOSITORY_PREFIX = "/v2/repository/models/"

Loader = Callable[[str], Predictor]
Handler = Callable[["Exchange", Receive, Send], Awaitable[None]]


# Where ``readyml serve`` mounts the feedback labels app.
FEEDBACK_PATH = "/v2/feedback"


@dataclass(frozen=True)
class Mount:
    """Another ASGI app served at one exact path.

    ``writes``: it changes what the server or its monitoring trusts (feedback labels are the
    ground truth of monitoring and retraining), so it needs the token whenever the server
    has one; other mounts need it only when predictions do (``protect_predict``).
    """

    app: ASGIApp
    writes: bool = False


class Exchange:
    """One request as it goes through the app: what metrics and logs need at the end."""

    __slots__ = (
        "choice",
        "deployment",
        "request",
        "route",
        "rows",
        "started_s",
        "status",
    )

    def __init__(self, request: Request) -> None:
        self.request = request
        self.route = "other"
        self.status = 500
        self.deployment: Deployment | None = None
        self.choice: Route | None = None
        self.rows = 0
        self.started_s = time.monotonic()


# Garbage-collection thresholds while serving: requests make short-lived, acyclic garbage that
# reference counting frees, so the cyclic collector can run far less often than by default.
GC_THRESHOLDS = (50_000, 20, 100)


class ServingApp:
    """The model server as one ASGI callable.

    Args:
        table: The models served.
        spec: Serving settings (limits, batching, logging, auth).
        metrics: Prometheus metrics.
        executor: The single inference worker every batcher runs on.
        request_log: Parquet request logging; ``None`` turns it off.
        access_log: JSON access lines; ``None`` turns them off.
        token: The bearer token for protected calls (``None``: management calls refused).
        loader: Loads ``NAME``, ``NAME:V`` or ``NAME@ALIAS`` for the repository extension.
        repository: Lists the registry's model names for ``/v2/repository/index``.
        rollouts: Canary, shadow and rollback control; ``None`` turns the routes off.
        alias_watcher: Follows the registry's aliases of the models served by alias;
            ``None``: they move only when told.
        workers: The other worker processes of this server (``serving.workers`` > 1):
            repository changes reach them, rollouts are refused; ``None`` with one.
        mounts: Other ASGI apps by exact path (feedback labels, report pages); they are
            counted in the metrics like every route, and need the token as :class:`Mount`
            says.
    """

    def __init__(
        self,
        *,
        table: ModelTable,
        spec: ServingSpec,
        metrics: ServerMetrics,
        executor: concurrent.futures.Executor,
        request_log: RequestLog | None = None,
        access_log: AccessLog | None = None,
        token: str | None = None,
        loader: Loader | None = None,
        repository: Callable[[], list[str]] | None = None,
        rollouts: RolloutManager | None = None,
        alias_watcher: AliasWatcher | None = None,
        workers: WorkerGroup | None = None,
        mounts: dict[str, Mount] | None = None,
    ) -> None:
        self.table = table
        self.spec = spec
        self.metrics = metrics
        self.executor = executor
        self.request_log = request_log
        self.access_log = access_log
        self.auth = BearerAuth(token=token, env_name=spec.token_env)
        self.loader = loader
        self.repository = repository
        self.rollouts = rollouts
        self.alias_watcher = alias_watcher
        self.workers = workers
        self.mounts = dict(mounts or {})
        self.max_body_bytes = spec.max_body_bytes
        self.body_budget = BodyBudget(spec.max_inflight_body_bytes, timeout_s=spec.body_timeout_s)
        # The prediction routes add X-Request-Id to their answers themselves.
        self._predict_routes: dict[str, Handler] = {
            "/predict": self._simple,
            "/invocations": self._mlflow,
        }
        self._routes: dict[str, dict[str, Handler]] = {
            "/predict": {"POST": self._simple},
            "/invocations": {"POST": self._mlflow},
            "/v2": {"GET": self._server_metadata},
            "/v2/health/live": {"GET": self._live},
            "/v2/health/ready": {"GET": self._ready},
            "/v2/repository/index": {"POST": self._repository_index},
            "/metrics": {"GET": self._metrics},
            "/openapi.json": {"GET": self._openapi},
            "/ping": {"GET": self._health},
            "/health": {"GET": self._health},
            "/v2/management/deploy": {"POST": self._deploy},
            "/v2/management/promote": {"POST": self._promote},
            "/v2/management/rollback": {"POST": self._rollback},
            "/v2/management/rollout": {"GET": self._rollout_status},
        }
        self._openapi_cache: tuple[int, bytes] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._sealer: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    # -- lifespan -----------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.startup()
                if self.workers is not None:  # a replaced worker serves once caught up
                    await self.workers.start(self.apply_change)
                    async with self.workers.lock:
                        await self.workers.catch_up()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def startup(self) -> None:
        """Start the background writers (called by the lifespan)."""
        # The libraries and models loaded so far are millions of long-lived objects; a full
        # garbage collection walking them stalls every in-flight request for tens of
        # milliseconds. Freezing them keeps collections to what requests allocate.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        # Before uvicorn listens; a late or long head, or bytes that are not HTTP, name no model.
        head_limits.configure(
            self.spec.header_timeout_s,
            self.spec.max_header_bytes,
            on_refused=lambda: self.metrics.reject("", "invalid"),
        )
        self.metrics.served = self._served
        loop = asyncio.get_running_loop()
        if self.request_log is not None:
            request_log = self.request_log
            self.metrics.log_cpu_s = lambda: request_log.cpu_s
            request_log.start()
            self._sealer = loop.create_task(self._seal_request_log())
        if self.access_log is not None:
            self._flusher = loop.create_task(self._flush_access_log())
        if self.rollouts is not None:
            self.rollouts.start()
        if self.alias_watcher is not None:
            self.alias_watcher.start()

    async def shutdown(self) -> None:
        """Drain every batcher, then stop the writers and the worker."""
        if self.workers is not None:
            await self.workers.stop()
        if self.alias_watcher is not None:
            await self.alias_watcher.stop()
        if self.rollouts is not None:
            await self.rollouts.stop()
        for deployment in self.table:
            await deployment.batcher.drain(DRAIN_TIMEOUT_S)
        if self.workers is not None:
            await self.workers.share_last()
        for task in (self._flusher, self._sealer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.access_log is not None:
            self.access_log.flush()
        if self.request_log is not None:
            self.request_log.seal()  # here, on the loop that records
            await asyncio.to_thread(self.request_log.stop)
        self.executor.shutdown(wait=False)

    async def _seal_request_log(self) -> None:
        assert self.request_log is not None
        while True:
            await asyncio.sleep(SEAL_INTERVAL_S)
            self.request_log.seal()

    async def _flush_access_log(self) -> None:
        assert self.access_log is not None
        while True:
            await asyncio.sleep(ACCESS_LOG_FLUSH_S)
            self.access_log.flush()

    def _served(self) -> list[tuple[str, str, float]]:
        """(model, version, load seconds) of every deployment answering, canaries included."""
        deployments = list(self.table)
        if self.rollouts is not None:
            deployments += self.rollouts.candidates()
        return [(d.name, d.version_label, d.predictor.load_time_s) for d in deployments]

    def deploy(self, predictor: Predictor) -> Deployment:
        """``predictor`` behind a batcher with this server's batching, metrics and log."""
        return Deployment.create(
            predictor,
            executor=self.executor,
            batching=self.spec.batching,
            on_batch=self.on_batch,
            on_result=self.request_log.record_batch if self.request_log is not None else None,
        )

    def on_batch(self, model: str, stats: BatchStats) -> None:
        """Metrics of one batch (the deployments' batchers call this)."""
        self.metrics.batch(model, stats.rows, stats.service_s, stats.queue_rows)

    # -- HTTP ---------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        exchange = Exchange(request)
        try:
            await self._route(exchange, receive, send)
        except ReadymlError as exc:
            exchange.status = exc.status_code
            await self._send_error(exchange, exc, send)
        except Exception:
            exchange.status = 500
            print(
                f"readyml: unexpected error on {request.method} {request.path} "
                f"(request {request.request_id}):\n{traceback.format_exc()}",
                file=sys.stderr,
            )
            await send_json(
                send,
                500,
                {"error": f"internal server error (request id {request.request_id})"},
                headers=[(b"x-request-id", request.request_id.encode())],
            )
        finally:
            request.release()
            self._account(exchange)

    async def _send_error(self, exchange: Exchange, exc: ReadymlError, send: Send) -> None:
        request = exchange.request
        headers = error_headers(exc, request.request_id)
        content = error_content(exc)
        if exchange.route == "/invocations":
            content["error_code"] = mlflow.error_code(exc.status_code)
            content["message"] = content["error"]
        model = exchange.deployment.name if exchange.deployment is not None else ""
        if isinstance(exc, Overloaded):
            self.metrics.reject(model, "overloaded")
        elif exc.status_code in (400, 408, 413, 415):
            self.metrics.reject(model, "invalid")
        elif exc.status_code == 401:
            self.metrics.reject(model, "unauthorized")
        await send_json(send, exc.status_code, content, headers)

    def _account(self, exchange: Exchange) -> None:
        latency_s = time.monotonic() - exchange.started_s
        deployment = exchange.deployment
        model = deployment.name if deployment is not None else ""
        version = deployment.version_label if deployment is not None else ""
        self.metrics.count(model, version, exchange.route, exchange.status, latency_s)
        if exchange.choice is not None and exchange.choice.arm is not None:
            exchange.choice.arm.observe(exchange.status, latency_s)
        if self.access_log is not None:
            request = exchange.request
            self.access_log.record(
                request_id=request.request_id,
                method=request.method,
                path=request.path,
                status=exchange.status,
                latency_s=latency_s,
                model=model or None,
                version=version or None,
            )

    async def _route(self, exchange: Exchange, receive: Receive, send: Send) -> None:
        """Dispatch by path and method; HEAD is answered as GET (the server sends no body)."""
        request = exchange.request
        path = request.path
        if request.method == "POST":
            predict = self._predict_routes.get(path)
            if predict is not None:
                exchange.route = path
                await predict(exchange, receive, send)
                return
        methods = self._routes.get(path)
        if methods is not None:
            exchange.route = path
            method = "GET" if request.method == "HEAD" else request.method
            handler = methods.get(method)
            if handler is None:
                raise _not_allowed(path, methods, request.method)
            await handler(exchange, receive, with_request_id(send, request.request_id))
            return
        mounted = self.mounts.get(path)
        if mounted is not None:
            await self._mounted(mounted, exchange, receive, send)
            return
        if path.startswith(_MODELS_PREFIX):
            await self._model_route(exchange, path[len(_MODELS_PREFIX) :], receive, send)
            return
        if path.startswith(_REPOSITORY_PREFIX):
            send = with_request_id(send, request.request_id)
            await self._repository_route(exchange, path[len(_REPOSITORY_PREFIX) :], receive, send)
            return
        raise _no_route(path)

    async def _mounted(
        self, mount: Mount, exchange: Exchange, receive: Receive, send: Send
    ) -> None:
        exchange.route = exchange.request.path
        if self.spec.protect_predict or (mount.writes and self.auth.token is not None):
            self.auth.check(exchange.request)

        send = with_request_id(send, exchange.request.request_id)

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = int(message["status"])
            await send(message)

        await mount.app(exchange.request.scope, receive, send_and_note)

    async def _model_route(
        self, exchange: Exchange, rest: str, receive: Receive, send: Send
    ) -> None:
        parts = rest.split("/")
        name = parts[0]
        version: str | None = None
        if len(parts) >= 3 and parts[1] == "versions":
            version = parts[2]
            action = parts[3:]
            template = "/v2/models/{model_name}/versions/{model_version}"
        else:
            action = parts[1:]
            template = "/v2/models/{model_name}"
        if len(action) > 1 or not name or (len(parts) == 2 and parts[1] == "versions"):
            raise _no_route(exchange.request.path)
        verb = action[0] if action else ""
        method = "POST" if verb == "infer" else "GET"
        if verb not in ("", "ready", "infer"):
            raise _no_route(exchange.request.path)
        exchange.route = f"{template}/{verb}" if verb else template
        request = exchange.request
        if request.method != method and not (method == "GET" and request.method == "HEAD"):
            raise _not_allowed(exchange.route, {method: self._live}, request.method)
        if verb == "infer":
            # The body is read before the model is looked up, so that a swap while it
            # arrives never hands the request to a deployment that is being drained.
            if self.spec.protect_predict:
                self.auth.check(request)
            binary_header = request.inference_header_length is not None
            check_json_type(request.content_type, binary_header=binary_header)
            await request.read_body(receive, self.max_body_bytes, self.body_budget)
            await self._v2_infer(exchange, self._pick(exchange, name, version), send)
            return
        send = with_request_id(send, request.request_id)
        deployment = self._candidate(name, version) or self.table.get(name, version)
        exchange.deployment = deployment
        exchange.status = 200
        if verb == "ready":
            await send_json(send, 200, {"name": deployment.name, "ready": True})
        else:
            metadata = v2.model_metadata(deployment.predictor)
            if version is None:  # the current version's, listing every version served
                metadata["versions"] = self.table.versions(name) or metadata["versions"]
            await send_json(send, 200, metadata)

    # -- prediction routes --------------------------------------------------------------

    async def _simple(self, exchange: Exchange, receive: Receive, send: Send) -> None:
        body = await self._body(exchange, receive, json_only=True)
        deployment = self._default(exchange)
        part, rows = simple.decode(deployment.predictor, body)
        prediction, offset = await self._submit(exchange, deployment, part, rows)
        payload = simple.encode(deployment.predictor, prediction, offset, rows)
        await self._answer(exchange, send, payload, None, part, prediction, offset)

    async def _mlflow(self, exchange: Exchange, receive: Receive, send: Send) -> None:
        body = await self._body(exchange, receive)
        deployment = self._default(exchange)
        part, rows = mlflow.decode(deployment.predictor, body, exchange.request.content_type)
        prediction, offset = await self._submit(exchange, deployment, part, rows)
        payload = mlflow.encode(prediction, offset, rows)
        await self._answer(exchange, send, payload, None, part, prediction, offset)

    async def _v2_infer(self, exchange: Exchange, deployment: Deployment, send: Send) -> None:
        request = v2.decode(exchange.request)
        part, rows = v2.to_part(deployment.predictor, request.inputs)
        prediction, offset = await self._submit(exchange, deployment, part, rows)
        payload, header_length = v2.encode(
            deployment.predictor,
            prediction,
            offset,
            rows,
            request,
            exchange.request.request_id,
        )
        await self._answer(exchange, send, payload, header_length, part, prediction, offset)

    def _default(self, exchange: Exchange) -> Deployment:
        """The deployment ``?model=`` (default: the first served) and ``?version=`` ask for."""
        name = exchange.request.query_param("model")
        if name == "":
            loaded = ", ".join(self.table.names())
            raise BadRequest(f"model: expected a loaded model's name ({loaded}), found ''")
        stable = self.table.get(name) if name is not None else self.table.default()
        version = exchange.request.query_param("version")
        if version is not None:
            if not _is_number(version):
                raise BadRequest(f"version: expected a version number, found {shorten(version)!r}")
            return self._pick(exchange, stable.name, str(int(version)))
        return self._pick(exchange, stable.name, None, stable)

    def _pick(
        self,
        exchange: Exchange,
        name: str,
        version: str | None,
        stable: Deployment | None = None,
    ) -> Deployment:
        """The deployment that answers: a version asked for, else the rollout's choice."""
        deployment = self._candidate(name, version) if version is not None else None
        if deployment is None:
            stable = stable if stable is not None else self.table.get(name, version)
            if self.rollouts is not None and version is None:
                exchange.choice = self.rollouts.route(stable, exchange.request.scope)
                deployment = exchange.choice.deployment
            else:
                deployment = stable
        exchange.deployment = deployment
        return deployment

    def _candidate(self, name: str, version: str | None) -> Deployment | None:
        if self.rollouts is None or version is None:
            return None
        return self.rollouts.candidate_for(name, version)

    async def _body(
        self, exchange: Exchange, receive: Receive, *, json_only: bool = False
    ) -> bytes | bytearray:
        if self.spec.protect_predict:
            self.auth.check(exchange.request)
        if json_only:
            check_json_type(exchange.request.content_type)
        return await exchange.request.read_body(receive, self.max_body_bytes, self.body_budget)

    async def _submit(
        self, exchange: Exchange, deployment: Deployment, part: Part, rows: int
    ) -> tuple[Prediction, int]:
        if rows == 0:
            raise BadRequest("body: expected at least one row, found none")
        exchange.rows = rows
        # The request id tags the request for the log, which records whole batches.
        tag = exchange.request.request_id if self.request_log is not None else None
        try:
            return await deployment.batcher.submit(part, rows=rows, tag=tag)
        except NonFiniteOutput as exc:
            choice = exchange.choice
            if choice is None or choice.arm is None or choice.rollout is None:
                raise
            if choice.rollout.candidate is not deployment:
                raise
            # A canary's NaN answer is the candidate's failure, not the client's: it is
            # counted against the candidate and the stable version answers instead.
            choice.arm.observe(200, time.monotonic() - exchange.started_s)
            choice.arm.record_nonfinite(rows, exc.rows)
            exchange.choice = None
            stable = exchange.deployment = self.table.get(deployment.name)
            return await stable.batcher.submit(part, rows=rows, tag=tag)
        except ReadymlError:
            raise
        except Exception as exc:
            bad_number = deployment.predictor.beyond_float32(part)
            if bad_number is not None:
                raise bad_number from exc
            raise PredictionFailed(
                f"model {deployment.name!r} version {deployment.version}: cannot predict "
                f"this input ({type(exc).__name__}: {exc})"
            ) from exc

    async def _answer(
        self,
        exchange: Exchange,
        send: Send,
        payload: bytes,
        header_length: bytes | None,
        part: Part,
        prediction: Prediction,
        offset: int,
    ) -> None:
        request_id = exchange.request.request_id
        headers = [(b"x-request-id", request_id.encode())]
        content_type = b"application/json"
        if header_length is not None:
            headers.append((b"inference-header-content-length", header_length))
            content_type = b"application/octet-stream"
        exchange.status = 200
        await send_bytes(send, 200, payload, content_type=content_type, headers=headers)
        choice = exchange.choice
        if choice is not None and self.rollouts is not None:
            if choice.arm is not None:
                choice.arm.record(prediction, offset, exchange.rows)
            if choice.shadow is not None:
                self._in_background(self.rollouts.mirror(choice, part, exchange.rows))

    # -- other routes -------------------------------------------------------------------

    async def _server_metadata(self, exchange: Exchange, receive: Receive, send: Send) -> None:
        exchange.status = 200
        await send_json(
            send, 200, {"name": "readyml", "version": __version__, "extensions": v2.EXTENSIONS}
        )

    async def _live(self, exchange: Exchange, receive: Receive, send: Send) -> None:
        exchange.status = 200
        await send_json(send, 200, {"live": True})

    async def _ready(self, exchange: Exchange, receive: Receive, send: Send) -> None:
        ready = len(self.table) > 0
        exchange.status = 200 if ready else 503
        content: dict[str, Any] = {"ready": ready}
        if not ready:
            content.update(_NOT_READY)
        await send_json(send, exchange.status, content)

    async def _health(self, exchange: Exchange, receive: Receive, send: Send) -> None:
        """MLflow's and SageMaker's health check: 200 only when a model can answer."""
        if len(self.table) > 0:
            exchange.status = 200
            await send_json(send, 200, {"status": "ok"})
            return
        exchange.status = 503
        await send_json(send, 503, {"status": "unavailable", **_NOT_READY})

    async def _metrics(self, exchange: Exchange, receive: Receive, send: Send) -> None:
        body = await self.metrics.scrape()
        exchange.status = 200
        await send_bytes(send, 200, body, content_type=CONTENT_TYPE.encode())

    async def _openapi(self, exchange: Exchange, receive: Receive, send: Send) -> None:
        generation = self.table.generation
        if self._openapi_cache is None or self._openapi_cache[0] != generation:
            document = build_openapi(self.table, protect_predict=self.spec.protect_predict)
            self._openapi_cache = (generation, orjson.dumps(document))
        exchange.status = 200
        await send_bytes(send, 200, self._openapi_cache[1])

    # -- model repository extension -----------------------------------------------------

    async def _management_body(self, exchange: Exchange, receive: Receive) -> dict[str, Any]:
        self.auth.check(exchange.request)
        body = await exchange.request.read_body(receive, self.max_body_bytes, self.body_budget)
        if not body.strip():
            return {}
        document = parse_json(body, expected="a JSON object")
        if type(document) is not dict:
            raise BadRequest(f"body: expected a JSON object, found {type(document).__name__}")
        return document

    async def _repository_index(self, exchange: Exchange, receive: Receive, send: Send) -> None:
        document = await self._management_body(exchange, receive)
        ready_only = document.get("ready")
        if ready_only is not None and type(ready_only) is not bool:
            raise BadRequest(f"ready: expected a boolean, found {ready_only!r}")
        names = await asyncio.to_thread(self.repository) if self.repository is not None else []
        entries = []
        async with self._in_step():  # with several workers, after every change made so far
            for name in sorted(set(names) | set(self.table.names())):
                if name in self.table:
                    entries += [
                        {"name": name, "version": version, "state": "READY"}
                        for version in self.table.versions(name)
                    ]
                elif not ready_only:
                    entries.append({"name": name, "state": "UNAVAILABLE", "reason": "not loaded"})
        exchange.status = 200
        await send_json(send, 200, entries)

    async def _repository_route(
        self, exchange: Exchange, rest: str, receive: Receive, send: Send
    ) -> None:
        name, _, action = rest.partition("/")
        if action not in ("load", "unload") or "/" in name:
            raise _no_route(exchange.request.path)
        exchange.route = f"/v2/repository/models/{{model_name}}/{action}"
        if exchange.request.method != "POST":
            raise _not_allowed(exchange.route, {"POST": self._live}, exchange.request.method)
        document = await self._management_body(exchange, receive)
        parameters = _parameters(document)
        if self.rollouts is not None:
            self.rollouts.check_idle(name)  # a rollout decides its model's version
        content: dict[str, Any]
        if action == "unload":
            version = _unload_version(parameters)
            async with self._in_step():
                if version is None:
                    exchange.deployment = self._unload(name)
                else:
                    exchange.deployment = self._unpin(name, version)
                shared = await self._share(
                    ModelChange(name=name, action="unload", version=int(version or 0))
                )
            content = {"name": name, "state": "UNAVAILABLE"}
            if version is not None:
                content["version"] = version
        else:
            ref = _load_ref(name, document)
            pin = _pin_flag(parameters)
            if self.loader is None:
                raise NotFound(
                    f"model {name!r}: expected a server with a registry to load from, found none"
                )
            async with self._in_step():
                deployment = exchange.deployment = await self._load(ref, pin=pin)
                if self.alias_watcher is not None and not pin:
                    self.alias_watcher.follow(ref, deployment.version)
                change = ModelChange(
                    name=name, action="load", ref=ref, version=deployment.version, pinned=pin
                )
                shared = await self._share(change)
            content = {"name": name, "version": deployment.version_label, "state": "READY"}
            if pin:
                content["pinned"] = True
        if self.workers is not None and shared is not None:
            await self.workers.follow(shared)  # made here; answered once made everywhere
            content["workers"] = self.workers.workers
        exchange.status = 200
        await send_json(send, 200, content)

    async def _load(self, ref: str, *, pin: bool = False, validate: bool = True) -> Deployment:
        """Load ``ref`` and serve it in place of its model's deployment, if any (hot swap), or,
        with ``pin``, alongside the current one (at its version's routes only).

        With ``validate`` (and a registry), the version passes what a deploy checks first: it
        is neither vetoed nor archived, and it passes infra validation.
        """
        assert self.loader is not None
        name = ref.split("@", 1)[0].split(":", 1)[0]
        if pin:
            self.table.get(name)  # a version is pinned beside a current one: 404 before loading
        if validate and self.rollouts is not None:
            predictor = await asyncio.to_thread(self.rollouts.validated, ref)
        else:
            predictor = await asyncio.to_thread(self.loader, ref)
        deployment = self.deploy(predictor)
        if pin:
            old = self.table.pin(deployment)
            replaced = [old] if old is not None else []
        else:
            replaced = self.table.put(deployment)
        for old in replaced:
            # In-flight requests finish on the old version; new ones go to the new one.
            self._in_background(old.batcher.drain(DRAIN_TIMEOUT_S))
        return deployment

    def _unload(self, name: str) -> Deployment:
        """Stop serving ``name``, every version; their queued requests are answered first (404
        if not loaded). Returns the current deployment."""
        removed = self.table.remove(name)
        if self.alias_watcher is not None:
            self.alias_watcher.forget(name)
        for deployment in removed:
            self._in_background(deployment.batcher.drain(DRAIN_TIMEOUT_S))
        return removed[0]

    def _unpin(self, name: str, version: str) -> Deployment:
        """Stop serving the pinned ``version`` of ``name`` (404 if not served, 409 if current)."""
        deployment = self.table.unpin(name, version)
        self._in_background(deployment.batcher.drain(DRAIN_TIMEOUT_S))
        return deployment

    async def apply_change(self, change: ModelChange) -> None:
        """Make a change another worker of this server made: the same version, or unload."""
        if change.action == "unload":
            if change.name not in self.table:
                return
            if change.version == 0:
                self._unload(change.name)
            elif str(change.version) in self.table.versions(change.name)[1:]:
                self._unpin(change.name, str(change.version))
            return
        # The worker that made the change validated the version.
        deployment = await self._load(
            f"{change.name}:{change.version}", pin=change.pinned, validate=False
        )
        if self.alias_watcher is not None and not change.pinned:
            self.alias_watcher.follow(change.ref, deployment.version)

    @contextlib.asynccontextmanager
    async def _in_step(self) -> AsyncIterator[None]:
        """With several workers, make a change after every other worker's (see ``workers``)."""
        if self.workers is None:
            yield
            return
        async with self.workers.changing():
            yield

    async def _share(self, change: ModelChange) -> ModelChange | None:
        """Record a change made here for the other workers (inside :meth:`_in_step`)."""
        return await self.workers.publish(change) if self.workers is not None else None

    # -- rollouts (canary, shadow, promotion, rollback) -----------------------------------

    def _manager(self) -> RolloutManager:
        if self.rollouts is None:
            raise NotFound("rollouts: expected a server with a registry to deploy from, found none")
        return self.rollouts

    async def _deploy(self, exchange: Exchange, receive: Receive, send: Send) -> None:
        document = await self._management_body(exchange, receive)
        if self.workers is not None:
            raise self.workers.refuse_rollout("deploy")
        name = _model_name(document)
        version = document.get("version")
        if type(version) is not int or version < 1:
            raise BadRequest(f"version: expected a version number, found {version!r}")
        overrides = document.get("rollout", {})
        if overrides is None:
            overrides = {}
        if type(overrides) is not dict:
            raise BadRequest(f"rollout: expected an object, found {type(overrides).__name__}")
        mode = document.get("mode", "canary")
        if type(mode) is not str:
            raise BadRequest(
                f"mode: expected 'canary', 'shadow' or 'direct', found {json.dumps(mode)}"
            )
        result = await self._manager().deploy(name, version, mode=mode, overrides=overrides)
        exchange.status = 200
        await send_json(send, 200, result)

    async def _promote(self, exchange: Exchange, receive: Receive, send: Send) -> None:
        document = await self._management_body(exchange, receive)
        if self.workers is not None:
            raise self.workers.refuse_rollout("promote")
        name = _model_name(document)
        reason = _reason(document, "promoted by hand")
        result = await self._manager().promote(name, reason=reason)
        exchange.status = 200
        await send_json(send, 200, result)

    async def _rollback(self, exchange: Exchange, receive: Receive, send: Send) -> None:
        """Abort a running rollout; serve the registry's champion again when asked (or idle)."""
        document = await self._management_body(exchange, receive)
        name = _model_name(document)
        reason = _reason(document, "rolled back by hand")
        manager = self._manager()
        result: dict[str, Any] = {}
        shared: ModelChange | None = None
        if name in manager.rollouts:
            result = await manager.rollback(name, reason=reason)
        if document.get("reload") or not result:
            async with self._in_step():
                result = {**result, **await manager.reload_champion(name)}
                ref, version = f"{name}@{CHAMPION}", int(result["version"])
                if self.alias_watcher is not None:
                    self.alias_watcher.follow(ref, version)
                shared = await self._share(
                    ModelChange(name=name, action="load", ref=ref, version=version)
                )
            if self.workers is not None and shared is not None:
                await self.workers.follow(shared)
        exchange.status = 200
        await send_json(send, 200, result)

    async def _rollout_status(self, exchange: Exchange, receive: Receive, send: Send) -> None:
        self.auth.check(exchange.request)
        result = self._manager().status()
        exchange.status = 200
        await send_json(send, 200, result)

    def _in_background(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


# The body of a readiness check while no model is loaded (503).
_NOT_READY = error_content(
    NotFound(
        "model: expected a loaded model, found none; load one with "
        "POST /v2/repository/models/{name}/load"
    )
)


def _no_route(path: str) -> NotFound:
    """The 404 of a path no route serves, in the field form every error body follows."""
    return NotFound(f"path: expected a route listed in /openapi.json, found {path!r}")


def _not_allowed(path: str, methods: dict[str, Any], method: str) -> MethodNotAllowed:
    """The 405 of ``method`` on ``path``; a route that answers GET answers HEAD too."""
    allowed = sorted({*methods, "HEAD"} if "GET" in methods else methods)
    return MethodNotAllowed(
        f"method: expected {' or '.join(allowed)} for {path}, found {method}", allowed=allowed
    )


def _model_name(document: dict[str, Any], key: str = "model") -> str:
    """A management body's bare model name (letters, digits, '_', '.', '-'), or a 400."""
    value = document.get(key)
    if type(value) is not str or not value:
        raise BadRequest(f"{key}: expected a model name, found {value!r}")
    try:
        ref = ModelRef.parse(value)
    except ValueError:
        ref = None
    if ref is None or ref.name != value:
        raise BadRequest(f"{key}: expected a bare model name ({NAME_RULE}), found {value!r}")
    return value


def _is_number(text: str) -> bool:
    """Whether ``text`` is a version number: ASCII digits only (``int`` refuses '²')."""
    return text.isascii() and text.isdigit()


def _reason(document: dict[str, Any], default: str) -> str:
    """A management body's ``reason`` (``default`` when absent or empty), or a 400."""
    reason = document.get("reason")
    if reason is None or reason == "":
        return default
    if type(reason) is not str:
        raise BadRequest(f"reason: expected a string, found {json.dumps(reason)[:64]}")
    return reason


def _parameters(document: dict[str, Any]) -> dict[str, Any]:
    """A repository call's ``parameters`` object (empty when absent)."""
    parameters = document.get("parameters", {})
    if parameters is None:  # JSON null: absent, as the spec's optional members are
        parameters = {}
    if type(parameters) is not dict:
        raise BadRequest(f"parameters: expected an object, found {type(parameters).__name__}")
    return parameters


def _pin_flag(parameters: dict[str, Any]) -> bool:
    """Whether a load asks to serve the version alongside the current one."""
    pin = parameters.get("pin", False)
    if type(pin) is not bool:
        raise BadRequest(f"parameters.pin: expected a boolean, found {pin!r}")
    return pin


def _unload_version(parameters: dict[str, Any]) -> str | None:
    """The pinned version an unload asks to stop serving (``None``: every version)."""
    version = parameters.get("version")
    if version is None:
        return None
    if type(version) is bool or not _is_number(str(version)):
        raise BadRequest(f"parameters.version: expected a version number, found {version!r}")
    return str(int(str(version)))


def _load_ref(name: str, document: dict[str, Any]) -> str:
    """The registry reference a load call asks for: ``NAME@champion`` unless told otherwise."""
    try:
        ModelRef.parse(name)
    except ValueError:
        raise BadRequest(
            f"model name: expected a bare model name ({NAME_RULE}), found {shorten(name)!r}"
        ) from None
    if "@" in name or ":" in name:
        raise BadRequest(
            f"model name {shorten(name)!r}: expected a bare name; give the version in the body"
        )
    parameters = _parameters(document)
    version = parameters.get("version")
    alias = parameters.get("alias")
    if version is not None:
        if type(version) is bool or not _is_number(str(version)):
            raise BadRequest(f"parameters.version: expected a version number, found {version!r}")
        return f"{name}:{int(str(version))}"
    if alias is not None:
        ref = f"{name}@{alias}"
        try:
            ModelRef.parse(ref)
        except ValueError:
            raise BadRequest(
                f"parameters.alias: expected an alias name (letters, digits, '_', '.', '-'), "
                f"found {shorten(repr(alias))}"
            ) from None
        return ref
    return f"{name}@champion"


def logs_folder(workspace: Path) -> Path:
    """Where a workspace's request logs go."""
    return workspace / "logs"
