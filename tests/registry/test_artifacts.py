"""Tests for readyml.registry.artifacts on a local folder and on S3 (moto)."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from readyml.errors import ConfigError, IntegrityError, RegistryError
from readyml.registry.artifacts import ArtifactStore

LABEL = "model 'weather' version 3, file 'model.skops'"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "artifacts"))
    url: str = request.getfixturevalue("s3_url")
    return ArtifactStore(url)


def _overwrite(store: ArtifactStore, key: str, data: bytes) -> None:
    """Change a stored blob behind the store's back."""
    with store.fs.open(store.root + "/" + key, "wb") as handle:
        handle.write(data)


def test_constructor_only_stores_params() -> None:
    store = ArtifactStore("s3://bucket/prefix", storage_options={"key": "k"})
    assert store.url == "s3://bucket/prefix"
    assert store.storage_options == {"key": "k"}
    assert store.root == "bucket/prefix"
    assert store.url_for("a/b") == "s3://bucket/prefix/a/b"


def test_file_url_and_plain_path_are_the_same_root(tmp_path: Path) -> None:
    assert ArtifactStore(f"file://{tmp_path}").root == ArtifactStore(str(tmp_path)).root


def test_put_and_get_round_trip_with_sha(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(100_000))
    info = store.put_file("models/m/1/model.bin", source)
    assert info.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert info.size == 100_000
    assert store.exists("models/m/1/model.bin")
    dest = store.get_file(
        "models/m/1/model.bin", tmp_path / "out" / "model.bin", sha256=info.sha256, label=LABEL
    )
    assert dest.read_bytes() == source.read_bytes()

    small = store.put_bytes("notes/a.txt", b"hello")
    assert store.get_bytes("notes/a.txt", sha256=small.sha256, label=LABEL, size=5) == b"hello"
    assert set(store.list_keys("models")) == {"models/m/1/model.bin"}
    store.delete("notes/a.txt")
    store.delete("notes/a.txt")
    assert not store.exists("notes/a.txt")


def test_local_put_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "a"))
    store.put_bytes("x/y.bin", b"1" * 10)
    store.put_bytes("x/y.bin", b"2" * 10)
    assert [p.name for p in (tmp_path / "a" / "x").iterdir()] == ["y.bin"]


def test_tampered_blob_raises_integrity_error(store: ArtifactStore, tmp_path: Path) -> None:
    info = store.put_bytes("k/model.skops", b"a" * 64)
    _overwrite(store, "k/model.skops", b"b" * 64)
    with pytest.raises(IntegrityError, match=r"version 3, file 'model.skops': sha256 mismatch"):
        store.get_bytes("k/model.skops", sha256=info.sha256, size=info.size, label=LABEL)
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        store.get_file("k/model.skops", tmp_path / "m", sha256=info.sha256, label=LABEL)
    assert not (tmp_path / "m").exists()


def test_truncated_blob_raises_integrity_error(store: ArtifactStore, tmp_path: Path) -> None:
    info = store.put_bytes("k/model.skops", b"a" * 64)
    _overwrite(store, "k/model.skops", b"a" * 10)
    with pytest.raises(IntegrityError, match=r"file 'model.skops': truncated, found 10 of 64"):
        store.get_file(
            "k/model.skops", tmp_path / "m", sha256=info.sha256, size=info.size, label=LABEL
        )


def test_missing_blob_raises_integrity_error(store: ArtifactStore) -> None:
    with pytest.raises(IntegrityError, match=r"file 'model.skops': missing"):
        store.get_bytes("k/none", sha256="0" * 64, label=LABEL)


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a\\b"])
def test_unsafe_keys_are_rejected(tmp_path: Path, key: str) -> None:
    with pytest.raises(RegistryError, match="artifact key"):
        ArtifactStore(str(tmp_path)).put_bytes(key, b"x")


def test_a_bucket_that_does_not_exist_is_one_registry_error(s3_url: str) -> None:
    bucket = s3_url.split("/")[2]
    store = ArtifactStore(s3_url.replace(bucket, bucket + "-missing"))
    with pytest.raises(RegistryError) as info:
        store.put_bytes("models/m/a.bin", b"x")
    message = str(info.value)
    assert message.startswith(f"artifact store {store.url!r}: cannot write 'models/m/a.bin'")
    assert "expected an existing bucket" in message
    assert "\n" not in message


def test_an_s3_endpoint_that_is_down_is_one_registry_error(
    s3_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("READYML_S3_ENDPOINT_URL", f"http://127.0.0.1:{sock.getsockname()[1]}")
    store = ArtifactStore(
        s3_url, storage_options={"config_kwargs": {"retries": {"max_attempts": 1}}}
    )
    source = tmp_path / "a.bin"
    source.write_bytes(b"x")
    calls: list[tuple[str, Callable[[], object]]] = [
        ("write", lambda: store.put_file("k/a.bin", source)),
        ("read", lambda: store.get_bytes("k/a.bin", sha256="0" * 64, label=LABEL)),
        ("check", lambda: store.exists("k/a.bin")),
        ("delete", lambda: store.delete("k/a.bin")),
    ]
    for action, call in calls:
        with pytest.raises(RegistryError, match=f"cannot {action} 'k/a.bin' \\(Endpoint"):
            call()


def test_a_secret_in_the_store_url_never_appears_in_reprs_or_errors() -> None:
    store = ArtifactStore("gs://bucket/prefix?token=s3cretPW")
    assert "s3cretPW" not in repr(store)
    with pytest.raises(ConfigError, match=r"token=\*\*\*") as info:
        store.put_bytes("a/b.txt", b"x")
    assert "s3cretPW" not in str(info.value)
