"""Data validation: anomalies of a frame against a schema and a reference profile.

Each anomaly names its kind, column, severity, what was expected, what was found and up to
five example row indices (positions in the frame). Default severities:

* error: ``missing_column`` (required feature), ``type_mismatch``, ``too_many_nulls`` in a
  non-nullable feature, ``out_of_range``, ``unseen_categories`` above the allowed share,
  ``nan_or_inf`` (±inf anywhere; NaN where not nullable), ``too_few_rows``;
* warning: ``missing_column`` (optional feature), ``unexpected_column``, ``too_many_nulls``
  above ``max_null_share``, ``constant_column``, ``duplicate_rows``, ``distribution_change``.

``ValidationOptions.severities`` overrides the severity of any kind.

The checks run on the frame's profile; rows are revisited only to name example rows of an
anomaly found. An Arrow table is checked in place, and one of its columns is converted to
pandas only to find such examples, so its report equals that of its pandas conversion.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import datasketches as ds
import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray
from rich.table import Table

from readyml.data import _arrow
from readyml.data._types import MIXED, compatible, is_numeric
from readyml.data.drift import detect_drift
from readyml.data.profile import (
    ColumnProfile,
    Profile,
    column_names,
    numeric_values,
    profile_frame,
)
from readyml.data.schema import FeatureSchema, Schema
from readyml.errors import ConfigError
from readyml.types import Evidence

Severity = Literal["error", "warning"]
MAX_EXAMPLES: Final = 5  # example row indices per anomaly
_HASH_MULTIPLIER: Final = np.uint64(0x100000001B3)  # FNV-1 64-bit prime, to mix column hashes
KINDS: Final = (
    "missing_column",
    "unexpected_column",
    "type_mismatch",
    "too_many_nulls",
    "out_of_range",
    "unseen_categories",
    "nan_or_inf",
    "constant_column",
    "duplicate_rows",
    "too_few_rows",
    "distribution_change",
)


@dataclass(frozen=True)
class Anomaly:
    """One problem found in the data."""

    kind: str
    column: str | None
    severity: Severity
    expected: str
    found: str
    examples: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "kind": self.kind,
            "column": self.column,
            "severity": self.severity,
            "expected": self.expected,
            "found": self.found,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class ValidationOptions:
    """Thresholds of the checks.

    Args:
        min_rows: fewer rows is a ``too_few_rows`` anomaly.
        max_null_share: a larger share of nulls in a nullable column is ``too_many_nulls``.
        max_unseen_category_share: a larger share of values outside a feature's
            ``categories`` is ``unseen_categories``.
        check_duplicates: whether to look for duplicate rows (one vectorised hash per row,
            about as costly as profiling, so only when asked).
        drift_method: ``method`` passed to :func:`~readyml.data.drift.detect_drift`.
        drift_thresholds: ``thresholds`` passed to ``detect_drift``.
        severities: severity per anomaly kind, overriding the defaults.

    Raises:
        ConfigError: a severity names an unknown kind, or is neither error nor warning.
    """

    min_rows: int = 1
    max_null_share: float = 0.5
    max_unseen_category_share: float = 0.0
    check_duplicates: bool = False
    drift_method: str = "auto"
    drift_thresholds: Mapping[str, float] = field(default_factory=dict)
    severities: Mapping[str, Severity] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, level in self.severities.items():
            if kind not in KINDS:
                raise ConfigError(
                    f"validation severities: expected an anomaly kind ({', '.join(KINDS)}), "
                    f"found {kind!r}"
                )
            if level not in ("error", "warning"):
                raise ConfigError(
                    f"validation severities.{kind}: expected 'error' or 'warning', found {level!r}"
                )


@dataclass
class ValidationReport:
    """Anomalies found in one frame; ``ok`` when none has error severity."""

    anomalies: list[Anomaly]
    n_rows: int
    n_columns: int
    profile: Profile | None = None

    @property
    def ok(self) -> bool:
        """Whether no anomaly has error severity."""
        return not any(a.severity == "error" for a in self.anomalies)

    @property
    def errors(self) -> list[Anomaly]:
        """Anomalies of error severity."""
        return [a for a in self.anomalies if a.severity == "error"]

    @property
    def problem(self) -> str:
        """The first error in one line, with how many more there are; ``""`` when ok."""
        errors = self.errors
        if not errors:
            return ""
        first = errors[0]
        where = f"column {first.column!r}: " if first.column else ""
        more = len(errors) - 1
        suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
        return f"{where}{first.kind}: expected {first.expected}, found {first.found}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"ok", "n_rows", "n_columns", "anomalies": [...]}``."""
        return {
            "ok": self.ok,
            "n_rows": self.n_rows,
            "n_columns": self.n_columns,
            "anomalies": [a.to_dict() for a in self.anomalies],
        }

    def to_table(self) -> Table:
        """A rich table, one row per anomaly, errors first."""
        table = Table(title=f"Data validation: {self.n_rows} rows x {self.n_columns} columns")
        for header in ("severity", "kind", "column", "expected", "found", "examples"):
            table.add_column(header)
        ordered = sorted(self.anomalies, key=lambda a: (a.severity != "error", a.kind))
        for a in ordered:
            colour = "red" if a.severity == "error" else "yellow"
            table.add_row(
                f"[{colour}]{a.severity}[/{colour}]",
                a.kind,
                a.column or "",
                a.expected,
                a.found,
                ", ".join(str(i) for i in a.examples),
            )
        return table


_DEFAULT_SEVERITY: Final[dict[str, Severity]] = {
    "unexpected_column": "warning",
    "constant_column": "warning",
    "duplicate_rows": "warning",
    "distribution_change": "warning",
}


def validate_frame(
    df: pd.DataFrame | pa.Table,
    *,
    schema: Schema | None = None,
    reference: Profile | None = None,
    options: ValidationOptions | None = None,
) -> ValidationReport:
    """Check ``df`` against a schema and a reference profile; never raise for bad data.

    Args:
        df: the data: a pandas frame or an Arrow table (read in place, see
            :func:`~readyml.data.read_arrow`).
        schema: the checked-in schema; without it only schema-free checks run.
        reference: profile of the training data, for ``distribution_change``.
        options: thresholds and severities.

    Returns:
        The report, with the frame's profile attached.

    Raises:
        DataError: ``df`` is not a DataFrame or Table, or has repeated column names.

    >>> import pandas as pd
    >>> report = validate_frame(pd.DataFrame({"x": [1.0, float("inf")]}))
    >>> [(a.kind, a.column, a.severity, a.examples) for a in report.anomalies]
    [('nan_or_inf', 'x', 'error', [1])]
    """
    return validate_columns(
        profile_frame(df),
        column_names(df),
        _series_getters(df),
        schema=schema,
        reference=reference,
        options=options,
    )


def validate_columns(
    profile: Profile,
    names: list[str],
    columns: Sequence[Callable[[], pd.Series]],
    *,
    schema: Schema | None = None,
    reference: Profile | None = None,
    options: ValidationOptions | None = None,
) -> ValidationReport:
    """Check data from its profile, reading a column only to name example rows.

    ``columns`` give each of ``names`` as a pandas series, in order, when called; each is
    called at most once per check and its series dropped after, so a caller can read columns
    lazily (see :func:`~readyml.data.validate_file`). Arguments and result as
    :func:`validate_frame`.
    """
    opts = options or ValidationOptions()
    found = _Collector(opts)
    if profile.n_rows < opts.min_rows:
        found.add(
            "too_few_rows", None, f">= {opts.min_rows} rows", f"{profile.n_rows} rows", "error"
        )
    features = {f.name: f for f in schema.features} if schema is not None else {}
    if schema is not None:
        _check_columns(names, schema, found)
    for read, column in zip(columns, profile.columns.values(), strict=True):
        _check_column(functools.cache(read), column, features.get(column.name), found)
    if opts.check_duplicates and profile.n_rows > 1 and names:
        _check_duplicates(columns, profile.n_rows, found)
    if reference is not None:
        _check_drift(reference, profile, opts, found)
    return ValidationReport(
        anomalies=found.anomalies, n_rows=profile.n_rows, n_columns=len(names), profile=profile
    )


def _series_getters(df: pd.DataFrame | pa.Table) -> list[Callable[[], pd.Series]]:
    """Each column as pandas, on demand: a table's column is converted when called."""
    if isinstance(df, pa.Table):
        return [functools.partial(_arrow.to_series, df, name) for name in _arrow.data_columns(df)]
    return [functools.partial(_same, series) for _, series in df.items()]


def _same(series: pd.Series) -> pd.Series:
    return series


class EvidenceStore(Protocol):
    """Anything that keeps ML Test Score evidence (the registry's metadata store does)."""

    def add_evidence(self, evidence: Evidence) -> int:
        """Store one piece of evidence; return its id."""
        ...


def record_validation_evidence(
    store: EvidenceStore,
    report: ValidationReport,
    *,
    project: str,
    test_id: str = "data-1",
    run_id: str | None = None,
    artifact: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Evidence:
    """Record that data was validated, passed when ``report`` has no error anomaly.

    A failing record's ``reason`` details name the first error (see ``report.problem``).

    ``data-1`` (feature expectations captured in a schema and checked) for training data;
    ``monitor-2`` (input invariants checked) for serving inputs.

    Args:
        store: where evidence is kept, e.g. ``registry.store``.
        report: the validation report.
        project: the project name.
        test_id: the ML Test Score test the validation is evidence for.
        run_id: the pipeline run, if any.
        artifact: the schema file or data that was checked.
        details: extra JSON-ready details, merged over the report's counts.

    Returns:
        The evidence as stored.

    >>> import pandas as pd
    >>> class Memory:
    ...     def __init__(self): self.kept = []
    ...     def add_evidence(self, evidence): self.kept.append(evidence); return len(self.kept)
    >>> store = Memory()
    >>> report = validate_frame(pd.DataFrame({"x": [1.0, 2.0]}))
    >>> record_validation_evidence(store, report, project="demo", test_id="monitor-2").passed
    True
    """
    counts = Counter(a.kind for a in report.anomalies)
    evidence = Evidence(
        test_id=test_id,
        passed=report.ok,
        automated=True,
        project=project,
        run_id=run_id,
        artifact=artifact,
        details={
            "rows": report.n_rows,
            "columns": report.n_columns,
            "anomalies": len(report.anomalies),
            "errors": len(report.errors),
            "kinds": dict(sorted(counts.items())),
            **({"reason": report.problem} if not report.ok else {}),
            **dict(details or {}),
        },
    )
    store.add_evidence(evidence)
    return evidence


def raise_for_errors(report: ValidationReport) -> None:
    """Raise :class:`~readyml.errors.AnomalyError` naming the first error, if any."""
    from readyml.errors import AnomalyError

    if not report.ok:
        raise AnomalyError(report.problem)


class _Collector:
    def __init__(self, options: ValidationOptions) -> None:
        self.options = options
        self.anomalies: list[Anomaly] = []

    def add(
        self,
        kind: str,
        column: str | None,
        expected: str,
        found: str,
        severity: Severity | None = None,
        examples: NDArray[np.bool_] | list[int] | None = None,
    ) -> None:
        level = (
            self.options.severities.get(kind) or severity or _DEFAULT_SEVERITY.get(kind, "error")
        )
        if isinstance(examples, np.ndarray):
            examples = np.flatnonzero(examples)[:MAX_EXAMPLES].tolist()
        self.anomalies.append(
            Anomaly(kind, column, level, expected, found, list(examples or [])[:MAX_EXAMPLES])
        )


def _check_columns(names: list[str], schema: Schema, found: _Collector) -> None:
    present = set(names)
    for feature in schema.features:
        if feature.name not in present:
            found.add(
                "missing_column",
                feature.name,
                "column present" + (" (required)" if feature.required else ""),
                "column missing",
                "error" if feature.required else "warning",
            )
    declared = set(schema.names)
    for name in (n for n in names if n not in declared):
        found.add("unexpected_column", name, "only schema columns", "column not in schema")


def _check_column(
    series: Callable[[], pd.Series],
    column: ColumnProfile,
    feature: FeatureSchema | None,
    found: _Collector,
) -> None:
    name = column.name
    opts = found.options
    nulls = column.missing
    if column.posinf or column.neginf:
        values = numeric_values(series(), column.type)
        found.add(
            "nan_or_inf",
            name,
            "finite values",
            f"{column.posinf} +inf, {column.neginf} -inf",
            examples=np.isinf(values),
        )
    if feature is not None and not feature.nullable and nulls:
        kind = "nan_or_inf" if column.type == "float" and column.nan else "too_many_nulls"
        found.add(
            kind,
            name,
            "no nulls (nullable: false)",
            _count(nulls, column.count, "null"),
            "error",
            examples=series().isna().to_numpy(),
        )
    elif column.count and column.null_share > opts.max_null_share:
        found.add(
            "too_many_nulls",
            name,
            f"null share <= {opts.max_null_share:g}",
            _count(nulls, column.count, "null"),
            "warning",
            examples=series().isna().to_numpy(),
        )
    if column.n_values >= 2 and _is_constant(column):
        value = column.top(1)[0][0] if column.top(1) else f"{column.min:g}"
        found.add(
            "constant_column", name, "at least 2 distinct values", f"every value is {value!r}"
        )
    if feature is None or column.n_values == 0:
        return
    if not _type_ok(feature, column):
        found.add(
            "type_mismatch",
            name,
            f"type {feature.type}",
            f"type {column.type} ({series().dtype})",
            examples=_wrong_type_rows(series(), feature.type),
        )
        return
    if is_numeric(column.type) and column.type != "datetime":
        _check_range(series, column, feature, found)
    if feature.categories is not None:
        _check_categories(series, column, feature, found)


def _type_ok(feature: FeatureSchema, column: ColumnProfile) -> bool:
    if compatible(feature.type, column.type):
        return True
    if feature.type == "int" and column.type == "float":
        return column.min is None or (column.nan == column.missing and column.integral)
    # Values of several kinds are profiled as text, and a schema inferred from them is text.
    return column.type == MIXED and feature.type in ("category", "string")


def _wrong_type_rows(series: pd.Series, expected: str) -> NDArray[np.bool_]:
    present = series.notna().to_numpy()
    if expected in ("float", "int"):
        parsed = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = present & np.isnan(parsed)
        if expected == "int":
            bad |= present & ~np.isnan(parsed) & (np.mod(np.nan_to_num(parsed), 1) != 0)
        return np.asarray(bad, dtype=bool)
    if expected == "bool":
        is_bool = series.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
        return np.asarray(present & ~is_bool, dtype=bool)
    if expected == "datetime":
        parsed_dt = pd.to_datetime(series, errors="coerce")
        return np.asarray(present & parsed_dt.isna().to_numpy(), dtype=bool)
    is_text = series.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    return np.asarray(present & ~is_text, dtype=bool)


def _check_range(
    series: Callable[[], pd.Series],
    column: ColumnProfile,
    feature: FeatureSchema,
    found: _Collector,
) -> None:
    low, high = feature.min, feature.max
    below = low is not None and column.min is not None and column.min < low
    above = high is not None and column.max is not None and column.max > high
    if not (below or above):
        return
    values = numeric_values(series(), column.type)
    mask = np.zeros(len(values), dtype=bool)
    if low is not None:
        mask |= values < low
    if high is not None:
        mask |= values > high
    shown_low, least = _apart(low, column.min, "-inf", past=below)
    shown_high, most = _apart(high, column.max, "inf", past=above)
    found.add(
        "out_of_range",
        column.name,
        f"values in [{shown_low}, {shown_high}]",
        f"{int(mask.sum())} of {column.count} rows outside (min {least}, max {most})",
        examples=mask,
    )


def _check_categories(
    data: Callable[[], pd.Series],
    column: ColumnProfile,
    feature: FeatureSchema,
    found: _Collector,
) -> None:
    allowed = list(feature.categories or [])
    if _only_known_labels(column, set(allowed)):
        return
    series = data()
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        bad = [i for i, c in enumerate(series.cat.categories) if str(c) not in set(allowed)]
        unseen = np.isin(codes, np.asarray(bad, dtype=codes.dtype))
        text = series
    else:
        present = series.notna().to_numpy()
        text = series if column.type == "string" else series.astype(str)
        unseen = present & ~text.isin(allowed).to_numpy()
    n_unseen = int(np.count_nonzero(unseen))
    share = n_unseen / column.n_values
    if n_unseen and share > found.options.max_unseen_category_share:
        values = pd.unique(text[unseen].astype(str))[:MAX_EXAMPLES]
        found.add(
            "unseen_categories",
            column.name,
            f"unseen share <= {found.options.max_unseen_category_share:g} "
            f"of {len(allowed)} categories",
            f"share {share:.3g} ({n_unseen} rows; e.g. {', '.join(repr(v) for v in values)})",
            examples=unseen,
        )


def _only_known_labels(column: ColumnProfile, allowed: set[str]) -> bool:
    """Whether the profile proves every label allowed (its frequency sketch is exact)."""
    sketch = column.frequent
    if column.numeric or sketch is None:
        return False
    rows = sketch.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES)
    exact = all(low == high for _, _, low, high in rows)
    if not exact or sum(row[1] for row in rows) != sketch.total_weight:
        return False
    return all(row[0] in allowed for row in rows)


def _check_duplicates(
    columns: Sequence[Callable[[], pd.Series]], n_rows: int, found: _Collector
) -> None:
    duplicated = pd.Series(_row_hashes(columns)).duplicated().to_numpy()
    count = int(duplicated.sum())
    if count:
        found.add(
            "duplicate_rows",
            None,
            "no duplicate rows",
            _count(count, n_rows, "duplicate"),
            examples=duplicated,
        )


def _row_hashes(columns: Sequence[Callable[[], pd.Series]]) -> NDArray[np.uint64]:
    """One 64-bit hash per row, combined column by column so one column is held at a time."""
    combined: NDArray[np.uint64] | None = None
    for read in columns:
        series = read()
        try:
            hashed = pd.util.hash_pandas_object(series, index=False).to_numpy()
        except TypeError:  # unhashable values (lists, dicts): hash their text
            hashed = pd.util.hash_pandas_object(series.astype(str), index=False).to_numpy()
        if combined is None:
            combined = np.array(hashed, dtype=np.uint64)
            continue
        np.multiply(combined, _HASH_MULTIPLIER, out=combined)  # wraps around, as intended
        np.bitwise_xor(combined, hashed, out=combined)
    assert combined is not None  # callers pass at least one column
    return combined


def _check_drift(
    reference: Profile, current: Profile, opts: ValidationOptions, found: _Collector
) -> None:
    report = detect_drift(
        reference, current, method=opts.drift_method, thresholds=opts.drift_thresholds
    )
    for name, result in report.columns.items():
        if not result.drifted:
            continue
        if result.p_value is not None:
            expected = f"{result.method} adjusted p >= {result.threshold:g}"
            got = f"adjusted p {result.adjusted_p_value:.3g} (statistic {result.statistic:.3g})"
        else:
            expected = f"{result.method} < {result.threshold:g}"
            got = f"{result.method} {result.statistic:.3g}"
        found.add("distribution_change", name, expected, got)


def _is_constant(column: ColumnProfile) -> bool:
    if column.numeric:
        return column.min is not None and column.min == column.max
    top = column.top(2)
    return len(top) == 1 and top[0][1] == column.n_values


def _count(part: int, total: int, what: str) -> str:
    share = part / total if total else 0.0
    return f"{part} {what} of {total} rows ({share:.1%})"


def _apart(
    bound: float | None, value: float | None, unbounded: str, *, past: bool
) -> tuple[str, str]:
    """``bound`` and the observed ``value``; when ``value`` is ``past`` the bound, with as many
    significant digits (6 at least) as tell them apart: 0.5999999999999996 is not 0.6."""
    shown = (
        (unbounded if bound is None else f"{bound:g}"),
        "none" if value is None else f"{value:g}",
    )
    if not past or bound is None or value is None:
        return shown
    for digits in range(6, 18):
        shown = f"{bound:.{digits}g}", f"{value:.{digits}g}"
        if shown[0] != shown[1]:
            return shown
    return repr(bound), repr(value)
