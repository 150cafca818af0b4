"""Slices: named subsets of validation rows, each with its size and metrics (ML Test Score model-6).

Declared slices come from ``slices:`` in readyml.yaml (a column's values, a numeric range, one
slice per value of a column, or the cross of two columns); automatic slices add one per value
of every categorical feature. A slice smaller than the gate's ``min_slice_size`` is reported
with ``judged: false`` and the reason, never silently passed. A declared value found in no
row of the data is a typo until shown otherwise (:func:`check_declared_values`): refused.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from readyml.config import SliceSpec
from readyml.errors import ConfigError, DataError
from readyml.evaluate.metrics import Array, clean, compute_metrics

SliceKind = Literal["declared", "auto"]


@dataclass(frozen=True)
class Slice:
    """One slice's outcome."""

    name: str
    kind: SliceKind
    size: int
    metrics: dict[str, Any] = field(default_factory=dict)
    judged: bool = True
    reason: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (NaN becomes ``None``)."""
        return dict(clean(asdict(self)))


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _order(value: Any) -> tuple[int, float, str]:
    """Numbers in numeric order, then everything else as text."""
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, _label(value))


def _values_mask(column: pd.Series, values: Sequence[Any]) -> Array:
    wanted = {_label(v) for v in values}
    return np.asarray(column.map(_label).isin(wanted).to_numpy() & column.notna().to_numpy())


# Values of a column a refusal names, at most.
_SHOWN_VALUES = 8


def check_declared_values(
    declared: Sequence[SliceSpec],
    frames: Sequence[pd.DataFrame],
    known: Mapping[str, Sequence[Any]] | None = None,
) -> None:
    """Refuse a declared slice value (``values:``) that occurs in no row of ``frames``.

    Such a value is a typo (``rian`` for ``rain``) or stale: its slice is empty or short of
    the rows it was meant to hold, and a gate rule on it would judge nothing. A value listed
    in ``known`` for its column (the schema's categories) is valid though absent from this
    data (``snow`` in a summer's retraining window): its slice is only empty, and a gate
    rule on it vetoes as not judged. A column that no frame has is left to
    :func:`slice_masks`, which names it.

    Raises:
        ConfigError: A listed value matches no row; the message names the slice, the values
            and the column's values (the first few, and the closest match).

    >>> frame = pd.DataFrame({"weather": ["rain", "sun"]})
    >>> check_declared_values([SliceSpec(name="wet", column="weather", values=["rian"])], [frame])
    Traceback (most recent call last):
    ...
    readyml.errors.ConfigError: slices[wet].values: expected values that occur in column \
'weather', found 'rian' in no row of the data (did you mean 'rain'?); its values: 'rain', 'sun'
    """
    for spec in declared:
        if spec.values is None:
            continue
        columns = [frame[spec.column] for frame in frames if spec.column in frame.columns]
        if not columns:
            continue
        present = pd.concat(columns, ignore_index=True).dropna().drop_duplicates()
        found = {_label(value) for value in present}
        allowed = found | {_label(value) for value in (known or {}).get(spec.column) or ()}
        missing = [_label(v) for v in spec.values if _label(v) not in allowed]
        if not missing:
            continue
        shown = sorted(present.tolist(), key=_order)
        listed = ", ".join(repr(_label(v)) for v in shown[:_SHOWN_VALUES])
        more = f" ... ({len(shown)} in all)" if len(shown) > _SHOWN_VALUES else ""
        close = [
            match
            for value in missing
            for match in difflib.get_close_matches(value, sorted(found), n=1)
        ]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ConfigError(
            f"slices[{spec.name}].values: expected values that occur in column "
            f"'{spec.column}', found {', '.join(map(repr, missing))} in no row of the data"
            f"{hint}; its values: {listed or 'none'}{more}"
        )


def slice_masks(
    frame: pd.DataFrame,
    spec: SliceSpec,
    *,
    max_values: int = 50,
) -> Iterator[tuple[str, Array]]:
    """The ``(name, row mask)`` pairs one declared slice expands to.

    Raises:
        DataError: A column the slice names is not in ``frame``.
    """
    for column in spec.columns:
        if column not in frame.columns:
            raise DataError(
                f"slices[{spec.name}]: column '{column}' not in the validation data "
                f"(columns: {', '.join(map(str, frame.columns))})"
            )
    if spec.cross is not None:
        a, b = spec.column, spec.cross
        pairs = frame[[a, b]].dropna().drop_duplicates().head(max_values)
        for va, vb in sorted(
            pairs.itertuples(index=False), key=lambda p: (_order(p[0]), _order(p[1]))
        ):
            mask = _values_mask(frame[a], [va]) & _values_mask(frame[b], [vb])
            yield f"{spec.name}: {a}={_label(va)} & {b}={_label(vb)}", mask
        return
    values = frame[str(spec.column)]
    if spec.values is not None:
        yield spec.name, _values_mask(values, spec.values)
    elif spec.min is not None or spec.max is not None:
        numbers = np.asarray(pd.to_numeric(values, errors="coerce"), dtype=float)
        mask = np.isfinite(numbers)
        if spec.min is not None:
            mask &= numbers >= spec.min
        if spec.max is not None:
            mask &= numbers < spec.max
        yield spec.name, mask
    else:
        for value in sorted(values.dropna().unique().tolist(), key=_order)[:max_values]:
            yield f"{spec.name}={_label(value)}", _values_mask(values, [value])


def auto_slice_columns(frame: pd.DataFrame, features: Sequence[str]) -> list[str]:
    """Categorical features (strings, categories, booleans) among ``features``."""
    chosen = []
    for name in features:
        if name not in frame.columns:
            continue
        dtype = frame[name].dtype
        numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        if not numeric and not pd.api.types.is_datetime64_any_dtype(dtype):
            chosen.append(name)
    return chosen


def evaluate_slices(
    frame: pd.DataFrame,
    *,
    task: str,
    y_true: Array,
    y_pred: Array,
    proba: Array | None,
    classes: Array | None,
    declared: Sequence[SliceSpec],
    features: Sequence[str],
    auto: bool = True,
    max_auto_values: int = 20,
    min_size: int = 30,
) -> list[Slice]:
    """Size and metrics of every declared and automatic slice of the validation rows.

    >>> import numpy as np, pandas as pd
    >>> frame = pd.DataFrame({"city": ["a", "a", "b"]})
    >>> y = np.array([1, 0, 1])
    >>> [(s.name, s.size, s.judged) for s in evaluate_slices(frame, task="classification",
    ...     y_true=y, y_pred=y, proba=None, classes=None, declared=[], features=["city"],
    ...     min_size=2)]
    [('city=a', 2, True), ('city=b', 1, False)]
    """
    found: list[tuple[str, SliceKind, Array, str]] = []
    for spec in declared:
        for name, mask in slice_masks(frame, spec):
            found.append((name, "declared", mask, spec.name))
    if auto:
        declared_columns = {c for s in declared for c in s.columns if s.cross is None}
        for column in auto_slice_columns(frame, features):
            if column in declared_columns:
                continue
            values = frame[column].dropna().unique().tolist()
            shown = sorted(values, key=_order)[:max_auto_values]
            for value in shown:
                found.append(
                    (
                        f"{column}={_label(value)}",
                        "auto",
                        _values_mask(frame[column], [value]),
                        column,
                    )
                )
    results = []
    for name, kind, mask, source in found:
        size = int(mask.sum())
        if size == 0:
            results.append(Slice(name, kind, 0, {}, False, "empty: no validation rows", source))
            continue
        p = None if proba is None else proba[mask]
        metrics = compute_metrics(task, y_true[mask], y_pred[mask], p, classes)
        judged = size >= min_size
        reason = "" if judged else f"too small to judge: {size} rows < min_slice_size {min_size}"
        results.append(Slice(name, kind, size, metrics, judged, reason, source))
    return results
