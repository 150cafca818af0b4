"""The model registry: versions, aliases and their audit trail, over the two stores.

A version becomes visible all at once or not at all. :meth:`Registry.register` first
uploads every file under a fresh staging prefix (``models/NAME/UUID/FILE``), and only then,
in one database transaction, numbers the version and inserts its version and artifact rows.
A process killed at any point therefore leaves either a complete version or none (plus
orphan blobs, which :meth:`Registry.gc` removes). Version numbers come from
``max(version) + 1`` under a lock on the model's row (``SELECT ... FOR UPDATE`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), with a unique constraint as the backstop.
Under the same lock, ``register(..., if_new_fingerprint=True)`` looks for a version with the
model's fingerprint and returns it instead, so concurrent runs of one model make one version.
:meth:`Registry.import_version` copies a version from another registry the same way, but
keeps its number (a baked image serves ``iris:7`` as 7), and refuses a number already held.

Aliases (``champion``, ``staging``...) point at versions; every move is an event with who,
when and why, and ``rollback`` moves an alias back to where its last move took it from.
``promote`` onto the version an alias already names changes nothing and records nothing.
Statuses have the same trail: registering, importing and every :meth:`Registry.set_status`
add a status event (from, to, who, why, when, and the gate's decision) in the transaction
that sets the status, so the trail never misses a change nor holds one that failed.
A vetoed or archived version can never become ``champion``, and the champion cannot be
vetoed or archived while it holds the alias. ``promote`` and ``rollback`` refuse such a
version for every alias (a server may follow ``NAME@ALIAS`` for any alias); ``set_alias``,
the audit call, refuses it only for ``champion``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import func, make_url, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from readyml.errors import AliasError, IntegrityError, RegistryError, VersionNotFound
from readyml.registry._tables import (
    NAME_LEN,
    SHORT_LEN,
    Alias,
    AliasEventRow,
    Artifact,
    Model,
    StatusEventRow,
    Version,
)
from readyml.registry.artifacts import ArtifactStore, check_key
from readyml.registry.records import (
    VERSION_STATUSES,
    AliasAction,
    AliasEvent,
    ArtifactInfo,
    ModelSummary,
    ModelVersion,
    StatusEvent,
)
from readyml.registry.store import MetadataStore, utcnow
from readyml.types import JSON, NAME_RULE, Evidence, ModelRef, VersionStatus

# The alias that serving follows by default.
CHAMPION = "champion"
# Statuses that may never hold the champion alias.
_NO_CHAMPION: tuple[VersionStatus, ...] = ("vetoed", "archived")
# Key prefix of every model file in the artifact store.
MODELS_PREFIX = "models"
# Orphan blobs younger than this may belong to a registration still in progress.
GC_GRACE = timedelta(hours=1)
_ALIAS = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# The largest version number a store can hold (a 32-bit INTEGER column on PostgreSQL).
_MAX_VERSION = 2**31 - 1
# How many names an error message lists before it says "...".
_LIST_IN_MESSAGE = 10
# The reason of a version's first status event when it was copied from another registry.
IMPORTED = "imported from another registry"


def _listing(items: list[str]) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:_LIST_IN_MESSAGE])
    return shown + (", ..." if len(items) > _LIST_IN_MESSAGE else "")


def _check_name(name: str) -> str:
    try:
        ref = ModelRef.parse(name)
    except ValueError:
        ref = None
    if ref is None or ref.version is not None or ref.alias is not None or ref.name != name:
        raise RegistryError(
            f"model name: expected a bare name of 1-128 characters ({NAME_RULE}), found {name!r}"
        )
    return name


def _check_who(who: str | None) -> None:
    if who is not None and len(who) > NAME_LEN:
        raise RegistryError(f"who: expected at most {NAME_LEN} characters, found {len(who)}")


def _check_alias(alias: str) -> str:
    if not _ALIAS.fullmatch(alias):
        raise AliasError(f"alias: expected 1-64 letters, digits, '_', '.', '-', found {alias!r}")
    return alias


def _parse_ref(text: str) -> ModelRef:
    """Parse a reference as :meth:`ModelRef.parse` does, refusing non-ASCII digits.

    ``ModelRef.parse`` matches ``\\d``, so it reads ``demo:`` followed by an Arabic-Indic
    digit one as ``demo:1``.
    """
    try:
        if not text.isascii():
            raise ValueError(
                f"model reference {text!r}: expected NAME, NAME:VERSION or NAME@ALIAS in "
                f"ASCII ({NAME_RULE})"
            )
        return ModelRef.parse(text)
    except ValueError as exc:
        raise VersionNotFound(str(exc)) from exc


def _check_status(status: str) -> VersionStatus:
    for known in VERSION_STATUSES:
        if status == known:
            return known
    raise RegistryError(
        f"version status: expected one of {', '.join(VERSION_STATUSES)}, found {status!r}"
    )


def _veto_reasons(gate: JSON | None) -> str:
    """The gate's failed checks as text (its ``failed`` messages, as the run printed them)."""
    gate = gate or {}
    failed = gate.get("failed")
    if isinstance(failed, list) and failed:
        return "; ".join(str(message) for message in failed)
    reasons = gate.get("reasons") or []
    if isinstance(reasons, str):
        return reasons
    # Checks the gate passed explain no veto (a blessed gate lists only those).
    unmet = [r for r in reasons if not (isinstance(r, Mapping) and r.get("passed"))]
    return (
        "; ".join(str(r.get("message", r)) if isinstance(r, Mapping) else str(r) for r in unmet)
        or "no reasons recorded"
    )


def _person_change(status: str, tags: Mapping[str, Any]) -> JSON | None:
    change = tags.get("status_change")
    if isinstance(change, dict) and change.get("status") == status:
        return change
    return None


def status_set_by_person(version: ModelVersion) -> JSON | None:
    """The ``status_change`` tag (status, by, reason, at) if a person set the current status.

    The tag keeps a person's latest change only, so it explains the status only while the
    status is still the one it records; ``None`` means the gate (or code) set it.
    """
    return _person_change(version.status, version.tags)


def _status_reason(status: str, tags: Mapping[str, Any], gate: JSON | None) -> str:
    """Why a version holds its status: who set it and why, else the gate's failed checks."""
    change = _person_change(status, tags)
    if change is not None:
        return f"by {change.get('by')}: {change.get('reason') or 'no reason given'}"
    return f"reasons: {_veto_reasons(gate)}"


def _status_event_row(
    name: str,
    version: int,
    from_status: str | None,
    to_status: str,
    *,
    who: str | None,
    reason: str,
    gate: Mapping[str, Any] | None,
) -> StatusEventRow:
    """A status event; a change by the gate with no reason given keeps its failed checks."""
    _check_who(who)
    decision = None if gate is None else gate.get("decision")
    if not reason and who is None and gate is not None and to_status == "vetoed":
        reason = _veto_reasons(dict(gate))
    return StatusEventRow(
        model_name=name,
        version=version,
        from_status=from_status,
        to_status=to_status,
        at=utcnow(),
        who=who,
        reason=reason,
        gate_decision=None if decision is None else str(decision)[:SHORT_LEN],
    )


def _status_event(row: StatusEventRow) -> StatusEvent:
    return StatusEvent(
        id=row.id,
        model_name=row.model_name,
        version=row.version,
        from_status=None if row.from_status is None else _check_status(row.from_status),
        to_status=_check_status(row.to_status),
        at=row.at,
        who=row.who,
        reason=row.reason,
        gate_decision=row.gate_decision,
    )


def _check_copy(label: str, expected: ArtifactInfo, found: ArtifactInfo) -> None:
    if (found.sha256, found.size) != (expected.sha256, expected.size):
        raise IntegrityError(
            f"{label}, file {expected.name!r}: expected sha256 "
            f"{expected.sha256} ({expected.size} bytes), found {found.sha256} "
            f"({found.size} bytes)"
        )


def _event(row: AliasEventRow) -> AliasEvent:
    action: AliasAction = "rollback" if row.action == "rollback" else "set"
    return AliasEvent(
        id=row.id,
        model_name=row.model_name,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        at=row.at,
        who=row.who,
        reason=row.reason,
        action=action,
    )


class Registry:
    """Model versions, aliases and their history, backed by a metadata and an artifact store.

    Args:
        store: Where versions, aliases and events are recorded.
        artifacts: Where model files are kept.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> workspace = Path(tempfile.mkdtemp())
        >>> (workspace / "model.bin").write_bytes(b"weights")
        7
        >>> registry = open_registry(workspace)
        >>> v1 = registry.register("demo", files={"model.bin": workspace / "model.bin"},
        ...                        model_fingerprint="f1")
        >>> registry.promote("demo:1", who="me", reason="first").to_version
        1
        >>> registry.promote("demo:1", who="me", reason="again") is None  # already champion
        True
        >>> registry.get("demo@champion").version
        1
    """

    def __init__(self, store: MetadataStore, artifacts: ArtifactStore) -> None:
        self.store = store
        self.artifacts = artifacts

    def __repr__(self) -> str:
        return f"Registry(store={self.store!r}, artifacts={self.artifacts!r})"

    # -- registering -----------------------------------------------------------------

    def register(
        self,
        name: str,
        *,
        files: Mapping[str, Path],
        model_fingerprint: str,
        lineage: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        signature: Mapping[str, Any] | None = None,
        input_example: list[JSON] | None = None,
        tags: Mapping[str, Any] | None = None,
        status: VersionStatus = "candidate",
        gate: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        parent_version: int | None = None,
        description: str = "",
        if_new_fingerprint: bool = False,
    ) -> ModelVersion:
        """Register a new version of ``name``; it becomes visible only once complete.

        Args:
            name: The model's name.
            files: The version's files: relative name (``"model.skops"``,
                ``"onnx/model.onnx"``) to local path.
            model_fingerprint: Fingerprint of the trained model (used to find duplicates).
            lineage: Where the model came from: run, data, code and config fingerprints.
            metrics: Evaluation metrics.
            signature: Input schema and output description.
            input_example: A few input rows.
            tags: Free-form labels.
            status: The initial status.
            gate: The gate's decision and reasons, if it ran.
            run_id: The pipeline run that produced the model.
            parent_version: The version this one was derived from (fine-tuning,
                compression).
            description: One human paragraph.
            if_new_fingerprint: Register only if no version of ``name`` has
                ``model_fingerprint``; else return the newest that has, and store nothing.
                Checked in the transaction that numbers the version, under the model's
                lock, so two processes registering one model at once make one version.

        Returns:
            The new version, numbered one above the model's newest; or, with
            ``if_new_fingerprint``, the version registered before (its ``run_id`` and
            ``created_at`` are its own, not this call's).

        Raises:
            RegistryError: The name, a file name or the status is invalid, or a file
                cannot be read.
        """
        _check_name(name)
        status = _check_status(status)
        row = Version(
            status=status,
            run_id=run_id,
            parent_version=parent_version,
            model_fingerprint=model_fingerprint,
            lineage=dict(lineage or {}),
            metrics=dict(metrics or {}),
            signature=dict(signature or {}),
            input_example=list(input_example or []),
            tags=dict(tags or {}),
            gate=None if gate is None else dict(gate),
            description=description,
        )
        return self._add_version(
            name, files, row, number=None, if_new_fingerprint=if_new_fingerprint
        )

    def import_version(self, version: ModelVersion, *, files: Mapping[str, Path]) -> ModelVersion:
        """Copy a version of another registry into this one, keeping its number.

        Everything recorded about the version is kept: status, gate, metrics, signature,
        lineage, tags, input example, fingerprint, run, parent, description and creation
        time. Aliases and their history are not: they belong to the registry, so point
        them here with :meth:`set_alias`. Nor is its status history: here it starts with
        one event, from no status to its status, for :data:`IMPORTED`. Like
        :meth:`register`, the version becomes visible only once every file is stored.

        Args:
            version: The version to copy (from :meth:`get` on the source registry).
            files: Its files, downloaded (:meth:`download`): the name of each of
                ``version.artifacts`` to a local path.

        Returns:
            The copy, numbered ``version.version``.

        Raises:
            RegistryError: This registry already holds that number of the model, or
                ``files`` does not name exactly the version's files.
            IntegrityError: A file's sha256 or size differs from the version's record.

        Example:
            >>> import tempfile
            >>> source, target = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
            >>> (source / "model.bin").write_bytes(b"weights")
            7
            >>> old = open_registry(source)
            >>> for _ in range(3):
            ...     _ = old.register("demo", files={"model.bin": source / "model.bin"},
            ...                      model_fingerprint="f1")
            >>> v3 = old.get("demo:3")
            >>> open_registry(target).import_version(
            ...     v3, files={"model.bin": source / "model.bin"}).ref
            'demo:3'
        """
        _check_name(version.name)
        status = _check_status(version.status)
        expected = {artifact.name: artifact for artifact in version.artifacts}
        if set(files) != set(expected):
            raise RegistryError(
                f"model {version.name!r} version {version.version}: expected files "
                f"{_listing(sorted(expected))}, found {_listing(sorted(files))}"
            )
        with self.store.session() as session:
            if self._holds(session, version.name, version.version):
                raise self._held_error(version.name, version.version)
        row = Version(
            status=status,
            run_id=version.run_id,
            parent_version=version.parent_version,
            model_fingerprint=version.model_fingerprint,
            lineage=dict(version.lineage),
            metrics=dict(version.metrics),
            signature=dict(version.signature),
            input_example=list(version.input_example),
            tags=dict(version.tags),
            gate=None if version.gate is None else dict(version.gate),
            description=version.description,
            created_at=version.created_at,
        )
        return self._add_version(
            version.name, files, row, number=version.version, expected=expected
        )

    def _add_version(
        self,
        name: str,
        files: Mapping[str, Path],
        row: Version,
        *,
        number: int | None,
        expected: Mapping[str, ArtifactInfo] | None = None,
        if_new_fingerprint: bool = False,
    ) -> ModelVersion:
        """Upload ``files`` under a staging prefix, then insert ``row``, its artifacts and
        its first status event.

        ``number`` None means "one above the newest, created now" (a registration); a
        number must be free (an import).
        With ``expected``, each stored file must match its sha256 and size. With
        ``if_new_fingerprint``, a version holding ``row``'s fingerprint already is returned
        instead, and the uploaded files are removed.
        """
        if not files:
            raise RegistryError(f"model {name!r} files: expected at least one file, found none")
        for relname, local in files.items():
            if PurePosixPath(relname).as_posix() != relname:
                raise RegistryError(
                    f"model {name!r} file name: expected a POSIX path, found {relname!r}"
                )
            check_key(relname)
            if not Path(local).is_file():
                raise RegistryError(
                    f"model {name!r} file {relname!r}: expected a file, found "
                    f"{str(local)!r} (missing, or not a file)"
                )

        staging = f"{MODELS_PREFIX}/{name}/{uuid.uuid4().hex}"
        uploaded: list[ArtifactInfo] = []
        try:
            for relname, local in sorted(files.items()):
                info = self.artifacts.put_file(f"{staging}/{relname}", Path(local))
                uploaded.append(
                    ArtifactInfo(key=info.key, sha256=info.sha256, size=info.size, name=relname)
                )
                if expected is not None:
                    _check_copy(f"model {name!r} version {number}", expected[relname], uploaded[-1])
            version, inserted = self._insert_version(
                name, uploaded, row, number, if_new_fingerprint=if_new_fingerprint
            )
            if not inserted:
                self._remove_uploaded(uploaded)
            return version
        except Exception:
            self._remove_uploaded(uploaded)
            raise

    def _remove_uploaded(self, uploaded: list[ArtifactInfo]) -> None:
        # Best effort: a failure to report comes first (the store may be down), and an
        # orphan left behind is removed by gc.
        for info in uploaded:
            with contextlib.suppress(RegistryError):
                self.artifacts.delete(info.key)

    def _insert_version(
        self,
        name: str,
        uploaded: list[ArtifactInfo],
        row: Version,
        number: int | None,
        *,
        if_new_fingerprint: bool = False,
    ) -> tuple[ModelVersion, bool]:
        """Insert ``row`` (see :meth:`_add_version`); return the version and whether it is
        the one inserted."""
        with self.store.session(write=True) as session:
            self._lock_model(session, name, create=True)
            if if_new_fingerprint:
                existing = session.scalars(
                    select(Version)
                    .where(
                        Version.model_name == name,
                        Version.model_fingerprint == row.model_fingerprint,
                    )
                    .order_by(Version.version.desc())
                    .limit(1)
                ).first()
                if existing is not None:
                    return self._to_version(session, existing), False
            if number is None:
                newest = session.scalar(
                    select(func.max(Version.version)).where(Version.model_name == name)
                )
                row.version = (newest or 0) + 1
                row.created_at = utcnow()
            elif self._holds(session, name, number):
                raise self._held_error(name, number)
            else:
                row.version = number
            row.model_name = name
            session.add(row)
            session.flush()
            session.add_all(
                Artifact(version_id=row.id, name=a.name, key=a.key, sha256=a.sha256, size=a.size)
                for a in uploaded
            )
            # A registration records the gate's decision; an import, where it came from.
            imported = number is not None
            session.add(
                _status_event_row(
                    name,
                    row.version,
                    None,
                    row.status,
                    who=None,
                    reason=IMPORTED if imported else "",
                    gate=None if imported else row.gate,
                )
            )
            session.flush()
            return self._to_version(session, row), True

    @staticmethod
    def _holds(session: Session, name: str, number: int) -> bool:
        query = select(Version.id).where(Version.model_name == name, Version.version == number)
        return session.scalar(query) is not None

    @staticmethod
    def _held_error(name: str, number: int) -> RegistryError:
        return RegistryError(
            f"model {name!r} version {number}: expected a number this registry does not "
            "hold, found it registered already (import into a registry without it)"
        )

    def _lock_model(self, session: Session, name: str, *, create: bool) -> Model:
        """Lock the model's row until the transaction ends (creating it if asked)."""
        if create:
            insert = postgresql.insert if self.store.dialect == "postgresql" else sqlite.insert
            session.execute(
                insert(Model)
                .values(name=name, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["name"])
            )
        model = session.scalars(select(Model).where(Model.name == name).with_for_update()).first()
        if model is None:
            raise VersionNotFound(self._missing_model_message(session, name))
        return model

    # -- reading ---------------------------------------------------------------------

    def get(self, ref: str | ModelRef) -> ModelVersion:
        """Return a version by reference: ``NAME`` (newest), ``NAME:V`` or ``NAME@ALIAS``.

        Raises:
            VersionNotFound: The model, version or alias does not exist; the message says
                what does.
        """
        if isinstance(ref, str):
            ref = _parse_ref(ref)
        with self.store.session() as session:
            row = self._resolve(session, ref)
            return self._to_version(session, row)

    def _resolve(self, session: Session, ref: ModelRef) -> Version:
        name = ref.name
        if session.get(Model, name) is None:
            raise VersionNotFound(self._missing_model_message(session, name))
        query = select(Version).where(Version.model_name == name)
        if ref.alias is not None:
            alias = session.get(Alias, (name, ref.alias))
            if alias is None:
                raise VersionNotFound(self._missing_alias_message(session, name, ref.alias))
            query = query.where(Version.version == alias.version)
        elif ref.version is not None:
            # A number no store can hold is simply not registered (and must not reach the
            # driver, which raises OverflowError on SQLite and DataError on PostgreSQL).
            number = ref.version if 1 <= ref.version <= _MAX_VERSION else 0
            query = query.where(Version.version == number)
        row = session.scalars(query.order_by(Version.version.desc()).limit(1)).first()
        if row is None:
            versions = [
                str(v)
                for v in session.scalars(
                    select(Version.version)
                    .where(Version.model_name == name)
                    .order_by(Version.version)
                )
            ]
            found = "none" if ref.version is None else str(ref.version)
            raise VersionNotFound(
                f"model {name!r} version: expected a registered version "
                f"(versions: {_listing(versions)}), found {found}"
            )
        return row

    @staticmethod
    def _missing_model_message(session: Session, name: str) -> str:
        names = list(session.scalars(select(Model.name).order_by(Model.name)))
        return f"model: expected a registered model (models: {_listing(names)}), found {name!r}"

    @staticmethod
    def _missing_alias_message(session: Session, name: str, alias: str) -> str:
        aliases = sorted(session.scalars(select(Alias.alias).where(Alias.model_name == name)))
        hint = (
            f"; make a version the champion: readyml models promote {name}:N, or "
            "readyml run --promote"
            if alias == CHAMPION
            else ""
        )
        return (
            f"model {name!r} alias: expected an existing alias (aliases: {_listing(aliases)}), "
            f"found {alias!r}{hint}"
        )

    @staticmethod
    def _to_version(session: Session, row: Version) -> ModelVersion:
        artifacts = [
            ArtifactInfo(key=a.key, sha256=a.sha256, size=a.size, name=a.name)
            for a in session.scalars(
                select(Artifact).where(Artifact.version_id == row.id).order_by(Artifact.name)
            )
        ]
        aliases = sorted(
            session.scalars(
                select(Alias.alias).where(
                    Alias.model_name == row.model_name, Alias.version == row.version
                )
            )
        )
        return ModelVersion(
            name=row.model_name,
            version=row.version,
            status=_check_status(row.status),
            created_at=row.created_at,
            run_id=row.run_id,
            parent_version=row.parent_version,
            model_fingerprint=row.model_fingerprint,
            lineage=dict(row.lineage),
            metrics=dict(row.metrics),
            signature=dict(row.signature),
            input_example=list(row.input_example),
            tags=dict(row.tags),
            gate=None if row.gate is None else dict(row.gate),
            description=row.description,
            artifacts=artifacts,
            aliases=aliases,
        )

    def find_by_fingerprint(self, name: str, model_fingerprint: str) -> ModelVersion | None:
        """Return the newest version of ``name`` with this model fingerprint, if any."""
        query = (
            select(Version)
            .where(Version.model_name == name, Version.model_fingerprint == model_fingerprint)
            .order_by(Version.version.desc())
            .limit(1)
        )
        with self.store.session() as session:
            row = session.scalars(query).first()
            return None if row is None else self._to_version(session, row)

    def list_models(self) -> list[ModelSummary]:
        """Return every model, by name, with its newest version and its aliases."""
        with self.store.session() as session:
            latest: dict[str, int] = {
                model_name: newest
                for model_name, newest in session.execute(
                    select(Version.model_name, func.max(Version.version)).group_by(
                        Version.model_name
                    )
                )
            }
            aliases: dict[str, dict[str, int]] = {}
            for alias in session.scalars(select(Alias)):
                aliases.setdefault(alias.model_name, {})[alias.alias] = alias.version
            return [
                ModelSummary(
                    name=model.name,
                    created_at=model.created_at,
                    latest_version=latest.get(model.name),
                    aliases=dict(sorted(aliases.get(model.name, {}).items())),
                )
                for model in session.scalars(select(Model).order_by(Model.name))
            ]

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Return every version of ``name``, oldest first.

        Raises:
            VersionNotFound: No model has this name.
        """
        with self.store.session() as session:
            if session.get(Model, name) is None:
                raise VersionNotFound(self._missing_model_message(session, name))
            rows = session.scalars(
                select(Version).where(Version.model_name == name).order_by(Version.version)
            )
            return [self._to_version(session, row) for row in rows]

    # -- changing status and aliases -------------------------------------------------

    def set_status(
        self,
        name: str,
        version: int,
        status: VersionStatus,
        gate: Mapping[str, Any] | None = None,
        *,
        who: str | None = None,
        reason: str = "",
        if_unchanged: ModelVersion | None = None,
    ) -> ModelVersion:
        """Change a version's status (and record the gate decision behind it).

        Every call records a status event (:meth:`status_history`), even one that leaves
        the status as it was: a person confirming the gate's veto takes it over. A change
        by a person (``who`` given) is also kept in the version's ``status_change`` tag
        (status, who, why and when), which holds the latest such change only.

        Args:
            name: The model's name.
            version: The version's number.
            status: The new status.
            gate: The gate decision behind the change, kept on the version.
            who: The person (or named controller) making the change; ``None`` for the gate
                or code.
            reason: Why; a change by the gate without one records its failed checks.
            if_unchanged: Change it only if its status and the person's change behind it are
                still those of this earlier read (compare and set, in one transaction): a
                veto made meanwhile is never overwritten.

        Raises:
            RegistryError: The status is not a version status, or it changed since
                ``if_unchanged`` was read.
            AliasError: The version is ``champion`` and the status would be vetoed or
                archived (promote another version or roll back first).
            VersionNotFound: The version does not exist.
        """
        status = _check_status(status)
        with self.store.session(write=True) as session:
            self._lock_model(session, name, create=False)
            row = self._resolve(session, ModelRef(name, version=version))
            if if_unchanged is not None and (
                row.status != if_unchanged.status
                or row.tags.get("status_change") != if_unchanged.tags.get("status_change")
            ):
                raise RegistryError(
                    f"model {name!r} version {version}: expected status {if_unchanged.status!r} "
                    f"as read before, found {row.status!r} "
                    f"({_status_reason(row.status, row.tags, row.gate)}): changed meanwhile"
                )
            champion = session.get(Alias, (name, CHAMPION))
            if status in _NO_CHAMPION and champion is not None and champion.version == version:
                raise AliasError(
                    f"model {name!r} version {version}: expected a version that is not "
                    f"{CHAMPION!r} to become {status}, found it is {CHAMPION!r} (promote "
                    f"another version or roll back first: readyml models rollback {name})"
                )
            event = _status_event_row(
                name, version, row.status, status, who=who, reason=reason, gate=gate
            )
            session.add(event)
            row.status = status
            if gate is not None:
                row.gate = dict(gate)
            if who is not None:
                change = {
                    "status": status,
                    "by": who,
                    "reason": reason,
                    "at": event.at.isoformat(),
                }
                row.tags = {**row.tags, "status_change": change}
            session.flush()
            return self._to_version(session, row)

    def set_alias(
        self, name: str, alias: str, version: int, *, who: str, reason: str
    ) -> AliasEvent:
        """Point ``alias`` of ``name`` at ``version`` and record who did it and why.

        Every call records an event, even one that leaves the alias where it was: callers
        use such events as an audit trail (a rollout records each decision on its
        ``canary`` alias). :meth:`promote` is the move that skips an unchanged alias.

        Unlike :meth:`promote`, it may point an alias other than ``champion`` at a vetoed
        or archived version: a rollout records its decisions about a candidate on
        ``canary`` even after a person vetoed the candidate.

        Raises:
            AliasError: The alias name is invalid, or the move would make a vetoed or
                archived version ``champion``.
            VersionNotFound: The version does not exist.
        """
        _check_alias(alias)
        with self.store.session(write=True) as session:
            self._lock_model(session, name, create=False)
            self._alias_target(session, name, alias, version, audit=True)
            current = session.get(Alias, (name, alias))
            return self._write_alias(
                session, current, name, alias, version, who=who, reason=reason, action="set"
            )

    def _alias_target(
        self, session: Session, name: str, alias: str, version: int, *, audit: bool = False
    ) -> Version:
        """The version row ``alias`` may point at.

        A vetoed or archived version is refused for every alias, or, for an ``audit``
        record (:meth:`set_alias`), for ``champion`` only.
        """
        target = self._resolve(session, ModelRef(name, version=version))
        refused = alias == CHAMPION or not audit
        if refused and target.status in _NO_CHAMPION:
            raise AliasError(
                f"model {name!r} version {version}: expected a version that may become "
                f"{alias!r} (not vetoed or archived), found it {target.status} "
                f"({_status_reason(target.status, target.tags, target.gate)})"
            )
        return target

    @staticmethod
    def _write_alias(
        session: Session,
        current: Alias | None,
        name: str,
        alias: str,
        version: int,
        *,
        who: str,
        reason: str,
        action: AliasAction,
    ) -> AliasEvent:
        """Point the alias at ``version`` and add its event, in the caller's transaction."""
        _check_who(who)
        from_version = None if current is None else current.version
        if current is None:
            session.add(Alias(model_name=name, alias=alias, version=version))
        else:
            current.version = version
        event = AliasEventRow(
            model_name=name,
            alias=alias,
            from_version=from_version,
            to_version=version,
            at=utcnow(),
            who=who,
            reason=reason,
            action=action,
        )
        session.add(event)
        session.flush()
        return _event(event)

    def promote(
        self, ref: str | ModelRef, *, alias: str = CHAMPION, who: str, reason: str
    ) -> AliasEvent | None:
        """Point ``alias`` (``champion`` by default) at the version ``ref`` names.

        Promoting the version the alias already names changes nothing and records no
        event (two racing promotes of one version record one move, not two).

        Returns:
            The recorded move, or ``None`` when the alias already named that version.

        Raises:
            AliasError: The alias name is invalid, or the version is vetoed or archived.
            VersionNotFound: ``ref`` names nothing.
        """
        _check_alias(alias)
        if isinstance(ref, str):
            ref = _parse_ref(ref)
        with self.store.session(write=True) as session:
            self._lock_model(session, ref.name, create=False)
            version = self._resolve(session, ref).version
            self._alias_target(session, ref.name, alias, version)
            current = session.get(Alias, (ref.name, alias))
            if current is not None and current.version == version:
                return None
            return self._write_alias(
                session, current, ref.name, alias, version, who=who, reason=reason, action="set"
            )

    def rollback(self, name: str, *, alias: str = CHAMPION, who: str, reason: str) -> AliasEvent:
        """Move ``alias`` back to the version its last move took it from.

        The target is the ``from_version`` of the newest event that changed the alias, so a
        second rollback undoes the first (it does not walk further back in history). The
        target is read and the alias moved in one transaction, so two racing rollbacks
        cannot both read the same move and undo it twice.

        Raises:
            AliasError: The alias name is invalid, the alias has never moved from an
                earlier version, or the earlier version may no longer hold it (vetoed or
                archived since).
            VersionNotFound: No model has that name, or it has no such alias.
        """
        _check_alias(alias)
        with self.store.session(write=True) as session:
            self._lock_model(session, name, create=False)
            current = session.get(Alias, (name, alias))
            if current is None:
                raise VersionNotFound(self._missing_alias_message(session, name, alias))
            last = session.scalars(
                select(AliasEventRow)
                .where(
                    AliasEventRow.model_name == name,
                    AliasEventRow.alias == alias,
                    AliasEventRow.from_version != AliasEventRow.to_version,
                )
                .order_by(AliasEventRow.id.desc())
                .limit(1)
            ).first()
            if last is None or last.from_version is None:
                raise AliasError(
                    f"model {name!r} alias {alias!r}: expected a move from an earlier "
                    "version, found nothing to roll back to (it never pointed at another "
                    "version)"
                )
            target = last.from_version
            self._alias_target(session, name, alias, target)
            return self._write_alias(
                session, current, name, alias, target, who=who, reason=reason, action="rollback"
            )

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Return the alias moves of ``name`` (of one alias, or all), oldest first.

        Raises:
            AliasError: ``alias`` is not a valid alias name.
            VersionNotFound: No model has that name, or ``alias`` never existed for it.
        """
        query = (
            select(AliasEventRow).where(AliasEventRow.model_name == name).order_by(AliasEventRow.id)
        )
        if alias is not None:
            _check_alias(alias)
            query = query.where(AliasEventRow.alias == alias)
        with self.store.session() as session:
            if session.get(Model, name) is None:
                raise VersionNotFound(self._missing_model_message(session, name))
            events = [_event(row) for row in session.scalars(query)]
            if alias is not None and not events and session.get(Alias, (name, alias)) is None:
                raise VersionNotFound(self._missing_alias_message(session, name, alias))
            return events

    def status_history(self, name: str, version: int | None = None) -> list[StatusEvent]:
        """Return the status changes of ``name`` (of one version, or all), oldest first.

        A version registered before schema revision 0003 has the events recorded since,
        after the one carried over from its ``status_change`` tag, if it had one.

        Raises:
            VersionNotFound: No model has that name, or ``version`` is not registered.

        Example:
            >>> import tempfile
            >>> workspace = Path(tempfile.mkdtemp())
            >>> (workspace / "model.bin").write_bytes(b"weights")
            7
            >>> registry = open_registry(workspace)
            >>> _ = registry.register("demo", files={"model.bin": workspace / "model.bin"},
            ...                       model_fingerprint="f1")
            >>> _ = registry.set_status("demo", 1, "vetoed", who="ana", reason="leaks")
            >>> [(e.from_status, e.to_status, e.who) for e in registry.status_history("demo")]
            [(None, 'candidate', None), ('candidate', 'vetoed', 'ana')]
        """
        query = (
            select(StatusEventRow)
            .where(StatusEventRow.model_name == name)
            .order_by(StatusEventRow.id)
        )
        with self.store.session() as session:
            if version is None:
                if session.get(Model, name) is None:
                    raise VersionNotFound(self._missing_model_message(session, name))
            else:
                number = self._resolve(session, ModelRef(name, version=version)).version
                query = query.where(StatusEventRow.version == number)
            return [_status_event(row) for row in session.scalars(query)]

    # -- files -----------------------------------------------------------------------

    def download(self, version: ModelVersion, dest: Path) -> Path:
        """Copy every file of ``version`` into the folder ``dest``, verified by sha256; all of
        them, or none when one fails.

        Returns:
            ``dest``.

        Raises:
            IntegrityError: A file is missing, truncated or was modified; the message names
                the model, version and file.
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Into a staging folder beside ``dest`` first: a file that fails its check leaves
        # nothing in ``dest`` that could be taken for the version.
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        try:
            for artifact in version.artifacts:
                self.artifacts.get_file(
                    artifact.key,
                    staging / artifact.name,
                    sha256=artifact.sha256,
                    size=artifact.size,
                    label=(
                        f"model {version.name!r} version {version.version}, file {artifact.name!r}"
                    ),
                )
            if not dest.exists():
                staging.rename(dest)
                return dest
            for artifact in version.artifacts:  # names may hold folders: onnx/model.onnx
                (dest / artifact.name).parent.mkdir(parents=True, exist_ok=True)
                (staging / artifact.name).replace(dest / artifact.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return dest

    def gc(self, *, grace: timedelta = GC_GRACE) -> list[str]:
        """Delete model blobs that no version references (left by interrupted registers).

        Args:
            grace: Keep orphans younger than this: they may belong to a registration that
                is still uploading.

        Returns:
            The deleted keys.
        """
        with self.store.session() as session:
            referenced = set(session.scalars(select(Artifact.key)))
        cutoff = utcnow() - grace
        deleted = []
        for key, modified in sorted(self.artifacts.list_keys(MODELS_PREFIX).items()):
            if key not in referenced and modified <= cutoff:
                self.artifacts.delete(key)
                deleted.append(key)
        return deleted

    # -- evidence --------------------------------------------------------------------

    def add_evidence(self, evidence: Evidence) -> int:
        """Store one piece of ML Test Score evidence (see :meth:`MetadataStore.add_evidence`)."""
        return self.store.add_evidence(evidence)

    def list_evidence(
        self, project: str | None = None, test_id: str | None = None
    ) -> list[Evidence]:
        """Return evidence, oldest first (see :meth:`MetadataStore.list_evidence`)."""
        return self.store.list_evidence(project=project, test_id=test_id)


def open_registry(
    workspace: Path, *, store_url: str | None = None, artifacts_url: str | None = None
) -> Registry:
    """Open the registry of a workspace, applying defaults and environment overrides.

    Precedence: explicit arguments, then ``READYML_STORE_URL`` / ``READYML_ARTIFACTS_URL``,
    then ``sqlite:///WORKSPACE/readyml.db`` and ``WORKSPACE/artifacts``.

    Args:
        workspace: The project's workspace folder (``.readyml/`` by default).
        store_url: The metadata store URL.
        artifacts_url: The artifact store URL.
    """
    workspace = Path(workspace)
    shared = os.environ.get("READYML_STORE_URL")
    if not store_url and shared:
        _check_shared_sqlite(shared)
    store_url = store_url or shared or f"sqlite:///{workspace.resolve() / 'readyml.db'}"
    artifacts_url = (
        artifacts_url
        or os.environ.get("READYML_ARTIFACTS_URL")
        or str(workspace.resolve() / "artifacts")
    )
    return Registry(MetadataStore(store_url), ArtifactStore(artifacts_url))


def _check_shared_sqlite(url: str) -> None:
    """A ``READYML_STORE_URL`` naming a SQLite file must name one in a folder that exists or
    whose parent does (a new store's own folder is made): a typo in the path would otherwise
    create a tree of folders and an empty registry, even for ``models list``."""
    parsed = make_url(url)
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        return
    if database.startswith("file:"):
        return
    folder = Path(database).parent
    if not folder.is_dir() and not folder.parent.is_dir():
        raise RegistryError(
            f"READYML_STORE_URL: expected a SQLite file in an existing folder, found no "
            f"folder {str(folder.parent)!r} (create it, or fix the URL)"
        )
