"""Which columns are features, their types, and the task, resolved from the spec and the data."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from readyml.config import FeatureType, ProjectSpec
from readyml.errors import ConfigError, DataError
from readyml.types import JSON

# Columns the pipeline adds (production weights, provenance); never features.
RESERVED_PREFIX = "_readyml_"
# An integer label with at most this many distinct values is taken as classes, not a quantity.
MAX_INTEGER_CLASSES = 20


@dataclass(frozen=True)
class FeatureSet:
    """The model's input columns, in order, with their types."""

    types: dict[str, FeatureType]

    @property
    def names(self) -> list[str]:
        """Feature names in model order."""
        return list(self.types)

    @property
    def categorical(self) -> list[str]:
        """Columns encoded as categories."""
        return [n for n, t in self.types.items() if t in ("category", "string", "bool")]

    @property
    def numeric(self) -> list[str]:
        """Columns passed to the model as numbers."""
        return [n for n, t in self.types.items() if t in ("float", "int")]


def infer_type(series: pd.Series) -> FeatureType:
    """The feature type of a column from its dtype."""
    if ptypes.is_bool_dtype(series):
        return "bool"
    if ptypes.is_integer_dtype(series):
        return "int"
    if ptypes.is_float_dtype(series):
        return "float"
    if ptypes.is_datetime64_any_dtype(series):
        return "datetime"
    return "category"


def check_columns(frame: pd.DataFrame, spec: ProjectSpec) -> None:
    """Every column the spec names must be in the data (the message lists what is there), and
    a time split's column must hold dates."""
    present = [str(c) for c in frame.columns]
    shown = ", ".join(present[:20]) + (" …" if len(present) > 20 else "")
    named: list[tuple[str, str]] = [("label", spec.label)]
    named += [("features", f.name) for f in spec.feature_specs() or []]
    named += [("exclude", c) for c in spec.exclude]
    if spec.split.time_column is not None:
        named.append(("split.time_column", spec.split.time_column))
    named += [(f"slices[{s.name}].column", s.column) for s in spec.slices]
    for key, column in named:
        if column not in frame.columns:
            raise DataError(f"{key}: column '{column}' not in the data (columns: {shown})")
    for feature in spec.feature_specs() or []:
        found = None if feature.type is None else type_mismatch(frame[feature.name], feature.type)
        if found is not None:
            raise DataError(
                f"features[{feature.name}].type: expected {feature.type}, found {found} (fix "
                "the type, or leave it out to infer it from the data)"
            )
    if spec.split.method == "time" and spec.split.time_column is not None:
        time_values(frame, spec.split.time_column)


def type_mismatch(values: pd.Series, declared: FeatureType) -> str | None:
    """What in ``values`` contradicts the declared feature type (``None`` when they agree).

    A declared type decides how a column is encoded (``category`` on integer codes one-hot
    encodes them); it cannot turn values into another kind, so ``int`` on fractions,
    ``float`` on text, ``bool`` on more than two values or ``datetime`` on anything but
    datetimes is refused instead of silently ignored.
    """
    present = values.dropna()
    if declared in ("category", "string") or present.empty:
        return None
    if declared == "datetime":
        return None if ptypes.is_datetime64_any_dtype(values) else f"{values.dtype} values"
    if declared == "bool":
        if ptypes.is_bool_dtype(values) or present.nunique() <= 2:
            return None
        return f"{present.nunique()} distinct values"
    numeric = ptypes.is_numeric_dtype(values) and not ptypes.is_datetime64_any_dtype(values)
    if not numeric:
        return f"{values.dtype} values such as {_plain(present.iloc[0])!r}"
    if declared == "int" and ptypes.is_float_dtype(values):
        fractions = present[present != np.floor(present)]
        if not fractions.empty:
            return f"{values.dtype} values such as {_plain(fractions.iloc[0])!r}"
    return None


def _plain(value: object) -> object:
    """A numpy scalar as the Python value (``14.23``, not ``np.float64(14.23)``)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def checked_spec(spec: ProjectSpec) -> JSON:
    """The spec fields the load step's checks read, so that changing one reruns them."""
    champion = spec.gates.champion
    return {
        "label": spec.label,
        "task": spec.task,
        # A declared type is listed only when given, so that other specs' fingerprints stay.
        "features": [
            f.name if f.type is None else [f.name, f.type] for f in spec.feature_specs() or []
        ],
        "exclude": spec.exclude,
        "split": [spec.split.method, spec.split.time_column],
        "slices": [s.columns for s in spec.slices],
        "metrics": [
            spec.metrics.primary,
            [r.metric for r in spec.gates.rules],
            None if champion is None else champion.metric,
        ],
    }


def time_values(frame: pd.DataFrame, column: str) -> pd.Series:
    """The split's time column as datetimes; a column that holds other values is a DataError."""
    values = frame[column]
    if ptypes.is_datetime64_any_dtype(values):
        return values
    expected = f"split.time_column '{column}': expected a date/datetime column"
    if not (ptypes.is_object_dtype(values) or ptypes.is_string_dtype(values)):
        raise DataError(f"{expected}, found {values.dtype}")
    with warnings.catch_warnings():
        # pandas warns when it cannot infer one format and parses value by value; a value
        # it cannot parse is reported below.
        warnings.simplefilter("ignore", UserWarning)
        times = pd.to_datetime(values, errors="coerce")
    bad = values[times.isna() & values.notna()]
    if len(bad):
        raise DataError(f"{expected}, found values such as {bad.iloc[0]!r}")
    return times


def check_task(frame: pd.DataFrame, spec: ProjectSpec) -> str:
    """The task, checked against the label's classes and the metrics the spec names."""
    label = frame[spec.label]
    task = resolve_task(label, spec.task)
    if task == "classification" and label.nunique() < 2:
        classes = label.unique().tolist()
        raise DataError(
            f"label '{spec.label}': classification needs at least 2 classes, "
            f"found {len(classes)} ({', '.join(repr(c) for c in classes)})"
        )
    problem = spec.metric_mismatch(task)
    if problem is not None:
        raise ConfigError(
            f"{problem} (task inferred from label '{spec.label}'; set task to override)"
        )
    return task


def is_reserved(column: object) -> bool:
    """Whether ``column`` is one the pipeline added (see :data:`RESERVED_PREFIX`)."""
    return str(column).startswith(RESERVED_PREFIX)


def resolve_features(frame: pd.DataFrame, spec: ProjectSpec) -> FeatureSet:
    """Declared features with declared or inferred types, or every usable column.

    Without a declared list, every column except the label, ``exclude`` and the split's time
    column is a feature; datetime columns are left out because no estimator takes them raw.
    """
    declared = spec.feature_specs()
    if declared is not None:
        return FeatureSet({f.name: f.type or infer_type(frame[f.name]) for f in declared})
    skip = {spec.label, *spec.exclude}
    skip.update(str(c) for c in frame.columns if is_reserved(c))
    if spec.split.time_column is not None:
        skip.add(spec.split.time_column)
    types: dict[str, FeatureType] = {}
    for column in frame.columns:
        name = str(column)
        if name in skip:
            continue
        kind = infer_type(frame[column])
        if kind != "datetime":
            types[name] = kind
    if not types:
        raise DataError(
            "features: no usable feature columns left after removing label and excludes"
        )
    return FeatureSet(types)


def resolve_task(label: pd.Series, declared: str) -> str:
    """``classification`` or ``regression``: as declared, or from the label's values."""
    if declared != "auto":
        return declared
    if ptypes.is_float_dtype(label):
        return "regression"
    if ptypes.is_integer_dtype(label) and label.nunique() > MAX_INTEGER_CLASSES:
        return "regression"
    return "classification"
