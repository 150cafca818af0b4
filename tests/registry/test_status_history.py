"""The status trail of versions: one event per status change, and the 0002 → 0003 upgrade."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from readyml.errors import AliasError, RegistryError, VersionNotFound
from readyml.registry import ArtifactStore, MetadataStore, Registry, StatusEvent
from readyml.registry.registry import IMPORTED
from readyml.registry.store import _MIGRATIONS, _make_engine

VETO = {"decision": "vetoed", "failed": ["accuracy 0.41 < 0.50", "slice 'rain' regressed"]}


@pytest.fixture
def registry(store_url: str, tmp_path: Path) -> Iterator[Registry]:
    store = MetadataStore(store_url)
    yield Registry(store, ArtifactStore(str(tmp_path / "artifacts")))
    store.close()


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights")
    return path


def _register(registry: Registry, weights: Path, fp: str = "fp", **kw: object) -> int:
    version = registry.register(
        "weather",
        files={"model.bin": weights},
        model_fingerprint=fp,
        **kw,  # type: ignore[arg-type]
    )
    return version.version


def _trail(registry: Registry, version: int | None = None) -> list[tuple[object, ...]]:
    return [
        (e.version, e.from_status, e.to_status, e.who, e.reason)
        for e in registry.status_history("weather", version)
    ]


def test_every_status_change_is_an_event_with_who_and_why(
    registry: Registry, weights: Path
) -> None:
    _register(registry, weights)
    registry.set_status("weather", 1, "vetoed", who="ana", reason="leaks the label")
    registry.set_status("weather", 1, "candidate", who="bo", reason="false alarm")
    archived = registry.set_status("weather", 1, "archived", who="ana", reason="retired")
    assert _trail(registry) == [
        (1, None, "candidate", None, ""),
        (1, "candidate", "vetoed", "ana", "leaks the label"),
        (1, "vetoed", "candidate", "bo", "false alarm"),
        (1, "candidate", "archived", "ana", "retired"),
    ]
    events = registry.status_history("weather", 1)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert all(e.at.tzinfo is not None and e.gate_decision is None for e in events)
    # The tag still holds the latest person's change, at the time of its event.
    change = archived.tags["status_change"]
    assert (change["by"], change["at"]) == ("ana", events[-1].at.isoformat())
    assert events[-1].ref == "weather:1"
    assert events[-1].to_dict() == {
        "id": events[-1].id,
        "model_name": "weather",
        "version": 1,
        "from_status": "candidate",
        "to_status": "archived",
        "at": events[-1].at.isoformat(),
        "who": "ana",
        "reason": "retired",
        "gate_decision": None,
    }


def test_a_status_set_by_the_gate_or_code_has_no_person(registry: Registry, weights: Path) -> None:
    _register(registry, weights, fp="a", status="vetoed", gate=VETO)
    registry.set_status("weather", 1, "blessed", gate={"decision": "blessed", "failed": []})
    registry.set_status("weather", 1, "archived")
    events = registry.status_history("weather")
    assert [(e.from_status, e.to_status, e.who, e.gate_decision) for e in events] == [
        (None, "vetoed", None, "vetoed"),
        ("vetoed", "blessed", None, "blessed"),
        ("blessed", "archived", None, None),
    ]
    # The gate's veto keeps its failed checks: a later gate replaces the version's own.
    assert events[0].reason == "accuracy 0.41 < 0.50; slice 'rain' regressed"
    assert [e.reason for e in events[1:]] == ["", ""]


def test_a_call_that_keeps_the_status_is_recorded_too(registry: Registry, weights: Path) -> None:
    """A person confirming the gate's veto takes it over; the trail says so."""
    _register(registry, weights, status="vetoed", gate=VETO)
    registry.set_status("weather", 1, "vetoed", who="ana", reason="confirmed")
    assert _trail(registry)[-1] == (1, "vetoed", "vetoed", "ana", "confirmed")


def test_a_refused_status_change_records_nothing(registry: Registry, weights: Path) -> None:
    read = registry.get(f"weather:{_register(registry, weights, fp='a')}")
    _register(registry, weights, fp="b")
    registry.promote("weather:2", who="ana", reason="ok")
    before = _trail(registry)
    with pytest.raises(AliasError, match="expected a version that is not 'champion'"):
        registry.set_status("weather", 2, "vetoed", who="ana", reason="bad")
    assert _trail(registry) == before
    registry.set_status("weather", 1, "vetoed", who="ana", reason="leaks the label")
    before = _trail(registry)
    with pytest.raises(RegistryError, match="changed meanwhile"):
        registry.set_status("weather", 1, "blessed", if_unchanged=read)
    with pytest.raises(RegistryError, match="version status: expected one of"):
        registry.set_status("weather", 1, "great")  # type: ignore[arg-type]
    with pytest.raises(VersionNotFound):
        registry.set_status("weather", 9, "vetoed", who="ana", reason="r")
    assert _trail(registry) == before
    assert registry.get("weather:1").status == "vetoed"


def test_history_of_one_version_and_of_unknown_ones(registry: Registry, weights: Path) -> None:
    _register(registry, weights, fp="a")
    _register(registry, weights, fp="b", status="blessed")
    registry.set_status("weather", 1, "archived", who="ana", reason="old")
    assert _trail(registry) == [
        (1, None, "candidate", None, ""),
        (2, None, "blessed", None, ""),
        (1, "candidate", "archived", "ana", "old"),
    ]
    assert _trail(registry, 2) == [(2, None, "blessed", None, "")]
    with pytest.raises(VersionNotFound, match=r"expected a registered version \(versions: 1, 2\)"):
        registry.status_history("weather", 3)
    with pytest.raises(VersionNotFound, match="expected a registered model"):
        registry.status_history("rain")


def test_an_imported_version_starts_its_trail_here(
    registry: Registry, weights: Path, tmp_path: Path
) -> None:
    _register(registry, weights, status="vetoed", gate=VETO)
    registry.set_status("weather", 1, "candidate", who="ana", reason="false alarm")
    target = Registry(
        MetadataStore(f"sqlite:///{tmp_path / 'target' / 'readyml.db'}"),
        ArtifactStore(str(tmp_path / "target" / "artifacts")),
    )
    target.import_version(registry.get("weather:1"), files={"model.bin": weights})
    [event] = target.status_history("weather")
    assert (event.from_status, event.to_status, event.who, event.reason, event.gate_decision) == (
        None,
        "candidate",
        None,
        IMPORTED,
        None,
    )
    target.store.close()


# -- migration 0003 ------------------------------------------------------------------


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


_MODELS = sa.table("models", sa.column("name", sa.String), sa.column("created_at", sa.DateTime))
_VERSIONS = sa.table(
    "versions",
    *(sa.column(name, sa.String) for name in ("model_name", "status", "model_fingerprint")),
    sa.column("version", sa.Integer),
    sa.column("created_at", sa.DateTime(timezone=True)),
    *(sa.column(name, sa.JSON) for name in ("lineage", "metrics", "signature", "input_example")),
    sa.column("tags", sa.JSON),
    sa.column("gate", sa.JSON),
    sa.column("description", sa.Text),
)
# As set_status wrote it before 0003; the second in another offset, as a hand might.
_TAGS_0002 = [
    {
        "status_change": {
            "status": "vetoed",
            "by": "ana",
            "reason": "leaks",
            "at": "2026-01-02T03:04:05.123456+00:00",
        }
    },
    {
        "status_change": {
            "status": "candidate",
            "by": "bo",
            "reason": "",
            "at": "2026-01-01T05:00:00+02:00",
        }
    },
    {"team": "ml"},
    {"status_change": {"status": "vetoed", "by": "cy", "at": "last tuesday"}},
    {"status_change": "vetoed by dee"},
]


def _registry_at_0002(store_url: str) -> None:
    _migrate(store_url, "upgrade", "0002")
    engine = _make_engine(store_url)
    created = datetime(2025, 12, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(sa.insert(_MODELS).values(name="weather", created_at=created))
        for number, tags in enumerate(_TAGS_0002, start=1):
            connection.execute(
                sa.insert(_VERSIONS).values(
                    model_name="weather",
                    version=number,
                    status="vetoed" if number == 1 else "candidate",
                    model_fingerprint=f"fp{number}",
                    created_at=created,
                    lineage={},
                    metrics={},
                    signature={},
                    input_example=[],
                    tags=tags,
                    gate=None,
                    description="",
                )
            )
    engine.dispose()


def test_a_registry_at_0002_upgrades_and_keeps_each_person_s_change(
    store_url: str, tmp_path: Path
) -> None:
    _registry_at_0002(store_url)
    store = MetadataStore(store_url).open()
    with store.engine.connect() as connection:
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert revision == "0003"
    registry = Registry(store, ArtifactStore(str(tmp_path / "artifacts")))
    events = registry.status_history("weather")
    assert [(e.version, e.from_status, e.to_status, e.who, e.reason, e.at) for e in events] == [
        (2, None, "candidate", "bo", "", datetime(2026, 1, 1, 3, 0, tzinfo=UTC)),
        (1, None, "vetoed", "ana", "leaks", datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
    ]
    # The old versions keep working: their tags, and new events after the carried ones.
    version = registry.get("weather:1")
    assert (version.status, version.tags["status_change"]["by"]) == ("vetoed", "ana")
    registry.set_status("weather", 1, "candidate", who="bo", reason="fixed")
    registry.set_status("weather", 4, "archived")
    assert isinstance(registry.status_history("weather", 1)[-1], StatusEvent)
    assert [(e.version, e.from_status, e.who) for e in registry.status_history("weather")][2:] == [
        (1, "vetoed", "bo"),
        (4, "candidate", None),
    ]
    store.close()


def test_0003_downgrades_to_the_tags_and_up_again(store_url: str, tmp_path: Path) -> None:
    store = MetadataStore(store_url)
    registry = Registry(store, ArtifactStore(str(tmp_path / "artifacts")))
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"weights")
    _register(registry, weights)
    registry.set_status("weather", 1, "vetoed", who="ana", reason="leaks")
    store.close()
    _migrate(store_url, "downgrade", "0002")
    engine = _make_engine(store_url)
    assert "version_status_events" not in inspect(engine).get_table_names()
    engine.dispose()
    store.open()  # and up again: the person's change is carried over from the tag
    assert _trail(registry) == [(1, None, "vetoed", "ana", "leaks")]
    assert registry.get("weather:1").status == "vetoed"
    store.close()


def test_a_who_too_long_for_the_store_is_a_registry_error_and_changes_nothing(
    registry: Registry, weights: Path
) -> None:
    _register(registry, weights)
    with pytest.raises(RegistryError, match=r"^who: expected at most 128 characters, found 200$"):
        registry.set_status("weather", 1, "vetoed", who="x" * 200, reason="r")
    with pytest.raises(RegistryError, match=r"^who: expected at most 128 characters"):
        registry.promote("weather:1", who="x" * 200, reason="r")
    assert registry.get("weather:1").status == "candidate"
    assert [e.to_status for e in registry.status_history("weather")] == ["candidate"]
