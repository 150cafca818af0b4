"""The serving system: a fast REST model server over registered versions.

:func:`readyml.serve.server.build_app` loads a project's models into a
:class:`~readyml.serve.deployment.ModelTable` and returns the ASGI
:class:`~readyml.serve.app.ServingApp` (Open Inference Protocol V2 with the repository and
binary-tensor extensions, MLflow's ``/invocations``, ``/predict``);
:func:`readyml.serve.server.run` serves it with uvicorn. Requests are batched by
:class:`~readyml.serve.batching.AdaptiveBatcher`, counted in
:class:`~readyml.serve.metrics.ServerMetrics` and logged to Parquet by
:class:`~readyml.serve.request_log.RequestLog`. :class:`~readyml.serve.ray_engine.RayEngine`
runs the same app as Ray Serve replicas (``readyml serve --engine ray``; the ``ray`` extra).

Import from the modules: this package imports nothing, so that a client of a running server
(``readyml rollback``, :mod:`readyml.serve.management_client`) starts without loading the
server, its models' libraries and the data engine.
"""
