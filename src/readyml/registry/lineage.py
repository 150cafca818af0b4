"""Versions found through their lineage: the parity-checked ONNX export of a version.

Compression registers every result with what was done under ``lineage["compression"]`` and what
was measured under ``metrics["compression"]``. Prediction (a layer below compression) needs to
find a version's ONNX export to choose its runtime, so the lookup lives here, next to the
registry, and reads only those recorded fields.
"""

from __future__ import annotations

from readyml.registry.records import ModelVersion
from readyml.registry.registry import Registry

# Lineage and metrics key under which compression records method and measurements.
COMPRESSION_KEY = "compression"
# Lineage key: the label column the version predicts (training and compression record it).
LABEL_KEY = "label"
# Statuses that take a version out of consideration.
_EXCLUDED = ("vetoed", "archived")


def onnx_version_for(registry: Registry, version: ModelVersion) -> ModelVersion | None:
    """The newest parity-checked ONNX export of ``version``, if one was registered.

    Only a plain ``onnx`` export whose parity passed and which was not vetoed or archived
    counts. Its ``metrics["compression"]`` holds ``latency_ms`` (the export) and
    ``base_latency_ms`` (``version``, measured in the same run), keyed by batch size, so a
    caller can pick the faster runtime (see :mod:`readyml.predict.runtime`).
    """
    found = None
    for candidate in registry.list_versions(version.name):
        method = candidate.lineage.get(COMPRESSION_KEY) or {}
        if (
            candidate.parent_version == version.version
            and method.get("name") == "onnx"
            and (method.get("parity") or {}).get("passed")
            and candidate.status not in _EXCLUDED
        ):
            found = candidate
    return found
