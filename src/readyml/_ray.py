"""Connecting to Ray (an optional extra): a local single-node cluster, or an existing one.

Serving (:mod:`readyml.serve.ray_engine`) and batch prediction (:mod:`readyml.predict.batch`)
both run on Ray, which is not installed by default, and both must start a local cluster the
same way: advertised on loopback, without the dashboard and without usage reporting, and
stopped through the API. ``ray stop`` is never the way out: it ends every Ray process of the
machine by name, other users' clusters included.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from readyml.errors import ConfigError

RAY_EXTRA = "pip install 'readyml[ray]'"
# Where a local cluster is advertised: it has one node, so nothing else needs to reach it.
LOCAL_NODE_ADDRESS = "127.0.0.1"


@dataclass(frozen=True)
class RaySession:
    """How this process is attached to Ray.

    Attributes:
        connected: This process connected the driver (so it disconnects when done).
        local: The cluster is a local one this process started: everything on it is ours.
    """

    connected: bool
    local: bool


def require_ray(what: str) -> Any:
    """The ``ray`` module (typed ``Any``: an optional extra), or an error naming the extra.

    Raises:
        ConfigError: Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"{what}: expected Ray to be installed, found no 'ray' module; install the "
            f"extra: {RAY_EXTRA}"
        ) from None
    return ray


def connect(address: str | None, *, what: str, num_cpus: int | None = None) -> RaySession:
    """Attach this process to Ray: the cluster at ``address``, else a new local one.

    ``address`` falls back to ``RAY_ADDRESS``. A process already attached stays as it is.

    Args:
        address: ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``; ``None``: a local cluster.
        what: The option or command that needs Ray, for error messages.
        num_cpus: CPUs of a local cluster; ``None``: the machine's.

    Raises:
        ConfigError: Ray is not installed, or the cluster cannot be reached.
    """
    ray = require_ray(what)
    if ray.is_initialized():
        return RaySession(connected=False, local=False)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"{what}: cannot connect to the Ray cluster at {address!r} ({first})"
            ) from exc
        return RaySession(connected=True, local=False)
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        logging_level=logging.WARNING,
        _node_ip_address=LOCAL_NODE_ADDRESS,
    )
    return RaySession(connected=True, local=True)


def free_cpus() -> float:
    """CPUs of the attached cluster that no actor or task holds now (0 when none)."""
    import ray

    return float(ray.available_resources().get("CPU", 0.0))


def private_environment(root: str) -> dict[str, str]:
    """Variables that keep a local cluster's files under ``root``, away from other clusters.

    Ray puts its sessions (and the address ``auto`` finds) under ``RAY_TMPDIR``, and Ray
    Serve's HAProxy its configuration and sockets under ``/tmp/haproxy-serve`` unless told
    otherwise; tests and benchmarks that start clusters beside other users' set these.
    ``root`` should be short (about 30 bytes): HAProxy takes socket paths of at most 97.
    """
    haproxy = f"{root}/h"  # HAProxy takes socket paths of at most 97 bytes
    return {
        "RAY_TMPDIR": root,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{haproxy}/haproxy.cfg",
        "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{haproxy}/admin.sock",
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": f"{haproxy}/metrics.sock",
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": haproxy,
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{haproxy}/server-state",
    }
