"""Initial schema: runs, steps, models, versions, artifacts, aliases, alias events, evidence.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("fingerprints", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_runs_project", "runs", ["project"])

    op.create_table(
        "steps",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("input_fingerprint", sa.String(128), nullable=False),
        sa.Column("output_fingerprint", sa.String(128), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_steps_run_id", "steps", ["run_id"])
    op.create_index("ix_steps_name_input", "steps", ["name", "input_fingerprint"])

    op.create_table(
        "models",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("created_at", _TS, nullable=False),
    )

    op.create_table(
        "versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "model_name",
            sa.String(128),
            sa.ForeignKey("models.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("parent_version", sa.Integer(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("model_fingerprint", sa.String(128), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=False),
        sa.Column("input_example", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("gate", sa.JSON(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.UniqueConstraint("model_name", "version", name="uq_versions_model_version"),
    )
    op.create_index("ix_versions_model_fingerprint", "versions", ["model_fingerprint"])

    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "version_id",
            sa.Integer(),
            sa.ForeignKey("versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("version_id", "name", name="uq_artifacts_version_name"),
    )
    op.create_index("ix_artifacts_version_id", "artifacts", ["version_id"])
    op.create_index("ix_artifacts_key", "artifacts", ["key"])

    op.create_table(
        "aliases",
        sa.Column(
            "model_name",
            sa.String(128),
            sa.ForeignKey("models.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
    )

    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("at", _TS, nullable=False),
        sa.Column("who", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
    )
    op.create_index("ix_alias_events_model_alias", "alias_events", ["model_name", "alias"])

    op.create_table(
        "evidence",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("test_id", sa.String(16), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("automated", sa.Boolean(), nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("model_name", sa.String(128), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("artifact", sa.String(1024), nullable=True),
    )
    op.create_index("ix_evidence_project_test", "evidence", ["project", "test_id"])
    op.create_index("ix_evidence_created_at", "evidence", ["created_at"])


def downgrade() -> None:
    """Drop every table, children first."""
    for table in (
        "evidence",
        "alias_events",
        "aliases",
        "artifacts",
        "versions",
        "models",
        "steps",
        "runs",
    ):
        op.drop_table(table)
