"""Reading the loop's JSON files (manifests, retrain records, JSON lines) with one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from readyml.errors import DataError

T = TypeVar("T")


def read_record(path: Path, build: Callable[[Any], T], *, what: str, expected: str) -> T:
    """``build`` applied to the JSON in ``path``, or a :class:`DataError` naming ``what``,
    the ``expected`` file and what was wrong with it (a damaged or hand-edited file)."""
    try:
        return build(json.loads(path.read_text("utf-8")))
    except (ValueError, TypeError) as exc:
        raise DataError(f"{what}: expected {expected}, found {type(exc).__name__}: {exc}") from None


def read_json_lines(
    path: Path, *, what: str, expected: str = "a JSON object"
) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file (blank lines skipped), or a :class:`DataError`
    starting with ``what`` (which names the file) and naming the line that is not one."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise DataError(f"{what}: expected {path}, found no such file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{what}: expected UTF-8 JSON lines, found {exc.reason}") from None
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{what}: line {number}: expected {expected}, found invalid JSON ({exc.msg})"
            ) from None
        if not isinstance(record, dict):
            raise DataError(
                f"{what}: line {number}: expected {expected}, found {type(record).__name__}"
            )
        records.append(record)
    return records
