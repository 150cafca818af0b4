"""Version status events: the audit trail of every status change, as aliases have.

Before this revision a version kept only a person's latest change, in its ``status_change``
tag. The upgrade carries each such tag over as one event (status, who, why, when); its
earlier status is not known, so ``from_status`` is NULL. Nothing else is made up: older
changes by the gate, and registrations, were never recorded, so an older version's trail
starts with its tag's change, or with the first change after the upgrade. A tag edited by
hand into something that is not a change is left out. The tags themselves stay.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-14
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)
_STATUSES = ("candidate", "blessed", "vetoed", "archived")
_WHO_LEN = 128  # the width of the ``who`` column

_VERSIONS = sa.table(
    "versions",
    sa.column("id", sa.Integer),
    sa.column("model_name", sa.String),
    sa.column("version", sa.Integer),
    sa.column("tags", sa.JSON),
)
_EVENTS = sa.table(
    "version_status_events",
    sa.column("model_name", sa.String),
    sa.column("version", sa.Integer),
    sa.column("from_status", sa.String),
    sa.column("to_status", sa.String),
    sa.column("at", _TS),
    sa.column("who", sa.String),
    sa.column("reason", sa.Text),
    sa.column("gate_decision", sa.String),
)


def _carried_over(model_name: str, version: int, tags: Any) -> dict[str, Any] | None:
    """The event a version's ``status_change`` tag records, or ``None`` if it has none."""
    change = tags.get("status_change") if isinstance(tags, dict) else None
    if not isinstance(change, dict) or change.get("status") not in _STATUSES:
        return None
    by, at = change.get("by"), change.get("at")
    if not isinstance(by, str) or not by or len(by) > _WHO_LEN or not isinstance(at, str):
        return None
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        return None
    return {
        "model_name": model_name,
        "version": version,
        "from_status": None,
        "to_status": change["status"],
        # SQLite keeps no offset: store UTC, as the ORM's UTCDateTime does.
        "at": when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC),
        "who": by,
        "reason": str(change.get("reason") or ""),
        "gate_decision": None,
    }


def upgrade() -> None:
    """Create ``version_status_events`` and carry each ``status_change`` tag into it."""
    op.create_table(
        "version_status_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("who", sa.String(_WHO_LEN), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("gate_decision", sa.String(64), nullable=True),
    )
    op.create_index(
        "ix_version_status_events_model_version",
        "version_status_events",
        ["model_name", "version"],
    )
    rows = op.get_bind().execute(
        sa.select(_VERSIONS.c.model_name, _VERSIONS.c.version, _VERSIONS.c.tags).order_by(
            _VERSIONS.c.id
        )
    )
    events = [
        event
        for model_name, version, tags in rows
        if (event := _carried_over(model_name, version, tags)) is not None
    ]
    events.sort(key=lambda event: event["at"])
    if events:
        op.bulk_insert(_EVENTS, events)


def downgrade() -> None:
    """Drop the table (the ``status_change`` tags still hold each person's latest change)."""
    op.drop_index("ix_version_status_events_model_version", "version_status_events")
    op.drop_table("version_status_events")
