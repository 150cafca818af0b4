"""The metadata store's tables, as SQLAlchemy 2 typed ORM classes.

The schema itself is created by the Alembic migrations in ``migrations/``; these classes
must match them (a test compares the two). Timestamps are timezone-aware UTC on the way in
and on the way out, even on SQLite, which stores them without an offset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Column widths, in characters.
ID_LEN = 32
NAME_LEN = 128
SHORT_LEN = 64
KEY_LEN = 1024
HOST_LEN = 255


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC; a naive datetime is taken to be UTC already."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to the offset-less values SQLite returns."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, found {type(value)}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every metadata table."""

    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads this class attribute)
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Run(Base):
    """A pipeline run."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    project: Mapped[str] = mapped_column(String(NAME_LEN), index=True)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    fingerprints: Mapped[dict[str, Any]]
    params: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(Text)
    # The process that runs it (migration 0002); NULL for runs recorded before.
    owner_host: Mapped[str | None] = mapped_column(String(HOST_LEN))
    owner_pid: Mapped[int | None] = mapped_column(Integer)
    owner_start_ticks: Mapped[int | None] = mapped_column(BigInteger)


class Step(Base):
    """A step of a run."""

    __tablename__ = "steps"
    __table_args__ = (Index("ix_steps_name_input", "name", "input_fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    duration_s: Mapped[float] = mapped_column(Float)
    input_fingerprint: Mapped[str] = mapped_column(String(128))
    output_fingerprint: Mapped[str | None] = mapped_column(String(128))
    outputs: Mapped[dict[str, Any]]
    message: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class Model(Base):
    """A model name; its row is the lock that serialises version numbering."""

    __tablename__ = "models"

    name: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    created_at: Mapped[datetime]


class Version(Base):
    """A complete, registered model version."""

    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("model_name", "version", name="uq_versions_model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(ForeignKey("models.name", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    parent_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    model_fingerprint: Mapped[str] = mapped_column(String(128), index=True)
    lineage: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    signature: Mapped[dict[str, Any]]
    input_example: Mapped[list[Any]]
    tags: Mapped[dict[str, Any]]
    gate: Mapped[dict[str, Any] | None]
    description: Mapped[str] = mapped_column(Text)


class Artifact(Base):
    """A file of a version: its relative name, store key, sha256 and size."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("version_id", "name", name="uq_artifacts_version_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("versions.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(KEY_LEN))
    key: Mapped[str] = mapped_column(String(KEY_LEN), index=True)
    sha256: Mapped[str] = mapped_column(String(SHORT_LEN))
    size: Mapped[int] = mapped_column(BigInteger)


class Alias(Base):
    """Where an alias of a model points now."""

    __tablename__ = "aliases"

    model_name: Mapped[str] = mapped_column(
        ForeignKey("models.name", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(SHORT_LEN), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class AliasEventRow(Base):
    """The audit trail of alias moves."""

    __tablename__ = "alias_events"
    __table_args__ = (Index("ix_alias_events_model_alias", "model_name", "alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(NAME_LEN))
    alias: Mapped[str] = mapped_column(String(SHORT_LEN))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime]
    who: Mapped[str] = mapped_column(String(NAME_LEN))
    reason: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(16))


class StatusEventRow(Base):
    """The audit trail of version status changes (migration 0003)."""

    __tablename__ = "version_status_events"
    __table_args__ = (Index("ix_version_status_events_model_version", "model_name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(NAME_LEN))
    version: Mapped[int] = mapped_column(Integer)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    who: Mapped[str | None] = mapped_column(String(NAME_LEN))
    reason: Mapped[str] = mapped_column(Text)
    gate_decision: Mapped[str | None] = mapped_column(String(SHORT_LEN))


class EvidenceRow(Base):
    """One piece of ML Test Score evidence."""

    __tablename__ = "evidence"
    __table_args__ = (Index("ix_evidence_project_test", "project", "test_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    test_id: Mapped[str] = mapped_column(String(16))
    passed: Mapped[bool] = mapped_column(Boolean)
    automated: Mapped[bool] = mapped_column(Boolean)
    project: Mapped[str] = mapped_column(String(NAME_LEN))
    run_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    model_name: Mapped[str | None] = mapped_column(String(NAME_LEN))
    version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(index=True)
    details: Mapped[dict[str, Any]]
    artifact: Mapped[str | None] = mapped_column(String(KEY_LEN))
