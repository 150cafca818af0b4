"""Fixtures for the ML Test Score tests: a real SQLite registry and a fixed clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from readyml.registry import Registry, open_registry
from readyml.types import Evidence

# The fixed "now" every scoring test measures ages from.
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PROJECT = "proj"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry on SQLite in a temporary workspace."""
    registry = open_registry(tmp_path / ".readyml")
    try:
        yield registry
    finally:
        registry.store.close()


def record(
    registry: Registry,
    test_id: str,
    *,
    passed: bool = True,
    automated: bool = True,
    days_ago: float = 1.0,
    run_id: str | None = None,
    project: str = PROJECT,
) -> int:
    """Store one evidence record, ``days_ago`` before :data:`NOW`."""
    created = NOW - timedelta(days=days_ago)
    return registry.add_evidence(
        Evidence(
            test_id=test_id,
            passed=passed,
            automated=automated,
            project=project,
            run_id=run_id if run_id is not None else f"run-{test_id}-{days_ago}",
            created_at=created,
        )
    )


def record_repeated(registry: Registry, test_id: str, *, days_ago: float = 1.0) -> None:
    """Two passing automated runs: enough for a full point."""
    record(registry, test_id, days_ago=days_ago + 1)
    record(registry, test_id, days_ago=days_ago)
