"""Reading a project's evidence rows for the score, one row at a time.

The registry's :meth:`~readyml.registry.Registry.list_evidence` types every column while it
reads, so one damaged row (evidence JSON edited by hand that no longer parses, a ``passed``
that is not a boolean, a date that is not one) fails the whole list. The score must still
score every other test, and say which row is damaged and how: this module reads the rows
untyped and checks each one, returning :class:`~readyml.types.Evidence` for the good rows
and :class:`DamagedEvidence` for the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import column, select, table
from sqlalchemy.exc import SQLAlchemyError

from readyml.errors import RegistryError
from readyml.registry import Registry
from readyml.score.rubric import RUBRIC
from readyml.types import Evidence

_COLUMNS = (
    "id",
    "test_id",
    "passed",
    "automated",
    "project",
    "run_id",
    "model_name",
    "version",
    "created_at",
    "details",
    "artifact",
)
T = TypeVar("T")
_TEST_IDS = frozenset(test.id for test in RUBRIC)
# How far ahead of the scoring clock a row may be dated (writers' clocks differ a little);
# a row dated later would stay the newest, and fresh, whatever is recorded after it.
FUTURE_TOLERANCE = timedelta(hours=1)
# Longest found value quoted in a message, in characters.
_SHOWN = 60


class _Damaged(ValueError):
    """One column of a row does not hold what the store writes there."""


@dataclass(frozen=True)
class DamagedEvidence:
    """An evidence row that cannot be trusted: which row, and what is wrong with it.

    Attributes:
        row_id: The row's ``id`` in the ``evidence`` table.
        test_id: The rubric test the row names, or ``None`` when it names none.
        run_id: The row's run, when readable.
        automated: The row's ``automated`` flag, when readable.
        created_at: When the row was recorded, when readable.
        problem: ``COLUMN: expected WHAT, found WHAT``.
    """

    row_id: int | str
    test_id: str | None
    run_id: str | None
    automated: bool | None
    created_at: datetime | None
    problem: str

    def describe(self) -> str:
        """``evidence row 7 (test model-1, run 9406c72196f0): details: expected ...``."""
        names = [f"test {self.test_id}" if self.test_id else None]
        names.append(f"run {self.run_id}" if self.run_id else None)
        where = ", ".join(name for name in names if name)
        return (
            f"evidence row {self.row_id}" + (f" ({where})" if where else "") + f": {self.problem}"
        )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _Damaged(f"{name}: expected a boolean (0 or 1), found {_shown(value)}")


def _text(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _Damaged(f"{name}: expected text or null, found {_shown(value)}")


def _version(value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise _Damaged(f"version: expected a version number (1, 2, ...) or null, found {_shown(value)}")


def _created_at(value: Any) -> datetime:
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
    if not isinstance(moment, datetime):
        raise _Damaged(f"created_at: expected a date and time, found {_shown(value)}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _details(value: Any) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError as exc:
            text = value if isinstance(value, str) else value.decode("utf-8", "replace")
            raise _Damaged(
                f"details: expected a JSON object, found invalid JSON {_shown(text)} ({exc})"
            ) from None
    if not isinstance(value, dict):
        found = "null" if value is None else f"{type(value).__name__} {_shown(value)}"
        raise _Damaged(f"details: expected a JSON object, found {found}")
    reused = value.get("reused_from_run")
    if reused is not None and not isinstance(reused, str):
        raise _Damaged(f"details.reused_from_run: expected a run id, found {_shown(reused)}")
    limit = value.get("max_age_days")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | float)):
        raise _Damaged(f"details.max_age_days: expected a number of days, found {_shown(limit)}")
    return value


def parse_evidence_row(
    row: Mapping[str, Any], *, now: datetime | None = None
) -> Evidence | DamagedEvidence:
    """Check one row of the ``evidence`` table, as the database returns it untyped.

    SQLite hands back booleans as 0/1, timestamps as ISO text and JSON as text; PostgreSQL
    as booleans, datetimes and parsed JSON. Both are accepted. With ``now``, a row dated
    more than :data:`FUTURE_TOLERANCE` after it is damaged too.

    Example:
        >>> parse_evidence_row({"id": 3, "test_id": "model-1", "passed": 1, "automated": 1,
        ...     "project": "p", "run_id": "r1", "model_name": None, "version": None,
        ...     "created_at": "2026-01-02 03:04:05", "details": "{oops", "artifact": None}
        ...     ).describe()  # doctest: +ELLIPSIS
        "evidence row 3 (test model-1, run r1): details: expected a JSON object, found ..."
    """
    problems: list[str] = []

    def checked(check: Callable[[Any], T], value: Any) -> T | None:
        try:
            return check(value)
        except _Damaged as exc:
            problems.append(str(exc))
            return None

    test_id = row.get("test_id")
    known = test_id if isinstance(test_id, str) and test_id in _TEST_IDS else None
    if known is None:
        problems.append(
            "test_id: expected a rubric test id (data-N, model-N, infra-N, monitor-N "
            f"with N in 1..7), found {_shown(test_id)}"
        )
    passed = checked(partial(_flag, "passed"), row.get("passed"))
    automated = checked(partial(_flag, "automated"), row.get("automated"))
    created_at = checked(_created_at, row.get("created_at"))
    if created_at is not None and now is not None and created_at > now + FUTURE_TOLERANCE:
        problems.append(
            f"created_at: expected a time not after now ({now:%Y-%m-%d %H:%M} UTC), "
            f"found {created_at:%Y-%m-%d %H:%M} UTC"
        )
    details = checked(_details, row.get("details"))
    run_id = checked(partial(_text, "run_id"), row.get("run_id"))
    model_name = checked(partial(_text, "model_name"), row.get("model_name"))
    version = checked(_version, row.get("version"))
    artifact = checked(partial(_text, "artifact"), row.get("artifact"))
    if (
        problems
        or known is None
        or passed is None
        or automated is None
        or created_at is None
        or details is None
    ):
        return DamagedEvidence(
            row_id=row.get("id", "?"),
            test_id=known,
            run_id=run_id,
            automated=automated,
            created_at=created_at,
            problem="; ".join(problems),
        )
    return Evidence(
        test_id=known,
        passed=passed,
        automated=automated,
        project=str(row.get("project")),
        details=details,
        run_id=run_id,
        model_name=model_name,
        version=version,
        artifact=artifact,
        created_at=created_at,
    )


def read_evidence(
    registry: Registry,
    project: str,
    *,
    now: datetime | None = None,
    test_id: str | None = None,
) -> tuple[list[Evidence], list[DamagedEvidence]]:
    """A project's evidence rows (of one rubric test, or all), oldest first: the good ones,
    and the damaged ones (with ``now``, rows dated after it count as damaged: see
    :func:`parse_evidence_row`).

    Raises:
        RegistryError: The metadata store cannot be read at all.
    """
    evidence = table("evidence", *(column(name) for name in _COLUMNS))
    query = (
        select(*evidence.columns)
        .where(evidence.c.project == project)
        .order_by(evidence.c.created_at, evidence.c.id)
    )
    if test_id is not None:
        query = query.where(evidence.c.test_id == test_id)
    try:
        with registry.store.engine.connect() as connection:
            rows = [dict(row) for row in connection.execute(query).mappings()]
    except SQLAlchemyError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RegistryError(
            f"metadata store {registry.store!r}: cannot read evidence ({first})"
        ) from exc
    good: list[Evidence] = []
    damaged: list[DamagedEvidence] = []
    for row in rows:
        parsed = parse_evidence_row(row, now=now)
        if isinstance(parsed, DamagedEvidence):
            damaged.append(parsed)
        else:
            good.append(parsed)
    return good, damaged
