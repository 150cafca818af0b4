"""Run owners, the settling of runs whose owner process ended, and the 0001 → 0002 upgrade."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from readyml.registry import MetadataStore, RunOwner, RunRecord
from readyml.registry._owner import current_owner, owner_alive, process_owner, this_host
from readyml.registry.store import _MIGRATIONS, _make_engine
from support import ended_process_owner

HAS_PROC = Path("/proc/self/stat").exists()
# Seconds to wait for a killed child to show as a zombie before giving up.
ZOMBIE_TIMEOUT_S = 30.0


@pytest.fixture
def store(store_url: str) -> Iterator[MetadataStore]:
    opened = MetadataStore(store_url).open()
    yield opened
    opened.close()


def _abandoned(owner: RunOwner) -> str:
    return (
        f"abandoned: process {owner.pid} on host {owner.host} ended without finishing "
        "the run (killed?)"
    )


def test_start_run_records_this_process_as_its_owner(store: MetadataStore) -> None:
    run = store.start_run("p", {}, {})
    assert run.owner == current_owner()
    assert run.owner is not None and (run.owner.host, run.owner.pid) == (this_host(), os.getpid())
    assert (run.owner.start_ticks is not None) == HAS_PROC
    assert store.get_run(run.id).owner == run.owner
    assert run.to_dict()["owner"] == {
        "host": this_host(),
        "pid": os.getpid(),
        "start_ticks": run.owner.start_ticks,
    }


def test_listing_settles_a_run_whose_owner_ended(store: MetadataStore) -> None:
    owner = ended_process_owner()
    run = store.start_run("p", {}, {}, owner=owner)
    [listed] = store.list_runs("p")
    assert listed.id == run.id
    assert listed.status == "failed"
    assert listed.error == _abandoned(owner)
    assert listed.ended_at is not None and listed.ended_at >= listed.started_at
    assert listed.duration_s is None  # when it died is not known
    assert store.settle_abandoned_runs("p") == []  # settled once


def test_settling_returns_the_runs_it_settled(store: MetadataStore) -> None:
    owner = ended_process_owner()
    run = store.start_run("p", {}, {}, owner=owner)
    [settled] = store.settle_abandoned_runs("p")
    assert settled == store.get_run(run.id)
    assert (settled.status, settled.error) == ("failed", _abandoned(owner))


def test_a_run_whose_owner_is_alive_stays_running(store: MetadataStore) -> None:
    run = store.start_run("p", {}, {})
    assert store.settle_abandoned_runs("p") == []
    assert [r.status for r in store.list_runs("p")] == ["running"]
    assert store.finish_run(run.id, "succeeded").status == "succeeded"


@pytest.mark.skipif(not HAS_PROC, reason="process start times come from /proc")
def test_a_process_that_reuses_the_pid_is_not_the_owner(store: MetadataStore) -> None:
    me = current_owner()
    assert me.start_ticks is not None
    reused = replace(me, start_ticks=me.start_ticks + 1)
    assert owner_alive(me) and not owner_alive(reused)
    run = store.start_run("p", {}, {}, owner=reused)
    assert [r.id for r in store.settle_abandoned_runs("p")] == [run.id]


@pytest.mark.skipif(not HAS_PROC, reason="zombies are told apart through /proc")
def test_a_killed_owner_not_yet_reaped_has_ended(store: MetadataStore) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        owner = process_owner(child.pid)
        run = store.start_run("p", {}, {}, owner=owner)
        assert store.settle_abandoned_runs("p") == []
        child.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + ZOMBIE_TIMEOUT_S
        stat = Path(f"/proc/{child.pid}/stat")
        while stat.read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.01)
        assert [r.id for r in store.settle_abandoned_runs("p")] == [run.id]
    finally:
        child.kill()
        child.wait()


def test_runs_of_other_hosts_and_runs_without_owner_are_left_alone(store: MetadataStore) -> None:
    elsewhere = replace(ended_process_owner(), host=f"not-{this_host()}")
    run = store.start_run("p", {}, {}, owner=elsewhere)
    assert store.settle_abandoned_runs("p") == []
    assert store.list_runs("p")[0].status == "running"
    with store.session(write=True) as session:  # a run recorded before owners (schema 0001)
        session.execute(text("UPDATE runs SET owner_host = NULL, owner_pid = NULL"))
    assert store.get_run(run.id).owner is None
    assert store.settle_abandoned_runs() == []


def test_settling_is_per_project_or_for_all(store: MetadataStore) -> None:
    p = store.start_run("p", {}, {}, owner=ended_process_owner())
    q = store.start_run("q", {}, {}, owner=ended_process_owner())
    assert [r.id for r in store.settle_abandoned_runs("p")] == [p.id]
    assert store.get_run(q.id).status == "running"
    assert {r.id: r.status for r in store.list_runs()} == {p.id: "failed", q.id: "failed"}


def test_a_finished_run_is_never_settled(store: MetadataStore) -> None:
    run = store.start_run("p", {}, {}, owner=ended_process_owner())
    store.finish_run(run.id, "succeeded")
    assert store.settle_abandoned_runs("p") == []
    assert store.get_run(run.id).status == "succeeded"


def test_two_stores_settling_at_once_settle_each_run_once(store_url: str) -> None:
    stores = [MetadataStore(store_url).open() for _ in range(2)]
    ids = {stores[0].start_run("p", {}, {}, owner=ended_process_owner()).id for _ in range(4)}
    barrier = threading.Barrier(len(stores))
    settled: list[list[RunRecord]] = [[] for _ in stores]

    def settle(index: int) -> None:
        barrier.wait()
        settled[index] = stores[index].settle_abandoned_runs("p")

    threads = [threading.Thread(target=settle, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    all_settled = [r.id for records in settled for r in records]
    assert sorted(all_settled) == sorted(ids)  # each exactly once, whoever won
    assert {r.status for r in stores[0].list_runs("p")} == {"failed"}
    for opened in stores:
        opened.close()


# -- migration 0002 ------------------------------------------------------------------


def _migrate(store_url: str, action: str, revision: str) -> None:
    engine = _make_engine(store_url)
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, action)(config, revision)
    finally:
        engine.dispose()


_RUNS_0001 = sa.table(
    "runs",
    sa.column("id", sa.String),
    sa.column("project", sa.String),
    sa.column("status", sa.String),
    sa.column("started_at", sa.DateTime(timezone=True)),
    sa.column("fingerprints", sa.JSON),
    sa.column("params", sa.JSON),
)


def test_a_registry_created_at_0001_upgrades_and_keeps_its_runs(store_url: str) -> None:
    _migrate(store_url, "upgrade", "0001")
    engine = _make_engine(store_url)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(_RUNS_0001).values(
                id="a" * 32,
                project="p",
                status="running",
                started_at=datetime(2026, 1, 1, tzinfo=UTC),
                fingerprints={"data": "d"},
                params={},
            )
        )
    engine.dispose()

    store = MetadataStore(store_url).open()
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            "0003"
        )
    columns = {c["name"] for c in inspect(store.engine).get_columns("runs")}
    assert {"owner_host", "owner_pid", "owner_start_ticks"} <= columns
    old = store.get_run("a" * 32)
    assert (old.status, old.owner, old.fingerprints) == ("running", None, {"data": "d"})
    assert store.settle_abandoned_runs() == []  # no owner: nothing can be told
    new = store.start_run("p", {}, {})
    assert new.owner == current_owner()
    store.close()


def test_0002_downgrades_without_losing_runs_or_steps(store_url: str) -> None:
    store = MetadataStore(store_url).open()
    run = store.start_run("p", {}, {})
    now = datetime.now(UTC)
    store.record_step(
        run.id, "load", status="succeeded", started_at=now, ended_at=now, input_fingerprint="f"
    )
    store.close()
    _migrate(store_url, "downgrade", "0001")
    engine = _make_engine(store_url)
    columns = {c["name"] for c in inspect(engine).get_columns("runs")}
    assert not {"owner_host", "owner_pid", "owner_start_ticks"} & columns
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM steps")).scalar() == 1
    engine.dispose()
    reopened = MetadataStore(store_url).open()  # and up again
    assert reopened.get_run(run.id).owner is None
    reopened.close()
