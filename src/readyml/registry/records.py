"""Plain, frozen records that the registry hands out instead of database rows.

Callers never see ORM objects: a record is a snapshot that stays valid after its session
closes, compares by value, and turns into JSON with ``to_dict()``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from readyml.types import JSON, VersionStatus

RunStatus = Literal["running", "succeeded", "failed"]
StepStatus = Literal["succeeded", "failed", "skipped"]
AliasAction = Literal["set", "rollback"]

RUN_STATUSES: tuple[RunStatus, ...] = ("running", "succeeded", "failed")
STEP_STATUSES: tuple[StepStatus, ...] = ("succeeded", "failed", "skipped")
VERSION_STATUSES: tuple[VersionStatus, ...] = ("candidate", "blessed", "vetoed", "archived")


def _jsonable(value: Any) -> Any:
    """Turn datetimes (at any depth) into ISO 8601 strings."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


@dataclass(frozen=True)
class RunOwner:
    """The process that runs a run: its host, pid and start time.

    ``start_ticks`` is the process's start time in clock ticks since boot (field 22 of
    ``/proc/PID/stat``), which tells the owner apart from a later process given the same
    pid; it is ``None`` where ``/proc`` is missing, and only the pid is checked.
    """

    host: str
    pid: int
    start_ticks: int | None

    def to_dict(self) -> JSON:
        """Return a JSON-friendly dict."""
        return asdict(self)


@dataclass(frozen=True)
class RunRecord:
    """One execution of a project's training pipeline."""

    id: str
    project: str
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    fingerprints: dict[str, str]
    params: JSON
    error: str | None
    owner: RunOwner | None = None  # None for runs recorded before schema revision 0002

    def to_dict(self) -> JSON:
        """Return a JSON-friendly dict (datetimes as ISO 8601)."""
        result: JSON = _jsonable(asdict(self))
        return result


@dataclass(frozen=True)
class StepRecord:
    """One step of a run: what went in (by fingerprint), what came out, and how it ended."""

    id: int
    run_id: str
    name: str
    status: StepStatus
    started_at: datetime
    ended_at: datetime
    duration_s: float
    input_fingerprint: str
    output_fingerprint: str | None
    outputs: JSON
    message: str
    error: str | None

    def to_dict(self) -> JSON:
        """Return a JSON-friendly dict (datetimes as ISO 8601)."""
        result: JSON = _jsonable(asdict(self))
        return result


@dataclass(frozen=True)
class ArtifactInfo:
    """A stored blob: its store key, sha256 and size; ``name`` is its path inside a version."""

    key: str
    sha256: str
    size: int
    name: str = ""

    def to_dict(self) -> JSON:
        """Return a JSON-friendly dict."""
        return asdict(self)


@dataclass(frozen=True)
class ModelVersion:
    """One registered, complete version of a model, with everything needed to audit it."""

    name: str
    version: int
    status: VersionStatus
    created_at: datetime
    run_id: str | None
    parent_version: int | None
    model_fingerprint: str
    lineage: JSON
    metrics: JSON
    signature: JSON
    input_example: list[JSON]
    tags: dict[str, Any]
    gate: JSON | None
    description: str
    artifacts: list[ArtifactInfo] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """The ``NAME:VERSION`` reference of this version."""
        return f"{self.name}:{self.version}"

    def to_dict(self) -> JSON:
        """Return a JSON-friendly dict (datetimes as ISO 8601)."""
        result: JSON = _jsonable(asdict(self))
        return result


@dataclass(frozen=True)
class ModelSummary:
    """A model name with its newest version and where its aliases point."""

    name: str
    created_at: datetime
    latest_version: int | None
    aliases: dict[str, int]

    def to_dict(self) -> JSON:
        """Return a JSON-friendly dict (datetimes as ISO 8601)."""
        result: JSON = _jsonable(asdict(self))
        return result


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias: who moved it, when, why, and from which version to which."""

    id: int
    model_name: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: datetime
    who: str
    reason: str
    action: AliasAction

    def to_dict(self) -> JSON:
        """Return a JSON-friendly dict (datetimes as ISO 8601)."""
        result: JSON = _jsonable(asdict(self))
        return result


@dataclass(frozen=True)
class StatusEvent:
    """One status change of a version: from which status to which, when, by whom and why.

    ``who`` is the person (or named controller) who set it; ``None`` means the gate or code
    did. ``from_status`` is ``None`` when the version came into the registry with this
    status (registered or imported), and for a person's change carried over from the
    version's ``status_change`` tag by schema revision 0003, whose earlier status is not
    known. ``gate_decision`` is the gate's decision recorded with the change, if any.
    """

    id: int
    model_name: str
    version: int
    from_status: VersionStatus | None
    to_status: VersionStatus
    at: datetime
    who: str | None
    reason: str
    gate_decision: str | None

    @property
    def ref(self) -> str:
        """The ``NAME:VERSION`` reference of the version."""
        return f"{self.model_name}:{self.version}"

    def to_dict(self) -> JSON:
        """Return a JSON-friendly dict (datetimes as ISO 8601)."""
        result: JSON = _jsonable(asdict(self))
        return result
