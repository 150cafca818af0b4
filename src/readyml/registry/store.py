"""The metadata store: runs, steps and evidence in SQLite (default) or PostgreSQL.

One SQLAlchemy engine per store. The schema is owned by the Alembic migrations shipped in
``registry/migrations`` and is brought to ``head`` when the store opens, so a new workspace
or a new shared database needs no setup step, and opening twice is a no-op.

SQLite runs in WAL mode (readers never wait for the writer) with a busy timeout, and every
write transaction starts with ``BEGIN IMMEDIATE``: writers queue up front instead of failing
with "database is locked" half-way through. On PostgreSQL the registry serialises writers of
one model with ``SELECT ... FOR UPDATE`` on its ``models`` row.

A run records its owner process (host, pid, start time). A run whose owner was killed
(SIGKILL, power loss) stays ``running`` until :meth:`MetadataStore.settle_abandoned_runs`
finds the owner gone and marks it failed; the pipeline calls it before starting a run, and
:meth:`MetadataStore.list_runs` before listing. Each settled run is one guarded ``UPDATE ...
WHERE id = ? AND status = 'running'``, so two processes settling at once, or an owner that
finishes meanwhile, never clash.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, delete, event, func, select, update
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from readyml.errors import ConfigError, RegistryError
from readyml.registry._owner import current_owner, owner_alive, this_host
from readyml.registry._tables import EvidenceRow, Run, Step
from readyml.registry.records import (
    RUN_STATUSES,
    STEP_STATUSES,
    RunOwner,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
)
from readyml.types import Evidence

# How long a SQLite writer waits for another writer's lock before failing, in seconds.
SQLITE_BUSY_TIMEOUT_S = 30.0
# Execution option that makes a SQLite transaction start with BEGIN IMMEDIATE.
_IMMEDIATE = "readyml_sqlite_immediate"
_MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver so that _on_begin decides DEFERRED or IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _first_line(exc: Exception) -> str:
    """The driver's message, without SQLAlchemy's SQL and "Background on this error" lines."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# The password of a URL's ``user:password@`` part, for URLs SQLAlchemy cannot parse.
_USERINFO_PASSWORD = re.compile(r"(://[^/:@]*:)[^/@]*@")
# A query parameter whose value is a secret: its name contains one of these, any case
# (password, sslpassword, passwd, pwd, secret, token, key, X-Amz-Signature, sig, auth...).
# Hiding a harmless value too (sslkey's path) is the price of never showing a secret.
_SECRET_PARAM = re.compile(
    r"((?:^|[&;])[^=&;#]*(?:pass|pwd|secret|token|key|sig|credential|auth)[^=&;#]*=)[^&;#]*",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """``url`` with its password and the values of secret-looking query parameters
    (``password=``, ``token=``, ``secret=``...) replaced by ``***``, for messages and logs."""
    try:
        parsed = make_url(url)
        # Rendered again only to hide a password: rendering sorts the query parameters.
        shown = url if parsed.password is None else parsed.render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        shown = _USERINFO_PASSWORD.sub(r"\1***@", url)
    head, mark, query = shown.partition("?")
    return head + mark + _SECRET_PARAM.sub(r"\1***", query)


def _make_engine(url: str) -> Engine:
    try:
        backend = make_url(url).get_backend_name()
    except (SQLAlchemyError, ValueError) as exc:  # ValueError: a port that is not a number
        raise ConfigError(
            f"metadata store URL {redact_url(url)!r}: expected sqlite:///PATH or "
            f"postgresql+psycopg://USER@HOST:PORT/DB ({_first_line(exc)})"
        ) from exc
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        try:
            return create_engine(url, pool_pre_ping=True)
        except ImportError as exc:
            driver = make_url(url).get_driver_name()
            hint = (
                "pip install 'readyml[postgres]'"
                if driver == "psycopg"
                else f"use postgresql+psycopg:// (installed by readyml[postgres]), not {driver}"
            )
            raise ConfigError(
                f"metadata store URL {redact_url(url)!r} needs a PostgreSQL driver: {hint}"
            ) from exc
    raise ConfigError(
        f"metadata store URL {redact_url(url)!r}: expected a sqlite or postgresql URL, "
        f"found {backend!r}"
    )


def _run_owner(row: Run) -> RunOwner | None:
    if row.owner_host is None or row.owner_pid is None:
        return None
    return RunOwner(host=row.owner_host, pid=row.owner_pid, start_ticks=row.owner_start_ticks)


def _run_record(row: Run) -> RunRecord:
    return RunRecord(
        id=row.id,
        project=row.project,
        status=row.status,  # type: ignore[arg-type]
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration_s=row.duration_s,
        fingerprints=dict(row.fingerprints),
        params=dict(row.params),
        error=row.error,
        owner=_run_owner(row),
    )


def _abandoned(owner: RunOwner) -> str:
    return (
        f"abandoned: process {owner.pid} on host {owner.host} ended without finishing "
        "the run (killed?)"
    )


def _step_record(row: Step) -> StepRecord:
    return StepRecord(
        id=row.id,
        run_id=row.run_id,
        name=row.name,
        status=row.status,  # type: ignore[arg-type]
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration_s=row.duration_s,
        input_fingerprint=row.input_fingerprint,
        output_fingerprint=row.output_fingerprint,
        outputs=dict(row.outputs),
        message=row.message,
        error=row.error,
    )


def _evidence(row: EvidenceRow) -> Evidence:
    return Evidence(
        test_id=row.test_id,
        passed=row.passed,
        automated=row.automated,
        project=row.project,
        details=dict(row.details),
        run_id=row.run_id,
        model_name=row.model_name,
        version=row.version,
        artifact=row.artifact,
        created_at=row.created_at,
    )


class MetadataStore:
    """Runs, steps and evidence, in a database that Alembic keeps at the current schema.

    The constructor only stores the URL; the engine is created, and the schema migrated,
    by :meth:`open` (called on first use).

    Args:
        url: A SQLAlchemy URL: ``sqlite:///PATH/readyml.db`` or
            ``postgresql+psycopg://USER@HOST:PORT/DB``.

    Example:
        >>> import tempfile
        >>> store = MetadataStore(f"sqlite:///{tempfile.mkdtemp()}/readyml.db")
        >>> run = store.start_run("demo", {"data": "ab12"}, {"seed": 0})
        >>> store.finish_run(run.id, "succeeded").status
        'succeeded'
        >>> store.close()
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MetadataStore(url={redact_url(self.url)!r})"

    def __enter__(self) -> MetadataStore:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- lifecycle -------------------------------------------------------------------

    def open(self) -> MetadataStore:
        """Create the engine and upgrade the schema to the newest migration (idempotent).

        Returns:
            This store.

        Raises:
            ConfigError: The URL is not a supported database URL.
            RegistryError: The database cannot be reached or migrated.
        """
        with self._lock:
            if self._engine is not None:
                return self
            engine = _make_engine(self.url)
            try:
                self._migrate(engine)
            except SQLAlchemyError as exc:
                engine.dispose()
                raise RegistryError(
                    f"metadata store {self!r}: cannot open ({_first_line(exc)})"
                ) from exc
            self._engine = engine
        return self

    def close(self) -> None:
        """Release every pooled connection; the store reopens on next use."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    @staticmethod
    def _migrate(engine: Engine) -> None:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with engine.execution_options(**{_IMMEDIATE: True}).connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            if connection.in_transaction():
                connection.commit()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (opening the store on first use)."""
        if self._engine is None:
            self.open()
        if self._engine is None:
            raise RegistryError(f"metadata store {self!r} was closed while opening")
        return self._engine

    @property
    def dialect(self) -> str:
        """The database kind: ``"sqlite"`` or ``"postgresql"``."""
        return make_url(self.url).get_backend_name()

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session inside one transaction, committed on success, rolled back on error.

        Args:
            write: Take the write lock up front (``BEGIN IMMEDIATE`` on SQLite), for
                transactions that read and then write.
        """
        engine = self.engine.execution_options(**{_IMMEDIATE: True}) if write else self.engine
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session

    # -- runs and steps --------------------------------------------------------------

    def start_run(
        self,
        project: str,
        fingerprints: Mapping[str, str],
        params: Mapping[str, Any],
        *,
        owner: RunOwner | None = None,
    ) -> RunRecord:
        """Record the start of a pipeline run.

        Args:
            project: The project name.
            fingerprints: Fingerprints of what the run depends on (data, code, config,
                environment).
            params: The run's parameters (JSON-serialisable).
            owner: The process that runs it; defaults to this process.

        Returns:
            The new run, with status ``"running"``.
        """
        owner = owner if owner is not None else current_owner()
        row = Run(
            id=uuid.uuid4().hex,
            project=project,
            status="running",
            started_at=utcnow(),
            ended_at=None,
            duration_s=None,
            fingerprints=dict(fingerprints),
            params=dict(params),
            error=None,
            owner_host=owner.host,
            owner_pid=owner.pid,
            owner_start_ticks=owner.start_ticks,
        )
        with self.session(write=True) as session:
            session.add(row)
        return _run_record(row)

    def finish_run(self, run_id: str, status: RunStatus, error: str | None = None) -> RunRecord:
        """Record the end of a run.

        Args:
            run_id: The run's id.
            status: ``"succeeded"`` or ``"failed"``.
            error: What went wrong, for a failed run.

        Returns:
            The finished run.

        Raises:
            RegistryError: The run does not exist, or the status is not a run status.
        """
        if status not in RUN_STATUSES:
            raise RegistryError(f"run status {status!r}: expected one of {RUN_STATUSES}")
        with self.session(write=True) as session:
            row = session.get(Run, run_id)
            if row is None:
                raise RegistryError(f"run {run_id!r} not found")
            row.status = status
            row.error = error
            row.ended_at = utcnow()
            row.duration_s = (row.ended_at - row.started_at).total_seconds()
            return _run_record(row)

    def get_run(self, run_id: str) -> RunRecord:
        """Return one run.

        Raises:
            RegistryError: No run has this id.
        """
        with self.session() as session:
            row = session.get(Run, run_id)
            if row is None:
                raise RegistryError(f"run {run_id!r} not found")
            return _run_record(row)

    def settle_abandoned_runs(self, project: str | None = None) -> list[RunRecord]:
        """Mark failed the running runs whose owner process on this host has ended.

        A process killed with SIGKILL, or a machine that lost power, leaves its run
        ``running``. A run of ``project`` (or of every project) owned by this host whose
        owner process is gone becomes ``failed`` with an ``abandoned: ...`` error and
        ``ended_at`` now; its duration stays unknown. Runs of other hosts, runs without a
        recorded owner, and runs whose owner may be alive are left as they are.

        Args:
            project: The project whose runs to settle; ``None`` for every project.

        Returns:
            The runs this call marked failed.
        """
        query = select(Run).where(
            Run.status == "running",
            Run.owner_host == this_host(),
            Run.owner_pid.is_not(None),
        )
        if project is not None:
            query = query.where(Run.project == project)
        with self.session() as session:
            owned = [(row.id, _run_owner(row)) for row in session.scalars(query)]
        gone = [(run_id, owner) for run_id, owner in owned if owner and not owner_alive(owner)]
        if not gone:
            return []
        settled: list[str] = []
        with self.session(write=True) as session:
            for run_id, owner in gone:
                result = session.execute(
                    update(Run)
                    .where(Run.id == run_id, Run.status == "running")
                    .values(status="failed", error=_abandoned(owner), ended_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
                if getattr(result, "rowcount", 0) == 1:
                    settled.append(run_id)
            rows = session.scalars(select(Run).where(Run.id.in_(settled)).order_by(Run.started_at))
            return [_run_record(row) for row in rows]

    def list_runs(self, project: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Return the newest runs first, of one project or of all.

        Abandoned runs are settled first (:meth:`settle_abandoned_runs`), so that a run
        whose process was killed is not listed as running.
        """
        self.settle_abandoned_runs(project)
        query = select(Run).order_by(Run.started_at.desc()).limit(limit)
        if project is not None:
            query = query.where(Run.project == project)
        with self.session() as session:
            return [_run_record(row) for row in session.scalars(query)]

    def record_step(
        self,
        run_id: str,
        name: str,
        *,
        status: StepStatus,
        started_at: datetime,
        ended_at: datetime,
        input_fingerprint: str,
        output_fingerprint: str | None = None,
        outputs: Mapping[str, Any] | None = None,
        message: str = "",
        error: str | None = None,
        duration_s: float | None = None,
    ) -> StepRecord:
        """Record one finished (or skipped) step of a run.

        Args:
            run_id: The run the step belongs to.
            name: The step's name, e.g. ``"train"``.
            status: ``"succeeded"``, ``"failed"`` or ``"skipped"``.
            started_at: When the step started (timezone-aware).
            ended_at: When it ended.
            input_fingerprint: Fingerprint of everything the step's result depends on.
            output_fingerprint: Fingerprint of what it produced.
            outputs: What it produced: artifact keys and sha256s, small values.
            message: One human line about the outcome.
            error: What went wrong, for a failed step.
            duration_s: Measured duration (monotonic clock); defaults to the difference of
                the timestamps.

        Returns:
            The stored step, with its id.

        Raises:
            RegistryError: The status is not a step status, or the run does not exist.
        """
        if status not in STEP_STATUSES:
            raise RegistryError(f"step {name!r} status {status!r}: expected one of {STEP_STATUSES}")
        row = Step(
            run_id=run_id,
            name=name,
            status=status,
            started_at=started_at,
            ended_at=ended_at,
            duration_s=(
                duration_s if duration_s is not None else (ended_at - started_at).total_seconds()
            ),
            input_fingerprint=input_fingerprint,
            output_fingerprint=output_fingerprint,
            outputs=dict(outputs or {}),
            message=message,
            error=error,
        )
        with self.session(write=True) as session:
            if session.get(Run, run_id) is None:
                raise RegistryError(f"step {name!r}: run {run_id!r} not found")
            session.add(row)
            session.flush()
            return _step_record(row)

    def steps_for_run(self, run_id: str) -> list[StepRecord]:
        """Return a run's steps in the order they were recorded."""
        query = select(Step).where(Step.run_id == run_id).order_by(Step.id)
        with self.session() as session:
            return [_step_record(row) for row in session.scalars(query)]

    def find_cached_step(
        self, project: str, step_name: str, input_fingerprint: str
    ) -> StepRecord | None:
        """Return the latest succeeded step of ``project`` with this input fingerprint.

        A step whose inputs did not change need not run again: its recorded outputs stand.
        The step counts whatever the outcome of its run (a later step may have failed).

        Returns:
            The newest matching step, or ``None``.
        """
        query = (
            select(Step)
            .join(Run, Run.id == Step.run_id)
            .where(
                Run.project == project,
                Step.name == step_name,
                Step.input_fingerprint == input_fingerprint,
                Step.status == "succeeded",
            )
            .order_by(Step.ended_at.desc(), Step.id.desc())
            .limit(1)
        )
        with self.session() as session:
            row = session.scalars(query).first()
            return None if row is None else _step_record(row)

    def last_step_successes(self, project: str) -> dict[str, datetime]:
        """When each pipeline step of ``project`` last succeeded, over all its runs (a step
        that kept failing keeps its old success; a cached step is not a success)."""
        query = (
            select(Step.name, func.max(Step.ended_at))
            .join(Run, Run.id == Step.run_id)
            .where(Run.project == project, Step.status == "succeeded")
            .group_by(Step.name)
        )
        with self.session() as session:
            return {
                str(name): ended if ended.tzinfo else ended.replace(tzinfo=UTC)
                for name, ended in session.execute(query)
                if ended is not None
            }

    # -- evidence --------------------------------------------------------------------

    def add_evidence(self, evidence: Evidence) -> int:
        """Store one piece of ML Test Score evidence and return its id."""
        row = EvidenceRow(
            test_id=evidence.test_id,
            passed=evidence.passed,
            automated=evidence.automated,
            project=evidence.project,
            run_id=evidence.run_id,
            model_name=evidence.model_name,
            version=evidence.version,
            created_at=evidence.created_at or utcnow(),
            details=dict(evidence.details),
            artifact=evidence.artifact,
        )
        with self.session(write=True) as session:
            session.add(row)
            session.flush()
            return row.id

    def list_evidence(
        self,
        project: str | None = None,
        test_id: str | None = None,
        since: datetime | None = None,
        run_id: str | None = None,
    ) -> list[Evidence]:
        """Return evidence, oldest first, filtered by project, rubric test, time and run.

        Raises:
            RegistryError: A row was edited by hand into something that is not evidence
                (``readyml score`` names such rows and scores around them).
        """
        query = select(EvidenceRow).order_by(EvidenceRow.created_at, EvidenceRow.id)
        if project is not None:
            query = query.where(EvidenceRow.project == project)
        if test_id is not None:
            query = query.where(EvidenceRow.test_id == test_id)
        if since is not None:
            query = query.where(EvidenceRow.created_at >= since)
        if run_id is not None:
            query = query.where(EvidenceRow.run_id == run_id)
        try:
            with self.session() as session:
                return [_evidence(row) for row in session.scalars(query)]
        except (ValueError, TypeError) as exc:  # bad JSON, a dict of a non-object, ...
            raise RegistryError(
                f"metadata store {self!r}: an evidence row is damaged ({type(exc).__name__}: "
                f"{exc}); `readyml score` names it"
            ) from exc

    def delete_evidence(self, project: str, test_id: str | None = None) -> int:
        """Delete a project's evidence (of one rubric test, or all); return how many."""
        query = delete(EvidenceRow).where(EvidenceRow.project == project)
        if test_id is not None:
            query = query.where(EvidenceRow.test_id == test_id)
        with self.session(write=True) as session:
            result = session.execute(query)
            count: int = getattr(result, "rowcount", 0)
            return count
