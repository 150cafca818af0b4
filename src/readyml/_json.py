"""JSON-ready values: the one place NaN, infinities and numpy scalars are made plain."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def clean(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None`` (JSON has no NaN) and numpy scalars as
    Python ones, at any depth; mapping keys become text.

    >>> clean({"a": float("nan"), 1: [np.int64(2), np.float32(0.5), np.bool_(True)]})
    {'a': None, '1': [2, 0.5, True]}
    """
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value
