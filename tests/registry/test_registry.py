"""Tests for readyml.registry.registry: versions, aliases, promotion, rollback, downloads."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from readyml.errors import AliasError, IntegrityError, RegistryError, VersionNotFound
from readyml.registry import ArtifactStore, MetadataStore, ModelVersion, Registry, open_registry
from readyml.registry.records import ArtifactInfo
from readyml.registry.registry import status_set_by_person
from readyml.types import Evidence, ModelRef, VersionStatus

VETO = {"decision": "veto", "reasons": ["accuracy 0.41 < 0.50", "slice 'rain' regressed"]}
# The shape of every user-facing message (``serve/_http.py`` splits 4xx bodies by it).
FIELD_MESSAGE = re.compile(r"[^:\n]+: expected .+?, found .+")


@pytest.fixture
def registry(store_url: str, tmp_path: Path) -> Iterator[Registry]:
    store = MetadataStore(store_url)
    yield Registry(store, ArtifactStore(str(tmp_path / "artifacts")))
    store.close()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "src" / "onnx").mkdir(parents=True)
    (tmp_path / "src" / "model.skops").write_bytes(b"weights" * 100)
    (tmp_path / "src" / "onnx" / "model.onnx").write_bytes(b"onnx" * 50)
    return {
        "model.skops": tmp_path / "src" / "model.skops",
        "onnx/model.onnx": tmp_path / "src" / "onnx" / "model.onnx",
    }


def _register(
    registry: Registry, files: dict[str, Path], fp: str = "fp", **kw: object
) -> ModelVersion:
    return registry.register(
        "weather",
        files=files,
        model_fingerprint=fp,
        lineage={"data": "d1"},
        metrics={"accuracy": 0.8},
        signature={"inputs": [{"name": "temp", "type": "float"}]},
        input_example=[{"temp": 1.5}],
        **kw,  # type: ignore[arg-type]
    )


def test_register_stores_everything_and_numbers_from_one(
    registry: Registry, files: dict[str, Path]
) -> None:
    v1 = _register(registry, files, tags={"team": "ml"}, run_id="r1", description="first")
    assert (v1.name, v1.version, v1.status) == ("weather", 1, "candidate")
    assert [a.name for a in v1.artifacts] == ["model.skops", "onnx/model.onnx"]
    assert all(a.key.startswith("models/weather/") for a in v1.artifacts)
    got = registry.get("weather:1")
    assert got == v1
    assert got.metrics == {"accuracy": 0.8}
    assert got.input_example == [{"temp": 1.5}]
    assert got.tags == {"team": "ml"}
    assert got.to_dict()["created_at"] == v1.created_at.isoformat()


def test_version_numbers_are_monotonic(registry: Registry, files: dict[str, Path]) -> None:
    versions = [_register(registry, files, fp=f"fp{i}").version for i in range(4)]
    assert versions == [1, 2, 3, 4]
    assert registry.get("weather").version == 4
    assert registry.get(ModelRef("weather", version=2)).model_fingerprint == "fp1"
    assert [v.version for v in registry.list_versions("weather")] == [1, 2, 3, 4]


def test_concurrent_registers_get_distinct_consecutive_versions(
    registry: Registry, files: dict[str, Path]
) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        numbers = list(pool.map(lambda i: _register(registry, files, fp=str(i)).version, range(8)))
    assert sorted(numbers) == list(range(1, 9))


def test_concurrent_registers_of_one_fingerprint_make_one_version(
    registry: Registry, files: dict[str, Path], store_url: str, tmp_path: Path
) -> None:
    # Each thread has its own registry, as two processes would; all find nothing, then race.
    others = [MetadataStore(store_url) for _ in range(3)]
    registries = [registry] + [Registry(s, registry.artifacts) for s in others]
    # Opened (and migrated) one at a time: the race under test is the registration's.
    assert all(r.find_by_fingerprint("weather", "same") is None for r in registries)
    start = threading.Barrier(len(registries), timeout=60)

    def register(index: int) -> ModelVersion:
        start.wait()
        return _register(
            registries[index], files, fp="same", run_id=f"r{index}", if_new_fingerprint=True
        )

    try:
        with ThreadPoolExecutor(max_workers=len(registries)) as pool:
            versions = list(pool.map(register, range(len(registries))))
    finally:
        for store in others:
            store.close()
    assert {v.version for v in versions} == {1}
    assert [v.version for v in registry.list_versions("weather")] == [1]
    winner = registry.get("weather:1")
    assert sum(v.run_id == winner.run_id for v in versions) == len(versions)
    # The losers' uploads are removed: only the version's own files are left.
    kept = set(registry.artifacts.list_keys("models/weather"))
    assert kept == {a.key for a in winner.artifacts}
    other = _register(registry, files, fp="other", if_new_fingerprint=True)
    assert other.version == 2


def test_find_by_fingerprint(registry: Registry, files: dict[str, Path]) -> None:
    _register(registry, files, fp="a")
    second = _register(registry, files, fp="b")
    found = registry.find_by_fingerprint("weather", "b")
    assert found is not None and found.version == second.version
    assert registry.find_by_fingerprint("weather", "zzz") is None
    assert registry.find_by_fingerprint("other", "a") is None


def test_get_errors_name_what_exists(registry: Registry, files: dict[str, Path]) -> None:
    with pytest.raises(
        VersionNotFound,
        match=r"^model: expected a registered model \(models: none\), found 'weather'$",
    ):
        registry.get("weather")
    _register(registry, files)
    with pytest.raises(
        VersionNotFound,
        match=r"^model 'weather' alias: expected an existing alias \(aliases: none\), found "
        r"'champion'; make a version the champion: readyml models promote weather:N, or "
        r"readyml run --promote$",
    ):
        registry.get("weather@champion")
    with pytest.raises(VersionNotFound, match=r"\(aliases: none\), found 'staging'$"):
        registry.get("weather@staging")
    with pytest.raises(
        VersionNotFound,
        match=r"^model 'weather' version: expected a registered version \(versions: 1\), "
        r"found 9$",
    ):
        registry.get("weather:9")
    missing = r"^model: expected a registered model \(models: weather\), found 'x'$"
    with pytest.raises(VersionNotFound, match=missing):
        registry.list_versions("x")
    with pytest.raises(VersionNotFound, match=missing):
        registry.history("x")
    with pytest.raises(VersionNotFound, match=missing):
        registry.rollback("x", who="t", reason="r")
    with pytest.raises(VersionNotFound, match=missing):
        registry.promote("x:1", who="t", reason="r")


@pytest.mark.parametrize(
    ("ref", "found"),
    [
        ("weather:0", "0"),
        ("weather:99999999999999999999999", "99999999999999999999999"),
        (f"weather:{2**31}", str(2**31)),
    ],
)
def test_versions_no_store_can_hold_are_not_found(
    registry: Registry, files: dict[str, Path], ref: str, found: str
) -> None:
    """A number past the INTEGER column is "no such version", never a driver overflow."""
    _register(registry, files)
    with pytest.raises(VersionNotFound, match=rf"\(versions: 1\), found {found}$"):
        registry.get(ref)
    with pytest.raises(VersionNotFound, match=rf"found {found}$"):
        registry.set_alias("weather", "staging", int(found), who="t", reason="r")
    with pytest.raises(VersionNotFound, match=rf"found {found}$"):
        registry.set_status("weather", int(found), "blessed")
    assert registry.history("weather") == []


def test_non_ascii_digits_are_not_a_version(registry: Registry, files: dict[str, Path]) -> None:
    _register(registry, files)
    with pytest.raises(
        VersionNotFound, match=r"expected NAME, NAME:VERSION or NAME@ALIAS in ASCII"
    ):
        registry.get("weather:\u0661")  # ARABIC-INDIC DIGIT ONE, which int() reads as 1
    with pytest.raises(VersionNotFound, match="in ASCII"):
        registry.promote("weather:\u0661", who="t", reason="r")
    assert registry.history("weather") == []


def test_registry_errors_follow_the_field_expected_found_pattern(
    registry: Registry, files: dict[str, Path]
) -> None:
    """The server splits 4xx messages into field/expected/found; these must fit."""
    _register(registry, files, status="vetoed", gate=VETO)
    _register(registry, files)
    registry.promote("weather:2", who="t", reason="r")
    attempts: list[Callable[[], object]] = [
        lambda: registry.get("nope"),
        lambda: registry.get("weather:7"),
        lambda: registry.get("weather@nope"),
        lambda: registry.promote("weather:1", who="t", reason="r"),
        lambda: registry.rollback("weather", who="t", reason="r"),
        lambda: registry.set_status("weather", 2, "archived"),
        lambda: registry.set_alias("weather", "bad alias", 2, who="t", reason="r"),
    ]
    for attempt in attempts:
        with pytest.raises(RegistryError) as caught:
            attempt()
        assert FIELD_MESSAGE.fullmatch(str(caught.value)), str(caught.value)


def test_register_rejects_bad_input(registry: Registry, files: dict[str, Path]) -> None:
    for name in ("bad name", "a/b", "..", "démo", "a" * 129, "demo:1", " demo"):
        with pytest.raises(RegistryError) as caught:
            registry.register(name, files=files, model_fingerprint="f")
        assert str(caught.value) == (
            "model name: expected a bare name of 1-128 characters (a name starts with a "
            f"letter or digit, then letters, digits, '_', '.', '-'), found {name!r}"
        )
    with pytest.raises(RegistryError, match=r"^model 'm' files: expected at least one file"):
        registry.register("m", files={}, model_fingerprint="f")
    with pytest.raises(RegistryError, match="artifact key"):
        registry.register("m", files={"../x": files["model.skops"]}, model_fingerprint="f")
    with pytest.raises(
        RegistryError,
        match=r"^model 'm' file 'x': expected a file, found '/nonexistent' \(missing",
    ):
        registry.register("m", files={"x": Path("/nonexistent")}, model_fingerprint="f")
    with pytest.raises(
        RegistryError,
        match=r"^version status: expected one of candidate, blessed, vetoed, archived, "
        r"found 'great'$",
    ):
        registry.register("m", files=files, model_fingerprint="f", status="great")  # type: ignore[arg-type]
    assert registry.list_models() == []


def test_promote_set_alias_history_and_summary(registry: Registry, files: dict[str, Path]) -> None:
    for i in range(3):
        _register(registry, files, fp=str(i))
    first = registry.promote("weather:1", who="ana", reason="initial")
    assert first is not None
    assert (first.from_version, first.to_version, first.action) == (None, 1, "set")
    registry.set_alias("weather", "champion", 2, who="bo", reason="better")
    registry.set_alias("weather", "staging", 3, who="bo", reason="try")
    assert registry.get("weather@champion").version == 2
    assert registry.get("weather:2").aliases == ["champion"]

    history = registry.history("weather", "champion")
    assert [(e.from_version, e.to_version, e.who) for e in history] == [
        (None, 1, "ana"),
        (1, 2, "bo"),
    ]
    assert len(registry.history("weather")) == 3
    [summary] = registry.list_models()
    assert (summary.name, summary.latest_version) == ("weather", 3)
    assert summary.aliases == {"champion": 2, "staging": 3}


def test_rollback_returns_to_previous_and_twice_undoes(
    registry: Registry, files: dict[str, Path]
) -> None:
    for i in range(3):
        _register(registry, files, fp=str(i))
    with pytest.raises(VersionNotFound, match="found 'champion'; make a version the champion"):
        registry.rollback("weather", who="ana", reason="oops")
    registry.promote("weather:1", who="ana", reason="a")
    with pytest.raises(
        AliasError,
        match=r"^model 'weather' alias 'champion': expected a move from an earlier version, "
        r"found nothing to roll back to",
    ):
        registry.rollback("weather", who="ana", reason="oops")
    registry.promote("weather:3", who="ana", reason="b")

    back = registry.rollback("weather", who="ops", reason="errors up")
    assert (back.from_version, back.to_version, back.action) == (3, 1, "rollback")
    assert registry.get("weather@champion").version == 1
    again = registry.rollback("weather", who="ops", reason="false alarm")
    assert again.to_version == 3


def test_vetoed_or_archived_version_never_becomes_champion(
    registry: Registry, files: dict[str, Path]
) -> None:
    _register(registry, files, status="vetoed", gate=VETO)
    with pytest.raises(
        AliasError,
        match=r"^model 'weather' version 1: expected a version that may become 'champion' "
        r"\(not vetoed or archived\), found it vetoed \(reasons: accuracy 0.41 < 0.50",
    ):
        registry.promote("weather:1", who="ana", reason="yolo")
    registry.set_alias("weather", "shadow", 1, who="ana", reason="observe")

    _register(registry, files)
    registry.promote("weather:2", who="ana", reason="ok")
    _register(registry, files)
    registry.promote("weather:3", who="ana", reason="ok")
    registry.set_status("weather", 2, "archived")
    with pytest.raises(AliasError, match="found it archived"):
        registry.rollback("weather", who="ana", reason="back")
    assert registry.get("weather@champion").version == 3


@pytest.mark.parametrize("status", ["vetoed", "archived"])
def test_promote_and_rollback_refuse_a_vetoed_or_archived_version_for_every_alias(
    registry: Registry, files: dict[str, Path], status: VersionStatus
) -> None:
    """A server may follow any alias (NAME@staging), so none may move onto such a version."""
    for fp in ("a", "b"):
        _register(registry, files, fp=fp)
    registry.promote("weather:1", alias="challenger", who="ana", reason="try")
    registry.promote("weather:2", alias="challenger", who="ana", reason="better")
    registry.set_status("weather", 1, status, who="ana", reason="retired")
    for alias in ("staging", "challenger", "champion"):
        with pytest.raises(
            AliasError,
            match=rf"^model 'weather' version 1: expected a version that may become '{alias}' "
            rf"\(not vetoed or archived\), found it {status} \(by ana: retired\)$",
        ):
            registry.promote("weather:1", alias=alias, who="bo", reason="r")
    with pytest.raises(AliasError, match=rf"'challenger'.*found it {status} \(by ana: retired\)$"):
        registry.rollback("weather", alias="challenger", who="bo", reason="back")
    assert registry.get("weather@challenger").version == 2
    # set_alias is the audit call: a rollout records its decisions about a candidate on
    # canary even after a person vetoed it; champion stays out of reach.
    registry.set_alias("weather", "canary", 1, who="rollout", reason="rollback: refused")
    with pytest.raises(AliasError, match="may become 'champion'"):
        registry.set_alias("weather", "champion", 1, who="bo", reason="r")
    assert [(e.alias, e.to_version) for e in registry.history("weather")] == [
        ("challenger", 1),
        ("challenger", 2),
        ("canary", 1),
    ]


def test_a_status_change_guarded_by_an_earlier_read_never_overwrites_a_veto_made_since(
    registry: Registry, files: dict[str, Path]
) -> None:
    """The gate of a re-run blesses a version it vetoed before, unless a person acted since."""
    read = _register(registry, files, fp="a", status="vetoed")
    registry.set_status("weather", 1, "vetoed", who="ana", reason="leaks the label")
    with pytest.raises(RegistryError, match=r"found 'vetoed' \(by ana: leaks the label\)"):
        registry.set_status("weather", 1, "blessed", if_unchanged=read)
    assert registry.get("weather:1").status == "vetoed"
    again = registry.get("weather:1")
    assert registry.set_status("weather", 1, "archived", if_unchanged=again).status == "archived"


def test_a_refusal_gives_the_reason_of_whoever_set_the_status(
    registry: Registry, files: dict[str, Path]
) -> None:
    blessed = {
        "decision": "blessed",
        "reasons": [{"rule": "accuracy >= 0.5", "passed": True, "message": "accuracy passed"}],
        "failed": [],
    }
    _register(registry, files, fp="a", status="blessed", gate=blessed)
    registry.set_status("weather", 1, "archived", who="ana", reason="retired")
    with pytest.raises(AliasError, match=r"found it archived \(by ana: retired\)$"):
        registry.promote("weather:1", who="bo", reason="r")
    # Archived by code: the checks a blessed gate passed explain nothing.
    _register(registry, files, fp="b", status="blessed", gate=blessed)
    registry.set_status("weather", 2, "archived")
    with pytest.raises(AliasError, match=r"found it archived \(reasons: no reasons recorded\)$"):
        registry.promote("weather:2", who="bo", reason="r")
    # Vetoed by the gate: its failed checks only, even where no "failed" list was kept.
    gate = {
        "decision": "vetoed",
        "reasons": [
            {"passed": True, "message": "accuracy passed"},
            {"passed": False, "message": "slice 'rain' regressed"},
        ],
    }
    _register(registry, files, fp="c", status="vetoed", gate=gate)
    with pytest.raises(AliasError, match=r"found it vetoed \(reasons: slice 'rain' regressed\)$"):
        registry.promote("weather:3", who="bo", reason="r")
    # A person's restore, then a veto by code: the person's words no longer explain it.
    registry.set_status("weather", 3, "candidate", who="ana", reason="false alarm")
    registry.set_status("weather", 3, "vetoed")
    with pytest.raises(AliasError, match=r"found it vetoed \(reasons: slice 'rain' regressed\)$"):
        registry.promote("weather:3", who="bo", reason="r")


def test_status_set_by_person_only_while_the_status_is_theirs(
    registry: Registry, files: dict[str, Path]
) -> None:
    _register(registry, files, status="vetoed", gate=VETO)
    assert status_set_by_person(registry.get("weather:1")) is None
    registry.set_status("weather", 1, "candidate", who="ana", reason="false alarm")
    change = status_set_by_person(registry.get("weather:1"))
    assert change is not None and (change["by"], change["reason"]) == ("ana", "false alarm")
    registry.set_status("weather", 1, "vetoed")
    assert status_set_by_person(registry.get("weather:1")) is None


@pytest.mark.parametrize("status", ["vetoed", "archived"])
def test_the_champion_cannot_be_vetoed_or_archived(
    registry: Registry, files: dict[str, Path], status: VersionStatus
) -> None:
    """Otherwise the alias serving follows would name a version that may never hold it."""
    _register(registry, files)
    registry.promote("weather:1", who="ana", reason="ok")
    with pytest.raises(
        AliasError,
        match=rf"^model 'weather' version 1: expected a version that is not 'champion' to "
        rf"become {status}, found it is 'champion'",
    ):
        registry.set_status("weather", 1, status, gate=VETO)
    unchanged = registry.get("weather@champion")
    assert (unchanged.version, unchanged.status, unchanged.gate) == (1, "candidate", None)
    registry.set_status("weather", 1, "blessed")
    _register(registry, files)
    registry.promote("weather:2", who="ana", reason="better")
    assert registry.set_status("weather", 1, status).status == status


def test_promoting_the_current_version_changes_nothing(
    registry: Registry, files: dict[str, Path]
) -> None:
    _register(registry, files)
    _register(registry, files)
    registry.set_alias("weather", "staging", 2, who="ana", reason="try")
    moved = registry.promote("weather:1", who="ana", reason="first")
    assert moved is not None and (moved.from_version, moved.to_version) == (None, 1)
    assert registry.promote("weather:1", who="bo", reason="again") is None
    assert registry.promote("weather@champion", who="bo", reason="again") is None
    assert registry.promote("weather@staging", alias="staging", who="bo", reason="r") is None
    assert [(e.from_version, e.to_version) for e in registry.history("weather", "champion")] == [
        (None, 1)
    ]
    # set_alias is the audit call: it records every call, moved or not.
    registry.set_alias("weather", "champion", 1, who="ops", reason="audit")
    assert len(registry.history("weather", "champion")) == 2


def test_racing_promotes_of_one_version_record_one_move(
    registry: Registry, files: dict[str, Path]
) -> None:
    _register(registry, files)
    _register(registry, files)
    registry.promote("weather:1", who="ana", reason="first")
    with ThreadPoolExecutor(max_workers=4) as pool:
        events = list(
            pool.map(lambda i: registry.promote("weather:2", who=f"w{i}", reason="race"), range(8))
        )
    assert sum(event is not None for event in events) == 1
    moves = [(e.from_version, e.to_version) for e in registry.history("weather", "champion")]
    assert moves == [(None, 1), (1, 2)]


def test_racing_rollbacks_undo_the_last_move_once(
    registry: Registry, files: dict[str, Path]
) -> None:
    for i in range(3):
        _register(registry, files, fp=str(i))
    registry.promote("weather:1", who="ana", reason="a")
    registry.promote("weather:3", who="ana", reason="b")
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda i: _rollback_or_error(registry, f"ops{i}"), range(2)))
    # The first takes 3 back to 1; the second, reading that move, takes 1 back to 3.
    # Reading the move outside the write transaction, both took 3 -> 1 (the second a 1 -> 1).
    assert sorted(results) == [(1, 3), (3, 1)]


def _rollback_or_error(registry: Registry, who: str) -> tuple[int | None, int | None]:
    event = registry.rollback("weather", who=who, reason="race")
    return event.from_version, event.to_version


def test_alias_names_are_checked_by_every_alias_call(
    registry: Registry, files: dict[str, Path]
) -> None:
    _register(registry, files)
    registry.promote("weather:1", who="ana", reason="a")
    refused = r"^alias: expected 1-64 letters, digits, '_', '.', '-', found "
    with pytest.raises(AliasError, match=refused + r"'champion\\n'$"):
        registry.set_alias("weather", "champion\n", 1, who="ana", reason="r")
    with pytest.raises(AliasError, match=refused + r"'bad alias'$"):
        registry.rollback("weather", alias="bad alias", who="ana", reason="r")
    with pytest.raises(AliasError, match=refused + r"'bad alias'$"):
        registry.history("weather", "bad alias")
    with pytest.raises(AliasError, match=refused + r"'bad alias'$"):
        registry.promote("weather:1", alias="bad alias", who="ana", reason="r")
    unknown = r"expected an existing alias \(aliases: champion\), found 'staging'$"
    with pytest.raises(VersionNotFound, match=unknown):
        registry.history("weather", "staging")
    with pytest.raises(VersionNotFound, match=unknown):
        registry.rollback("weather", alias="staging", who="ana", reason="r")
    assert [e.to_version for e in registry.history("weather")] == [1]


def test_a_veto_is_explained_by_the_gates_failed_checks(
    registry: Registry, files: dict[str, Path]
) -> None:
    gate = {
        "decision": "veto",
        "reasons": [{"rule": "accuracy >= 1.01", "passed": False, "value": 0.93}],
        "failed": ["accuracy 0.9300 < 1.0100"],
    }
    _register(registry, files, status="vetoed", gate=gate)
    with pytest.raises(AliasError, match=r"\(reasons: accuracy 0.9300 < 1.0100\)$"):
        registry.promote("weather:1", who="ana", reason="yolo")


def test_set_status_records_gate(registry: Registry, files: dict[str, Path]) -> None:
    _register(registry, files)
    blessed = registry.set_status("weather", 1, "blessed", gate={"decision": "bless"})
    assert blessed.status == "blessed" and blessed.gate == {"decision": "bless"}
    with pytest.raises(RegistryError, match="version status: expected one of"):
        registry.set_status("weather", 1, "great")  # type: ignore[arg-type]
    with pytest.raises(VersionNotFound):
        registry.set_status("weather", 5, "blessed")


def test_a_status_set_by_a_person_keeps_who_and_why(
    registry: Registry, files: dict[str, Path]
) -> None:
    _register(registry, files, tags={"team": "ml"})
    vetoed = registry.set_status("weather", 1, "vetoed", who="ana", reason="leaks the label")
    change = vetoed.tags["status_change"]
    assert (change["status"], change["by"], change["reason"]) == (
        "vetoed",
        "ana",
        "leaks the label",
    )
    assert vetoed.tags["team"] == "ml"
    assert registry.get("weather:1").tags["status_change"] == change
    # The gate's own changes (no person) leave the tag as the person wrote it.
    assert registry.set_status("weather", 1, "candidate").tags["status_change"] == change


def test_download_verifies_every_file(
    registry: Registry, files: dict[str, Path], tmp_path: Path
) -> None:
    version = _register(registry, files)
    out = registry.download(version, tmp_path / "dl")
    assert (out / "onnx" / "model.onnx").read_bytes() == files["onnx/model.onnx"].read_bytes()
    assert registry.download(version, out) == out  # again, over the files it wrote
    assert (out / "onnx" / "model.onnx").read_bytes() == files["onnx/model.onnx"].read_bytes()

    onnx_key = next(a.key for a in version.artifacts if a.name == "onnx/model.onnx")
    blob = Path(registry.artifacts.url_for(onnx_key))
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    with pytest.raises(
        IntegrityError, match=r"model 'weather' version 1, file 'onnx/model.onnx': sha256"
    ):
        registry.download(version, tmp_path / "dl2")
    # All of the files or none: nothing is left that could be taken for the version.
    assert not (tmp_path / "dl2").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dl2")] == []
    blob.write_bytes(b"on")
    with pytest.raises(IntegrityError, match=r"version 1, file 'onnx/model.onnx': truncated"):
        registry.download(version, tmp_path / "dl3")


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Registry]:
    """Another registry (SQLite) to import versions from."""
    workspace = tmp_path / "source"
    registry = open_registry(
        workspace,
        store_url=f"sqlite:///{workspace / 'readyml.db'}",
        artifacts_url=str(workspace / "artifacts"),
    )
    yield registry
    registry.store.close()


def _third_version(source: Registry, files: dict[str, Path], tmp_path: Path) -> ModelVersion:
    """Version 3 of ``weather`` in ``source``, blessed and tagged, and its downloaded files."""
    for number in (1, 2):
        _register(source, files, fp=f"fp{number}")
    third = _register(
        source,
        files,
        fp="fp3",
        tags={"team": "ml"},
        status="blessed",
        gate={"decision": "bless", "reasons": []},
        run_id="r3",
        parent_version=2,
        description="third",
    )
    source.download(third, tmp_path / "third")
    return third


def _downloaded(version: ModelVersion, tmp_path: Path) -> dict[str, Path]:
    return {a.name: tmp_path / "third" / a.name for a in version.artifacts}


def test_import_version_keeps_the_number_and_everything_recorded(
    registry: Registry, source: Registry, files: dict[str, Path], tmp_path: Path
) -> None:
    third = _third_version(source, files, tmp_path)
    copy = registry.import_version(third, files=_downloaded(third, tmp_path))
    assert copy.ref == "weather:3"
    assert registry.get("weather:3") == copy
    assert [v.version for v in registry.list_versions("weather")] == [3]
    ignored = {"artifacts", "aliases"}
    assert {k: v for k, v in copy.to_dict().items() if k not in ignored} == {
        k: v for k, v in third.to_dict().items() if k not in ignored
    }
    assert [(a.name, a.sha256, a.size) for a in copy.artifacts] == [
        (a.name, a.sha256, a.size) for a in third.artifacts
    ]
    registry.set_alias("weather", "champion", 3, who="me", reason="imported")
    assert registry.get("weather@champion").version == 3
    assert _register(registry, files, fp="next").version == 4


def test_import_version_refuses_a_number_the_registry_holds(
    registry: Registry, source: Registry, files: dict[str, Path], tmp_path: Path
) -> None:
    third = _third_version(source, files, tmp_path)
    for number in (1, 2, 3):
        _register(registry, files, fp=f"mine{number}")
    before = registry.artifacts.list_keys("models")
    with pytest.raises(RegistryError, match=r"model 'weather' version 3: expected a number"):
        registry.import_version(third, files=_downloaded(third, tmp_path))
    assert registry.get("weather:3").model_fingerprint == "mine3"
    assert registry.artifacts.list_keys("models").keys() == before.keys()


def test_import_version_verifies_every_file_by_sha256(
    registry: Registry, source: Registry, files: dict[str, Path], tmp_path: Path
) -> None:
    third = _third_version(source, files, tmp_path)
    downloaded = _downloaded(third, tmp_path)
    tampered = downloaded["onnx/model.onnx"]
    tampered.write_bytes(tampered.read_bytes()[:-1] + b"!")
    with pytest.raises(
        IntegrityError, match=r"model 'weather' version 3, file 'onnx/model.onnx': expected sha256"
    ):
        registry.import_version(third, files=downloaded)
    with pytest.raises(VersionNotFound):
        registry.get("weather:3")
    assert registry.artifacts.list_keys("models") == {}
    with pytest.raises(RegistryError, match=r"expected files model.skops, onnx/model.onnx"):
        registry.import_version(third, files={"model.skops": downloaded["model.skops"]})


def test_gc_deletes_only_unreferenced_blobs(registry: Registry, files: dict[str, Path]) -> None:
    version = _register(registry, files)
    orphan = registry.artifacts.put_bytes("models/weather/dead/model.skops", b"x")
    assert registry.gc() == []  # too young: could be an upload in progress
    assert registry.gc(grace=timedelta(0)) == [orphan.key]
    assert all(registry.artifacts.exists(a.key) for a in version.artifacts)


def test_evidence_passthrough(registry: Registry) -> None:
    registry.add_evidence(Evidence("model-1", True, True, "p"))
    assert [e.test_id for e in registry.list_evidence("p")] == ["model-1"]


def test_open_registry_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("READYML_STORE_URL", raising=False)
    monkeypatch.delenv("READYML_ARTIFACTS_URL", raising=False)
    default = open_registry(tmp_path / "ws")
    assert default.store.url == f"sqlite:///{(tmp_path / 'ws' / 'readyml.db').resolve()}"
    assert default.artifacts.url == str((tmp_path / "ws" / "artifacts").resolve())

    monkeypatch.setenv("READYML_STORE_URL", "sqlite:///env.db")
    monkeypatch.setenv("READYML_ARTIFACTS_URL", "s3://env/prefix")
    from_env = open_registry(tmp_path)
    assert (from_env.store.url, from_env.artifacts.url) == ("sqlite:///env.db", "s3://env/prefix")
    explicit = open_registry(tmp_path, store_url="sqlite:///x.db", artifacts_url="s3://b/p")
    assert (explicit.store.url, explicit.artifacts.url) == ("sqlite:///x.db", "s3://b/p")
    # A typo in the shared store's path creates nothing, not a new empty registry.
    typo = tmp_path / "typo" / "store"
    monkeypatch.setenv("READYML_STORE_URL", f"sqlite:///{typo / 'readyml.db'}")
    with pytest.raises(RegistryError, match="expected a SQLite file in an existing folder"):
        open_registry(tmp_path / "ws2")
    assert not (tmp_path / "typo").exists()
    # A new store's own folder, in one that exists, is made.
    monkeypatch.setenv("READYML_STORE_URL", f"sqlite:///{tmp_path / 'store' / 'readyml.db'}")
    made = open_registry(tmp_path / "ws3")
    assert made.list_models() == []
    made.store.close()
    assert (tmp_path / "store" / "readyml.db").is_file()


def test_registry_on_s3_artifacts(
    store_url: str, s3_url: str, files: dict[str, Path], tmp_path: Path
) -> None:
    registry = open_registry(tmp_path / "ws", store_url=store_url, artifacts_url=s3_url)
    version = _register(registry, files)
    registry.download(registry.get("weather"), tmp_path / "dl")
    assert (tmp_path / "dl" / "model.skops").read_bytes() == files["model.skops"].read_bytes()
    key = version.artifacts[0].key
    registry.artifacts.put_bytes(key, b"tampered")
    with pytest.raises(IntegrityError, match=r"model 'weather' version 1, file 'model\.skops'"):
        registry.download(version, tmp_path / "dl2")
    registry.store.close()


class _FailingStore(ArtifactStore):
    """A store whose service goes down after the first upload (deletes fail too)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.puts = 0

    def put_file(self, key: str, local_path: Path) -> ArtifactInfo:
        self.puts += 1
        if self.puts > 1:
            raise RegistryError(f"artifact store down: cannot write {key!r}")
        return super().put_file(key, local_path)

    def delete(self, key: str) -> None:
        raise RegistryError(f"artifact store down: cannot delete {key!r}")


def test_a_store_failing_mid_upload_reports_the_upload_and_registers_nothing(
    store_url: str, tmp_path: Path, files: dict[str, Path]
) -> None:
    store = MetadataStore(store_url)
    registry = Registry(store, _FailingStore(str(tmp_path / "artifacts")))
    with pytest.raises(RegistryError, match=r"cannot write 'models/weather/\w+/onnx/model.onnx'"):
        _register(registry, files)
    with pytest.raises(VersionNotFound):
        registry.get("weather")
    store.close()
