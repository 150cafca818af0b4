"""Reading the loop's JSON record files (manifests, retrain records) with one-line errors."""

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
