"""Alembic environment for the metadata store.

``MetadataStore`` runs the migrations programmatically and hands its own connection in
through ``config.attributes["connection"]``, so no ``alembic.ini`` and no URL are needed
here. Offline (SQL script) mode is not supported.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from readyml.registry._tables import Base

# An arbitrary constant: the key of the PostgreSQL advisory lock that serialises
# concurrent migrations of one database (two servers starting at once).
_PG_MIGRATION_LOCK = 7_202_611_270


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("readyml migrations run online only, through MetadataStore")

_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError("readyml migrations need config.attributes['connection']")
_run(_connection)
