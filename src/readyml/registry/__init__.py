"""The registry: where runs, steps, evidence, model versions and their files are kept.

Two stores behind one object. :class:`MetadataStore` (SQLAlchemy + Alembic; SQLite by
default, PostgreSQL by URL) records runs, steps, evidence, versions, aliases and the audit
trails of alias moves and status changes. :class:`ArtifactStore` (fsspec; a local folder
by default, ``s3://`` by URL) keeps files, written atomically and verified by sha256 on
every read.
:class:`Registry` combines them; :func:`open_registry` opens a workspace's registry with
the defaults and the ``READYML_STORE_URL`` / ``READYML_ARTIFACTS_URL`` overrides.
:func:`onnx_version_for` finds a version's parity-checked ONNX export through the lineage.
"""

from __future__ import annotations

from readyml.registry.artifacts import ArtifactStore
from readyml.registry.lineage import onnx_version_for
from readyml.registry.records import (
    AliasEvent,
    ArtifactInfo,
    ModelSummary,
    ModelVersion,
    RunOwner,
    RunRecord,
    StatusEvent,
    StepRecord,
)
from readyml.registry.registry import CHAMPION, Registry, open_registry
from readyml.registry.store import MetadataStore

__all__ = [
    "CHAMPION",
    "AliasEvent",
    "ArtifactInfo",
    "ArtifactStore",
    "MetadataStore",
    "ModelSummary",
    "ModelVersion",
    "Registry",
    "RunOwner",
    "RunRecord",
    "StatusEvent",
    "StepRecord",
    "onnx_version_for",
    "open_registry",
]
