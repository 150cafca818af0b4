"""Run owners: the host, pid and process start time of the process that runs a run.

A run whose owner process ended without finishing it (SIGKILL, power loss) is marked failed
by the next process on that host that starts or lists runs. The columns are nullable: runs
recorded before this revision have no known owner and are left as they are.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_COLUMNS = ("owner_host", "owner_pid", "owner_start_ticks")


def upgrade() -> None:
    """Add the owner columns to ``runs`` (ADD COLUMN: no table rewrite on either backend)."""
    op.add_column("runs", sa.Column("owner_host", sa.String(255), nullable=True))
    op.add_column("runs", sa.Column("owner_pid", sa.Integer(), nullable=True))
    op.add_column("runs", sa.Column("owner_start_ticks", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Drop the owner columns (DROP COLUMN, SQLite 3.35 or later).

    Not a batch (copy and rename) operation: on SQLite that drops the old ``runs`` table,
    and with foreign keys on, the drop would delete every step through ON DELETE CASCADE.
    """
    for column in reversed(_COLUMNS):
        op.drop_column("runs", column)
