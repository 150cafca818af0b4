"""The whole pipeline against shared services: PostgreSQL metadata and S3 artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from readyml.config import Project
from readyml.errors import IntegrityError
from readyml.train import check_reproducible, open_project_registry, run_project
from support import write_project


def test_pipeline_on_postgres_and_s3(
    tmp_path: Path, pg_database_url: str, s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("READYML_STORE_URL", pg_database_url)
    monkeypatch.setenv("READYML_ARTIFACTS_URL", s3_url)
    write_project(tmp_path)
    project = Project.load(tmp_path)
    registry = open_project_registry(project)
    assert registry.store.dialect == "postgresql"
    assert registry.artifacts.url_for("x").startswith("s3://")

    first = run_project(project, registry=registry)
    assert first.status == "succeeded", first.error
    assert check_reproducible(project, first, registry=registry).passed
    registry.promote("iris:1", who="test", reason="first")

    # A second process-like view of the same services sees the same registry and cache.
    again = run_project(project, registry=open_project_registry(project))
    assert {s.status for s in again.steps} == {"skipped"}
    champion = registry.get("iris@champion")
    assert champion.version == 1
    assert all(a.key for a in champion.artifacts)
    assert {e.test_id for e in registry.store.list_evidence(project="iris")} >= {
        "infra-1",
        "infra-3",
        "data-1",
    }

    # Tampering with an object in the bucket is caught on load.
    import s3fs

    fs = registry.artifacts.fs
    assert isinstance(fs, s3fs.S3FileSystem)
    target = max(champion.artifacts, key=lambda a: a.size)
    url = registry.artifacts.url_for(target.key)
    fs.pipe(url, b"x" * target.size)
    with pytest.raises(IntegrityError, match=r"'iris' version 1"):
        registry.download(champion, tmp_path / "out")
