"""Feedback labels: recorded by request id, appended to Parquet, joined to the request log.

Each call appends one file ``{workspace}/feedback/part-{stamp}-{uuid}.parquet`` (written under
a temporary name, then renamed) with ``request_id``, ``label`` (text), ``ts`` (when the
outcome happened, UTC: ISO 8601 text or Unix seconds, from 1970 up to a day after it was
received; defaults to the time received), ``received`` and ``seq`` (order within
the call). Nothing is rewritten: the last label written for an id wins when joined.

Each record given is counted once, in order, as exactly one of: ``new`` (the first label of
its id), ``relabelled`` (a different label, or a different ``ts``, replacing the one in
effect — recorded earlier or earlier in the same call; the later one wins),
``duplicates_ignored`` (the label in effect again, with no ``ts`` or the same one: nothing
written) or ``rejected`` (no id, no label, a label that is not one of the model's classes
when they are given, a time that is not one; listed by its row number, from 1). The four add
up to ``received``. Apart from them, ``unknown`` counts the ids written that are absent from
the request log (kept: the server writes its log in the background, so a label may arrive
before its request's row). Nothing in a batch is lost to another record's problem.

:func:`feedback_app` is the ``POST /v2/feedback`` endpoint as a plain ASGI application.
"""

from __future__ import annotations

import asyncio
import json
import math
import numbers
import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from readyml.errors import DataError
from readyml.monitor.inputs import (
    FEEDBACK_DIR,
    _file_list,
    feedback_files,
    logs_root,
)
from readyml.predict.inputs import describe
from readyml.types import JSON

# Unknown or rejected ids listed in a result (the counts are complete).
MAX_LISTED: Final = 20
# Classes named in a rejected label's message.
MAX_CLASSES_SHOWN: Final = 10
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MAX_FUTURE: Final = timedelta(days=1)  # how far past its receipt a label's ts may lie
MAX_UNIX_SECONDS: Final = 1e11  # past year 5000: a millisecond or nanosecond count, not seconds
# Largest feedback request body the endpoint accepts.
MAX_BODY_BYTES: Final = 16 * 1024 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("label", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("received", pa.timestamp("us", tz="UTC")),
        ("seq", pa.int64()),
    ]
)


@dataclass
class FeedbackResult:
    """What happened to one batch of feedback records.

    ``new + relabelled + duplicates_ignored + rejected == received``: each record is counted
    once. ``unknown`` is apart: how many of the ids written are not in the request log yet.
    """

    received: int = 0
    new: int = 0
    relabelled: int = 0
    duplicates_ignored: int = 0
    rejected: int = 0
    unknown: int = 0
    unknown_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    path: str | None = None

    def to_dict(self) -> JSON:
        """JSON-ready dict."""
        return {
            "received": self.received,
            "new": self.new,
            "relabelled": self.relabelled,
            "duplicates_ignored": self.duplicates_ignored,
            "rejected": self.rejected,
            # The labels written, as answers before the partition said; kept for clients.
            "recorded": self.new + self.relabelled,
            "unknown": self.unknown,
            "unknown_ids": list(self.unknown_ids),
            "errors": list(self.errors),
            "path": self.path,
        }


def _label_text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def _stamp(value: Any, default: datetime) -> datetime:
    """A ``ts`` as UTC: ISO 8601 text, or a number of Unix seconds (never nanoseconds).

    Raises:
        ValueError: Not a time, or one before 1970 or more than a day after ``default`` (a
            label's outcome cannot lie in the future; a day allows for clocks that drift).
    """
    if value is None:
        return default
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"expected ISO 8601 text or Unix seconds, found {describe(value)}")
    if isinstance(value, str | datetime | np.datetime64):
        stamp = pd.Timestamp(value)
    elif isinstance(value, numbers.Real):
        # pandas reads a bare number as nanoseconds; callers send Unix seconds.
        seconds = float(value)
        if not math.isfinite(seconds) or abs(seconds) > MAX_UNIX_SECONDS:
            raise ValueError(f"expected Unix seconds, found {value!r}")
        stamp = pd.Timestamp(seconds, unit="s")
    else:
        raise ValueError(f"expected ISO 8601 text or Unix seconds, found {describe(value)}")
    if pd.isna(stamp):
        raise ValueError(f"expected a time, found {value!r}")
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    result: datetime = stamp.tz_convert("UTC").to_pydatetime()
    if result < EPOCH or result > default + MAX_FUTURE:
        raise ValueError(
            f"expected a time from 1970 up to a day after it was received, found {value!r}"
        )
    return result


def record_feedback(
    workspace: Path,
    records: list[dict[str, Any]],
    *,
    now: datetime | None = None,
    classes: Sequence[str] | None = None,
    numeric: bool = False,
) -> FeedbackResult:
    """Append labels (``{"request_id", "label"[, "ts"]}``) for logged requests.

    Args:
        workspace: The project's ``.readyml`` folder.
        records: One mapping per labelled request.
        now: When the labels were received (default: now).
        classes: The classifier's classes; another label is rejected (``None``: any).
        numeric: Labels must be finite numbers (a regressor's).

    Returns:
        Each record counted once, in order: new, relabelled, duplicate (ignored) or rejected;
        and how many ids written are unknown to the request log.

    Example:
        >>> import tempfile
        >>> ws = Path(tempfile.mkdtemp())
        >>> result = record_feedback(ws, [{"request_id": "r1", "label": "sun"}, {"label": "x"}])
        >>> (result.new, result.rejected, result.unknown)
        (1, 1, 1)
    """
    received = now or datetime.now(UTC)
    result = FeedbackResult(received=len(records))
    valid: list[tuple[int, str, str, datetime, bool]] = []
    for seq, record in enumerate(records):
        label: str | None = None
        ts, problem = received, _problem(record)
        if problem is None:
            label, problem = _label(record.get("label"), classes, numeric=numeric)
        if problem is None:
            ts, problem = _time(record.get("ts"), received)
        if problem is not None or label is None:
            result.rejected += 1
            if len(result.errors) < MAX_LISTED:
                result.errors.append(f"row {seq + 1}: {problem}")
            continue
        valid.append((seq, str(record["request_id"]), label, ts, record.get("ts") is not None))
    if not valid:
        return result
    # The label in effect for each id, record after record: stored first, then this call's.
    effect = _existing(workspace, list(dict.fromkeys(rid for _, rid, _, _, _ in valid)))
    rows: dict[str, tuple[str, datetime, int]] = {}
    for seq, request_id, label, ts, timed in valid:
        before = effect.get(request_id)
        if before is None:
            result.new += 1
        elif _same_label(before[0], label, numeric=numeric) and (
            not timed or pd.Timestamp(before[1]) == pd.Timestamp(ts)
        ):
            result.duplicates_ignored += 1
            continue
        else:
            result.relabelled += 1
        effect[request_id] = (label, ts)
        rows[request_id] = (label, ts, seq)
    if not rows:
        return result
    ids = list(rows)
    logged = _logged(workspace, ids)
    unknown = [i for i in ids if i not in logged]
    result.unknown = len(unknown)
    result.unknown_ids = unknown[:MAX_LISTED]
    result.path = str(_write(workspace, rows, received))
    return result


def _same_label(stored: Any, label: str, *, numeric: bool) -> bool:
    """Whether ``label`` repeats a stored one (a regressor's ``2`` repeats ``2.0``)."""
    if stored is None or (isinstance(stored, float) and math.isnan(stored)):
        return False
    if not numeric:
        return str(stored) == label
    try:
        return float(stored) == float(label)
    except ValueError:
        return False


def _problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"expected an object, found {describe(record)}"
    request_id = record.get("request_id")
    if not isinstance(request_id, str | int) or isinstance(request_id, bool) or request_id == "":
        return f"request_id: expected a non-empty string, found {describe(request_id)}"
    return None


def _time(value: Any, default: datetime) -> tuple[datetime, str | None]:
    """When the outcome happened, or a problem."""
    try:
        return _stamp(value, default), None
    except (ValueError, TypeError, OverflowError) as exc:
        detail = (
            str(exc) if str(exc).startswith("expected ") else f"expected a time, found {value!r}"
        )
        return default, f"ts: {detail}"


def _label(
    value: Any, classes: Sequence[str] | None, *, numeric: bool
) -> tuple[str | None, str | None]:
    """The label text to store, or a problem (``1.0`` matches the class ``1``)."""
    text = _label_text(value)
    if text is None:
        return None, f"label: expected a value, found {value!r}"
    if numeric:
        try:
            number = float(text)
        except ValueError:
            return None, f"label: expected a number, found {value!r}"
        if not math.isfinite(number):
            return None, f"label: expected a finite number, found {value!r}"
        return text, None
    if not classes:
        return text, None
    for candidate in (text, _integer_text(text)):
        if candidate in classes:
            return candidate, None
    shown = ", ".join(classes[:MAX_CLASSES_SHOWN]) + (
        " …" if len(classes) > MAX_CLASSES_SHOWN else ""
    )
    return None, f"label: expected one of {shown}, found {value!r}"


def _integer_text(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def _ids_table(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"request_id": pd.Series(ids, dtype=object)})


def _logged(workspace: Path, ids: list[str]) -> set[str]:
    """Which of ``ids`` appear in any request log of the workspace."""
    files = [
        str(p) for p in sorted(logs_root(workspace).glob("model=*/version=*/hour=*/*.parquet"))
    ]
    if not files:
        return set()
    import duckdb

    with duckdb.connect() as con:
        con.register("wanted", _ids_table(ids))
        found = con.execute(
            "SELECT DISTINCT l.request_id FROM read_parquet("
            + _file_list(files)
            + ", union_by_name=true, hive_partitioning=false) l "
            "JOIN wanted w ON l.request_id = w.request_id"
        ).fetchall()
    return {str(row[0]) for row in found}


def _existing(workspace: Path, ids: list[str]) -> dict[str, tuple[Any, Any]]:
    """The label and ``ts`` in effect for those of ``ids`` already labelled (the last written)."""
    files = feedback_files(workspace)
    if not files:
        return {}
    import duckdb

    with duckdb.connect() as con:
        con.register("wanted", _ids_table(ids))
        found = con.execute(
            "SELECT request_id, label, ts FROM (SELECT f.request_id, f.label, f.ts, "
            "row_number() OVER (PARTITION BY f.request_id ORDER BY f.received DESC, f.seq DESC)"
            " AS rank FROM read_parquet("
            + _file_list(files)
            + ", union_by_name=true) f JOIN wanted w ON f.request_id = w.request_id) "
            "WHERE rank = 1"
        ).fetchall()
    return {str(rid): (label, ts) for rid, label, ts in found}


def _write(workspace: Path, rows: dict[str, tuple[str, datetime, int]], received: datetime) -> Path:
    folder = workspace / FEEDBACK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "request_id": list(rows),
            "label": [v[0] for v in rows.values()],
            "ts": [v[1] for v in rows.values()],
            "received": [received] * len(rows),
            "seq": [v[2] for v in rows.values()],
        },
        schema=_SCHEMA,
    )
    name = f"part-{received.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:12]}.parquet"
    final = folder / name
    partial = folder / f".{name}.partial"
    pq.write_table(table, partial)
    os.replace(partial, final)
    return final


def parse_feedback_body(body: bytes) -> list[dict[str, Any]]:
    """Records from a JSON body: a list, ``{"records": [...]}``, or one record.

    Raises:
        DataError: the body is not JSON or holds no records.
    """
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedbackBodyError(
            f"feedback body: expected JSON, found invalid text ({exc})",
            field="body",
            expected="JSON",
            found="invalid text",
        ) from exc
    if isinstance(data, dict) and "records" in data:
        if not isinstance(data["records"], list):
            raise FeedbackBodyError(
                f"feedback body: records: expected a list of records, found "
                f"{describe(data['records'])}",
                field="records",
                expected="a list of records",
                found=describe(data["records"]),
            )
        data = data["records"]
    elif isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise FeedbackBodyError(
            f"feedback body: expected a list of records, found {describe(data)}",
            field="body",
            expected="a list of records, {records: [...]} or one record",
            found=describe(data),
        )
    return data


class FeedbackBodyError(DataError):
    """A feedback body that holds no records; names the field, what was expected and found."""

    def __init__(self, message: str, *, field: str, expected: str, found: str) -> None:
        super().__init__(message)
        self.field, self.expected, self.found = field, expected, found

    def to_dict(self) -> JSON:
        """The error as the server's JSON body."""
        return {
            "error": str(self),
            "field": self.field,
            "expected": self.expected,
            "found": self.found,
        }


def feedback_app(
    workspace: Path,
    *,
    classes: Sequence[str] | None = None,
    numeric: bool = False,
    labels: Callable[[], tuple[Sequence[str] | None, bool]] | None = None,
) -> ASGIApp:
    """The ``POST /v2/feedback`` endpoint: JSON records in, a :class:`FeedbackResult` out.

    Answers 200 with the counts (unknown ids and bad records included; not the file written),
    400 on a body that
    is not JSON records, 405 on another method and 413 on a body over 16 MiB. The Parquet
    write runs in a worker thread. ``classes`` and ``numeric`` check labels as
    :func:`record_feedback` does; ``labels``, when given, is asked for both at each request
    (a server's models can change while it runs).
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope.get("method") != "POST":
            await _answer(send, 405, {"error": "method: expected POST"}, allow="POST")
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await _answer(send, 413, {"error": f"body: expected <= {MAX_BODY_BYTES} bytes"})
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        try:
            records = parse_feedback_body(b"".join(chunks))
        except FeedbackBodyError as exc:
            await _answer(send, 400, exc.to_dict())
            return
        allowed, numbers = labels() if labels is not None else (classes, numeric)
        result = await asyncio.to_thread(
            record_feedback, workspace, records, classes=allowed, numeric=numbers
        )
        answer = result.to_dict()
        del answer["path"]  # a file of the server: not the client's business
        await _answer(send, 200, answer)

    return app


async def _answer(send: Send, status: int, payload: JSON, *, allow: str | None = None) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if allow is not None:
        headers.append((b"allow", allow.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
