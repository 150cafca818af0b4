"""The serving system: a fast REST model server over registered versions.

:func:`build_app` loads a project's models into a :class:`ModelTable` and returns the ASGI
:class:`ServingApp` (Open Inference Protocol V2 with the repository and binary-tensor
extensions, MLflow's ``/invocations``, ``/predict``); :func:`run` serves it with uvicorn.
Requests are batched by :class:`AdaptiveBatcher`, counted in :class:`ServerMetrics` and
logged to Parquet by :class:`RequestLog`. :class:`RayEngine` runs the same app as Ray Serve
replicas (``readyml serve --engine ray``; the ``ray`` extra).
"""

from __future__ import annotations

from readyml.serve.access_log import AccessLog
from readyml.serve.app import ServingApp
from readyml.serve.auth import BearerAuth
from readyml.serve.batching import AdaptiveBatcher, BatchStats, QueueFull
from readyml.serve.deployment import Deployment, ModelTable
from readyml.serve.metrics import ServerMetrics
from readyml.serve.ray_engine import RayEngine
from readyml.serve.request_log import RequestLog
from readyml.serve.server import app_from_environment, build_app, run

__all__ = [
    "AccessLog",
    "AdaptiveBatcher",
    "BatchStats",
    "BearerAuth",
    "Deployment",
    "ModelTable",
    "QueueFull",
    "RayEngine",
    "RequestLog",
    "ServerMetrics",
    "ServingApp",
    "app_from_environment",
    "build_app",
    "run",
]
