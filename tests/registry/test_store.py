"""Tests for readyml.registry.store: runs, steps, cached steps, evidence, migrations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from readyml.errors import ConfigError, RegistryError
from readyml.registry._tables import Base
from readyml.registry.store import MetadataStore, redact_url
from readyml.types import Evidence

TABLES = {
    "alembic_version",
    "alias_events",
    "aliases",
    "artifacts",
    "evidence",
    "models",
    "runs",
    "steps",
    "version_status_events",
    "versions",
}


@pytest.fixture
def store(store_url: str) -> Iterator[MetadataStore]:
    opened = MetadataStore(store_url).open()
    yield opened
    opened.close()


def test_constructor_only_stores_the_url() -> None:
    store = MetadataStore("sqlite:////nonexistent-dir/x.db")
    assert store.url == "sqlite:////nonexistent-dir/x.db"
    assert store.dialect == "sqlite"


def test_open_migrates_a_fresh_database_to_head(store: MetadataStore) -> None:
    assert set(inspect(store.engine).get_table_names()) == TABLES
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0003"


def test_opening_twice_is_idempotent_and_keeps_data(store_url: str) -> None:
    first = MetadataStore(store_url).open()
    run = first.start_run("p", {"data": "d1"}, {})
    first.close()
    second = MetadataStore(store_url).open()
    second.open()
    assert second.get_run(run.id).project == "p"
    second.close()


def test_migrations_match_the_orm_tables(store: MetadataStore) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path}/ws/readyml.db").open()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def test_a_file_that_is_no_database_is_one_line_naming_the_store(tmp_path: Path) -> None:
    path = tmp_path / "readyml.db"
    path.write_bytes(b"not a database, " * 64)
    with pytest.raises(RegistryError) as info:
        MetadataStore(f"sqlite:///{path}").open()
    assert str(info.value).endswith("cannot open ((sqlite3.DatabaseError) file is not a database)")
    assert "\n" not in str(info.value)


def test_a_postgresql_driver_that_is_not_installed_names_the_one_to_use() -> None:
    with pytest.raises(ConfigError, match=r"use postgresql\+psycopg:// .*not asyncpg"):
        MetadataStore("postgresql+asyncpg://user:secret@127.0.0.1/db").open()


def test_unsupported_url_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="expected a sqlite or postgresql URL"):
        MetadataStore("mysql://localhost/x").open()


def test_run_lifecycle_records_timestamps_and_duration(store: MetadataStore) -> None:
    run = store.start_run("weather", {"data": "d1", "code": "c1"}, {"seed": 7})
    assert run.status == "running"
    assert run.started_at.tzinfo is not None
    done = store.finish_run(run.id, "failed", error="boom")
    assert done.status == "failed"
    assert done.error == "boom"
    assert done.ended_at is not None and done.ended_at >= done.started_at
    assert done.duration_s is not None and done.duration_s >= 0
    fetched = store.get_run(run.id)
    assert fetched == done
    assert fetched.fingerprints == {"data": "d1", "code": "c1"}
    assert fetched.params == {"seed": 7}


def test_list_runs_is_newest_first_and_filters_by_project(store: MetadataStore) -> None:
    ids = [store.start_run("a", {}, {"i": i}).id for i in range(3)]
    store.start_run("b", {}, {})
    assert [run.id for run in store.list_runs("a")] == ids[::-1]
    assert len(store.list_runs("a", limit=2)) == 2
    assert len(store.list_runs()) == 4


def test_unknown_run_raises_registry_error(store: MetadataStore) -> None:
    with pytest.raises(RegistryError, match="run 'nope' not found"):
        store.get_run("nope")
    with pytest.raises(RegistryError, match="run 'nope' not found"):
        store.finish_run("nope", "succeeded")


def _step(store: MetadataStore, run_id: str, name: str, fp: str, status: str = "succeeded") -> int:
    now = datetime.now(UTC)
    record = store.record_step(
        run_id,
        name,
        status=status,  # type: ignore[arg-type]
        started_at=now,
        ended_at=now + timedelta(seconds=1),
        input_fingerprint=fp,
        output_fingerprint=f"out-{fp}",
        outputs={"model": {"key": "k", "sha256": "s"}},
        message="ok",
    )
    return record.id


def test_steps_are_recorded_in_order(store: MetadataStore) -> None:
    run = store.start_run("p", {}, {})
    _step(store, run.id, "load", "f1")
    _step(store, run.id, "train", "f2")
    steps = store.steps_for_run(run.id)
    assert [step.name for step in steps] == ["load", "train"]
    assert steps[0].duration_s == pytest.approx(1.0)
    assert steps[1].outputs == {"model": {"key": "k", "sha256": "s"}}


def test_find_cached_step_returns_latest_succeeded_match(store: MetadataStore) -> None:
    first = store.start_run("p", {}, {})
    old = _step(store, first.id, "train", "fp")
    store.finish_run(first.id, "failed")
    second = store.start_run("p", {}, {})
    new = _step(store, second.id, "train", "fp")
    _step(store, second.id, "train", "fp", status="failed")
    other_project = store.start_run("q", {}, {})
    _step(store, other_project.id, "train", "fp")

    cached = store.find_cached_step("p", "train", "fp")
    assert cached is not None and cached.id == new != old
    assert store.find_cached_step("p", "train", "other") is None
    assert store.find_cached_step("p", "evaluate", "fp") is None


def test_last_step_successes_are_per_step_over_every_run_of_the_project(
    store: MetadataStore,
) -> None:
    first = store.start_run("p", {}, {})
    _step(store, first.id, "load", "f1")
    _step(store, first.id, "train", "f2")
    later = store.start_run("p", {}, {})
    _step(store, later.id, "load", "f1")
    _step(store, later.id, "train", "f2", status="failed")
    _step(store, store.start_run("q", {}, {}).id, "evaluate", "f3")
    steps = {s.name: s for run in (first, later) for s in store.steps_for_run(run.id)}
    success = store.last_step_successes("p")
    assert set(success) == {"load", "train"}
    assert success["load"] == steps["load"].ended_at  # the later run's load
    assert success["train"] < success["load"] and success["train"].tzinfo is not None
    assert store.last_step_successes("none") == {}


def test_record_step_rejects_unknown_status_and_run(store: MetadataStore) -> None:
    run = store.start_run("p", {}, {})
    with pytest.raises(RegistryError, match="status 'done'"):
        _step(store, run.id, "train", "fp", status="done")
    with pytest.raises(RegistryError, match="run 'missing' not found"):
        _step(store, "missing", "train", "fp")


def test_evidence_round_trips_and_filters(store: MetadataStore) -> None:
    early = datetime(2026, 1, 1, tzinfo=UTC)
    store.add_evidence(
        Evidence("data-1", True, True, "p", details={"n": 1}, created_at=early, run_id="r")
    )
    evidence_id = store.add_evidence(
        Evidence("infra-3", False, False, "p", model_name="m", version=2, artifact="a/b")
    )
    store.add_evidence(Evidence("data-1", True, True, "other"))
    assert isinstance(evidence_id, int)

    everything = store.list_evidence(project="p")
    assert [e.test_id for e in everything] == ["data-1", "infra-3"]
    assert everything[0].details == {"n": 1}
    assert everything[0].created_at == early
    assert everything[1].model_name == "m" and everything[1].version == 2
    assert everything[1].created_at is not None and everything[1].created_at.tzinfo is not None
    assert [e.project for e in store.list_evidence(test_id="data-1")] == ["p", "other"]
    assert [e.test_id for e in store.list_evidence("p", since=early + timedelta(days=1))] == [
        "infra-3"
    ]
    assert store.delete_evidence("p", test_id="data-1") == 1
    assert [e.test_id for e in store.list_evidence("p")] == ["infra-3"]


def test_a_hand_damaged_evidence_row_is_a_registry_error(store: MetadataStore) -> None:
    # PostgreSQL's JSON column refuses text that is not JSON; SQLite stores anything.
    damages = ["'[1, 2]'"] + (["'{not json'"] if store.dialect == "sqlite" else [])
    row_id = store.add_evidence(Evidence("data-1", True, True, "p", details={"n": 1}))
    for details in damages:
        with store.engine.begin() as connection:
            connection.execute(text(f"UPDATE evidence SET details = {details} WHERE id = {row_id}"))
        with pytest.raises(RegistryError, match="an evidence row is damaged"):
            store.list_evidence(project="p")


@pytest.mark.parametrize(
    "url",
    [
        "mysql://admin:s3cretPW@db:3306/readyml",
        "postgresql+psycopg://admin:s3cretPW@db:54x2/readyml",
        "postgresql+psycopg://admin:s3cretPW@db:5432:1/readyml",
    ],
)
def test_a_bad_url_is_one_config_error_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError, match="metadata store URL") as info:
        MetadataStore(url).open()
    assert "s3cretPW" not in str(info.value)
    assert "admin:***@db" in str(info.value)
    assert "s3cretPW" not in repr(MetadataStore(url))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://127.0.0.1:1/readyml?user=u&password=s3cretPW",
        "postgresql+psycopg://u@127.0.0.1:1/readyml?sslmode=disable&PassWord=s3cretPW",
        "postgresql+psycopg://u:s3cretPW@127.0.0.1:1/readyml?sslpassword=s3cretPW",
        "mysql://db/readyml?token=s3cretPW;pwd=s3cretPW",
    ],
)
def test_a_password_in_the_query_string_never_appears_in_errors(url: str) -> None:
    with pytest.raises((ConfigError, RegistryError)) as info:
        MetadataStore(url).open()
    assert "s3cretPW" not in str(info.value)
    assert "=***" in str(info.value)
    assert "s3cretPW" not in repr(MetadataStore(url))


def test_redact_url_keeps_what_is_not_secret() -> None:
    shown = redact_url("s3://bucket/prefix?region=eu-west-1&X-Amz-Security-Token=s3cretPW")
    assert shown == "s3://bucket/prefix?region=eu-west-1&X-Amz-Security-Token=***"
    assert redact_url("/tmp/store/models/a?b") == "/tmp/store/models/a?b"
