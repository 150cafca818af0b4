"""The parent process of a server with several workers: uvicorn's supervisor, adapted.

:func:`run` creates a fresh folder for this server run, which the workers share (the
desired state of the models, :mod:`readyml.serve.workers`; prometheus_client's multiprocess
files, :class:`~readyml.serve.metrics.WorkerMetrics`), names it to the workers (the serving
options and ``PROMETHEUS_MULTIPROC_DIR``), runs uvicorn's supervisor on one listening
socket, and removes the folder when the last worker has ended.

Two changes to uvicorn's supervisor:

* *Stopping.* On SIGTERM or SIGINT uvicorn's supervisor signals the workers, which stop
  accepting, answer what they hold and end, as one process does; but the supervisor kept
  its own copy of the listening socket open until it exited, so the kernel went on queueing
  new connections that no worker would accept, and reset them all at exit: requests sent,
  never answered (a ``ReadError`` for the client, where one process refuses the connection
  and the client knows nothing was sent). The supervisor now closes its copy first.
* *Replaced workers.* When a worker ends and is replaced (a crash, ``SIGHUP``, ``SIGTTOU``),
  its live gauges and versions served leave the metrics; its counts stay in the sums.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from uvicorn import Config, Server
from uvicorn.supervisors.multiprocess import Multiprocess

from readyml.serve.metrics import MULTIPROC_ENV, forget_worker
from readyml.serve.workers import METRICS_FOLDER

# The import string of the app factory each worker calls.
WORKER_APP = "readyml.serve.server:app_from_environment"


class Supervisor(Multiprocess):
    """uvicorn's supervisor that stops as one process does and buries its workers' gauges.

    Args:
        config: uvicorn's settings (``workers`` among them).
        sockets: The listening sockets the workers share.
        metrics: The multiprocess metrics folder.
    """

    def __init__(self, config: Config, sockets: list[socket.socket], *, metrics: Path) -> None:
        legacy: dict[str, Any] = {}  # older uvicorn releases also took the workers' target
        if "target" in inspect.signature(Multiprocess.__init__).parameters:
            legacy["target"] = Server(config).run
        super().__init__(config, sockets=sockets, **legacy)
        self.metrics = metrics
        self._known: set[int] = set()

    def terminate_all(self) -> None:
        # Closed here first, the socket closes when the last worker stops accepting: later
        # connections are refused at once instead of queued and reset when this process exits.
        for sock in self.sockets:
            sock.close()
        super().terminate_all()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        alive = {process.pid for process in self.processes if process.pid is not None}
        for pid in self._known - alive:
            forget_worker(self.metrics, pid)
        self._known = alive


def run(*, options: dict[str, Any], options_env: str, workers: int, **settings: Any) -> None:
    """Run ``workers`` worker processes under :class:`Supervisor` until told to stop.

    Args:
        options: The serving options every worker builds its app from; the run's folder is
            added as ``workers_folder``.
        options_env: The environment variable the options travel in.
        workers: How many worker processes.
        settings: uvicorn's settings (host, port, protocol, ...).
    """
    folder = Path(tempfile.mkdtemp(prefix="readyml-serve-"))
    try:
        metrics = folder / METRICS_FOLDER
        metrics.mkdir()
        # Read by prometheus_client when a worker imports it: set before any worker starts.
        os.environ[MULTIPROC_ENV] = str(metrics)
        os.environ[options_env] = json.dumps({**options, "workers_folder": str(folder)})
        config = Config(WORKER_APP, factory=True, workers=workers, **settings)
        sock = config.bind_socket()
        Supervisor(config, [sock], metrics=metrics).run()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
