"""Evidence reports: the documents in the artifact store that ML Test Score evidence links to.

Each component that records evidence also keeps what a reviewer would open to check it: a
pipeline run or a ``readyml check`` its report (:func:`run_report_key`), the monitor its HTML
page, a rollout its decision log, a rollback what it did. Evidence rows name the key in
``artifact``; a run's rows name none, as the report is written when the run ends, and
``readyml score`` links them to :func:`run_report_key` once it exists.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from readyml._json import clean
from readyml.errors import ReadymlError

if TYPE_CHECKING:
    from readyml.registry.registry import Registry

_log = logging.getLogger(__name__)


def run_report_key(run_id: str) -> str:
    """Where the report of a pipeline run or a ``readyml check`` is kept.

    >>> run_report_key("check-1f2e")
    'runs/check-1f2e/report.json'
    """
    return f"runs/{run_id}/report.json"


def stamp(at: datetime) -> str:
    """A sortable UTC timestamp for keys, to the microsecond.

    >>> stamp(datetime(2026, 12, 7, 18, 5, 1, 250, tzinfo=UTC))
    '20261207T180501000250Z'
    """
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def key_part(text: str) -> str:
    """``text`` as one safe key segment (a model name may hold characters keys avoid).

    >>> key_part("fraud/v2 model")
    'fraud-v2-model'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip(".-") or "unnamed"


def put_json_report(registry: Registry, key: str, document: Any) -> str:
    """Store ``document`` as indented JSON under ``key`` (atomically) and return the key.

    Raises:
        RegistryError: The artifact store cannot be written.
    """
    data = json.dumps(clean(document), indent=2, default=str).encode("utf-8")
    return registry.artifacts.put_bytes(key, data).key


def keep_json_report(registry: Registry, key: str, document: Any, *, what: str) -> str | None:
    """:func:`put_json_report`, or ``None`` with a warning naming ``what``: the outcome the
    report describes stands whether or not the artifact store keeps it."""
    try:
        return put_json_report(registry, key, document)
    except ReadymlError as exc:
        _log.warning("%s: its report was not kept (%s)", what, exc)
        return None
