"""The artifact store: content-verified blobs on a local folder or S3, through fsspec.

Writes are atomic, so a reader never sees half a file: locally the bytes go to a temporary
name in the destination folder, are flushed to disk, and are renamed over the final name
(``os.replace``); on S3 an object appears only once its upload completed (one PUT, or a
multipart upload that becomes visible only when completed). Every read is checked against
the sha256 (and size) recorded at write time, and a mismatch raises
:class:`~readyml.errors.IntegrityError` naming the thing that was read.

A local write interrupted by an exception removes its temporary file; one killed with
SIGKILL (or by a power loss) leaves it behind, as a hidden ``.NAME.XXXX.tmp`` that no listing
shows and no read uses. :meth:`ArtifactStore.remove_stale_temporaries` deletes those that
no writer touched for an hour (a live writer's file changes with every chunk it writes).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import fsspec

from readyml.errors import ConfigError, IntegrityError, RegistryError
from readyml.registry.records import ArtifactInfo
from readyml.registry.store import redact_url

# Bytes read per chunk when hashing or copying.
CHUNK_BYTES = 1 << 20
# Environment variables naming an S3-compatible endpoint, first match wins.
S3_ENDPOINT_ENV = ("READYML_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL")
# Age after which a temporary file of an atomic write belongs to no live writer.
STALE_TEMPORARY_AGE = timedelta(hours=1)
# Name pattern of those temporary files: ".NAME.XXXXXXXX.tmp", beside the final name.
_TEMPORARY_GLOB = ".*.tmp"


def sha256_file(path: Path) -> tuple[str, int]:
    """Return the sha256 (hex) and size in bytes of a local file."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for chunk in _chunks(handle):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK_BYTES):
        yield chunk


def check_key(key: str) -> str:
    """Return ``key`` if it is a clean relative POSIX path, else raise ``RegistryError``."""
    path = PurePosixPath(key)
    if (
        not key
        or key != key.strip()
        or "\\" in key
        or path.is_absolute()
        or any(part in ("", ".", "..") for part in key.split("/"))
    ):
        raise RegistryError(
            f"artifact key {key!r}: expected a relative path with no '.', '..' or empty parts"
        )
    return key


def _backend_errors() -> tuple[type[BaseException], ...]:
    """What a filesystem raises when its service fails: OSError, and botocore's own errors."""
    try:
        from botocore.exceptions import (  # type: ignore[import-untyped]
            BotoCoreError,
            ClientError,
        )
    except ImportError:
        return (OSError,)
    return (OSError, BotoCoreError, ClientError)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _verify(data_sha: str, data_size: int, *, sha256: str, size: int | None, label: str) -> None:
    if size is not None and data_size != size:
        kind = "truncated" if data_size < size else "too long"
        raise IntegrityError(
            f"{label}: {kind}, found {data_size} of {size} bytes (expected sha256 {sha256})"
        )
    if data_sha != sha256:
        raise IntegrityError(
            f"{label}: sha256 mismatch, expected {sha256}, found {data_sha} "
            f"({data_size} bytes); the file was modified after it was registered"
        )


class ArtifactStore:
    """Blobs under a root URL: a local folder (default) or ``s3://bucket/prefix``.

    The constructor only stores its parameters; the filesystem is created on first use.

    Args:
        url: A local path, a ``file://`` URL, or ``s3://bucket/prefix``.
        storage_options: Extra fsspec options (for S3: ``key``, ``secret``,
            ``endpoint_url``...). The endpoint defaults to ``READYML_S3_ENDPOINT_URL`` or
            ``AWS_ENDPOINT_URL`` when set.

    Example:
        >>> import tempfile
        >>> store = ArtifactStore(tempfile.mkdtemp())
        >>> info = store.put_bytes("a/b.txt", b"hello")
        >>> store.get_bytes("a/b.txt", sha256=info.sha256, label="file 'b.txt'")
        b'hello'
    """

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.storage_options = storage_options
        self._fs: Any = None

    def __repr__(self) -> str:
        return f"ArtifactStore(url={redact_url(self.url)!r})"

    # -- plumbing --------------------------------------------------------------------

    @property
    def protocol(self) -> str:
        """``"file"`` or ``"s3"``."""
        if "://" not in self.url:
            return "file"
        protocol = self.url.split("://", 1)[0].lower()
        if protocol not in ("file", "s3"):
            raise ConfigError(
                f"artifact store URL {redact_url(self.url)!r}: expected a local path, file:// or s3://"
            )
        return protocol

    @property
    def root(self) -> str:
        """The root as a filesystem path: an absolute local path or ``bucket/prefix``."""
        if self.protocol == "file":
            local = self.url[len("file://") :] if self.url.startswith("file://") else self.url
            return str(Path(local).expanduser().resolve())
        return self.url.split("://", 1)[1].strip("/")

    @property
    def fs(self) -> Any:
        """The fsspec filesystem (created on first use)."""
        if self._fs is None:
            self._fs = self._make_fs()
        return self._fs

    def _make_fs(self) -> Any:
        if self.protocol == "file":
            return fsspec.filesystem("file")
        options: dict[str, Any] = {
            # Other processes write the same bucket: never answer from a stale cache.
            "use_listings_cache": False,
            "skip_instance_cache": True,
        }
        endpoint = next((os.environ[n] for n in S3_ENDPOINT_ENV if os.environ.get(n)), None)
        if endpoint:
            options["endpoint_url"] = endpoint
        options.update(self.storage_options or {})
        try:
            return fsspec.filesystem("s3", **options)
        except ImportError as exc:
            raise ConfigError(
                f"artifact store URL {redact_url(self.url)!r} needs s3fs: pip install 'readyml[s3]'"
            ) from exc

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    @contextlib.contextmanager
    def _service(self, action: str, key: str) -> Iterator[None]:
        """Turn a failure of the storage service into one ``RegistryError`` line.

        ``FileNotFoundError`` passes through on reads (the caller names the missing blob);
        on a write it means the bucket or folder does not exist.
        """
        try:
            yield
        except FileNotFoundError as exc:
            if action != "write":
                raise
            raise RegistryError(
                f"artifact store {redact_url(self.url)!r}: cannot write {key!r}: expected an "
                f"existing bucket or folder, found none ({exc})"
            ) from exc
        except _backend_errors() as exc:
            raise RegistryError(
                f"artifact store {redact_url(self.url)!r}: cannot {action} {key!r} "
                f"({_one_line(exc)})"
            ) from exc

    def url_for(self, key: str) -> str:
        """The full URL of a key (``/abs/path/key`` locally, ``s3://bucket/prefix/key``)."""
        if self.protocol == "file":
            return self._path(key)
        return f"s3://{self._path(key)}"

    # -- writing ---------------------------------------------------------------------

    def put_file(self, key: str, local_path: Path) -> ArtifactInfo:
        """Store a local file under ``key``, atomically, and return its sha256 and size."""
        local_path = Path(local_path)
        sha256, size = sha256_file(local_path)
        target = self._path(key)
        with self._service("write", key):
            if self.protocol == "file":
                with local_path.open("rb") as source:
                    self._write_local_atomic(Path(target), _chunks(source))
            else:
                self.fs.put_file(str(local_path), target)
        return ArtifactInfo(key=key, sha256=sha256, size=size)

    def put_bytes(self, key: str, data: bytes) -> ArtifactInfo:
        """Store ``data`` under ``key``, atomically, and return its sha256 and size."""
        target = self._path(key)
        with self._service("write", key):
            if self.protocol == "file":
                self._write_local_atomic(Path(target), iter([data]))
            else:
                self.fs.pipe_file(target, data)
        return ArtifactInfo(key=key, sha256=hashlib.sha256(data).hexdigest(), size=len(data))

    def remove_stale_temporaries(self, *, older_than: timedelta = STALE_TEMPORARY_AGE) -> list[str]:
        """Delete temporary files of local writes that were killed half-way.

        Only a local store has them: an S3 object appears whole or not at all (an aborted
        multipart upload is for the bucket's lifecycle rules to expire).

        Args:
            older_than: Keep temporary files modified more recently: a live writer may
                still own them.

        Returns:
            The deleted files, relative to the root, sorted. A file that cannot be deleted
            is skipped: cleaning up never fails the caller.
        """
        if self.protocol != "file":
            return []
        root = Path(self.root)
        cutoff = time.time() - older_than.total_seconds()
        removed: list[str] = []
        for path in root.rglob(_TEMPORARY_GLOB):
            try:
                if path.is_file() and path.stat().st_mtime <= cutoff:
                    path.unlink()
                    removed.append(path.relative_to(root).as_posix())
            except OSError:
                # Renamed by its writer or removed by another process meanwhile, or not
                # ours to delete: cleaning up must never fail the caller.
                continue
        return sorted(removed)

    @staticmethod
    def _write_local_atomic(target: Path, chunks: Iterator[bytes]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    # -- reading ---------------------------------------------------------------------

    def get_bytes(self, key: str, *, sha256: str, label: str, size: int | None = None) -> bytes:
        """Read a blob and verify it.

        Args:
            key: The blob's key.
            sha256: The sha256 recorded when it was written.
            label: What the blob is, for error messages, e.g.
                ``"model 'weather' version 3, file 'model.skops'"``.
            size: The size recorded when it was written, to tell truncation apart.

        Raises:
            IntegrityError: The blob is missing, truncated, or its sha256 differs.
        """
        try:
            with self._service("read", key):
                data: bytes = self.fs.cat_file(self._path(key))
        except FileNotFoundError as exc:
            raise IntegrityError(
                f"{label}: missing, expected {redact_url(self.url_for(key))} (sha256 {sha256})"
            ) from exc
        _verify(hashlib.sha256(data).hexdigest(), len(data), sha256=sha256, size=size, label=label)
        return data

    def get_file(
        self, key: str, dest: Path, *, sha256: str, label: str, size: int | None = None
    ) -> Path:
        """Copy a blob to ``dest``, verified; ``dest`` appears only if the check passed.

        Raises:
            IntegrityError: The blob is missing, truncated, or its sha256 differs.
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            try:
                with self._service("read", key):
                    self.fs.get_file(self._path(key), tmp_name)
            except FileNotFoundError as exc:
                raise IntegrityError(
                    f"{label}: missing, expected {redact_url(self.url_for(key))} (sha256 {sha256})"
                ) from exc
            found_sha, found_size = sha256_file(tmp)
            _verify(found_sha, found_size, sha256=sha256, size=size, label=label)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""
        with self._service("check", key):
            return bool(self.fs.exists(self._path(key)))

    def delete(self, key: str) -> None:
        """Delete a blob; deleting a missing blob is not an error."""
        with contextlib.suppress(FileNotFoundError), self._service("delete", key):
            self.fs.rm_file(self._path(key))

    def list_keys(self, prefix: str = "") -> dict[str, datetime]:
        """Return every key under ``prefix`` with its last-modified time (UTC)."""
        base = self.root if not prefix else self._path(prefix.rstrip("/"))
        try:
            with self._service("list", prefix or "/"):
                found: dict[str, dict[str, Any]] = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        keys: dict[str, datetime] = {}
        for path, info in found.items():
            key = path[len(self.root) + 1 :] if path.startswith(self.root + "/") else path
            if PurePosixPath(key).name.startswith("."):
                continue  # an atomic write in progress
            keys[key] = _modified(info)
        return keys


def _modified(info: dict[str, Any]) -> datetime:
    value = info.get("LastModified", info.get("mtime", info.get("created")))
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.now(UTC)
