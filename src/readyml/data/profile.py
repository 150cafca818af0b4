"""Mergeable column profiles built on Apache DataSketches.

A :class:`Profile` summarises a frame column by column: counts of rows, nulls, NaN and
infinities; exact min, max, mean and standard deviation (merged with Chan's parallel
formula); quantiles and histograms from a KLL sketch; a distinct-count estimate from
HyperLogLog (see ``_sketches``); the most frequent values from a frequent-items sketch; and
string length statistics. ``profile(A).merge(profile(B))`` equals ``profile(A | B)``:
exactly for counts, min and max, to rounding for mean and standard deviation, and within the
sketches' stated error for quantiles, distinct counts and frequencies. So serving traffic can
be profiled in chunks and combined.

Each column costs one vectorised pass (see ``_columns``); an Arrow table is profiled in place,
with the same result as its pandas conversion (see ``_arrow``); columns of large frames are
profiled on several threads (see ``_parallel``). Numbers are scanned in
cache-sized blocks, the KLL sketch receives every finite value up to 65,536 of them and a
stratified 1-in-2^level sample beyond (``kll_level``; merging weights each side by its
level), and labels are counted first, so sketch updates run per distinct value, not per row.
NaN counts as missing (as in pandas); statistics are over finite values only.

A numeric column of at most ``EXACT_VALUES_LIMIT`` finite values also keeps them
(``exact_values``, in memory only: not in ``to_dict``), so drift between profiles of data can
be computed exactly and the same every run (KLL compaction is random, with no seed to set).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import datasketches as ds
import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

from readyml.data import _arrow
from readyml.data import _columns as cols
from readyml.data import _sketches as sk
from readyml.data._parallel import map_columns
from readyml.data._types import FEATURE_TYPES, MIXED, column_type, is_numeric
from readyml.errors import DataError

FORMAT_VERSION: Final = 1
DEFAULT_QUANTILES: Final = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS: Final = 10  # equal-width bins between min and max in ``to_dict``
TOP_VALUES: Final = 10  # most frequent values listed in ``to_dict``
_INT64_MAX: Final = 2**63 - 1  # counts are used in numpy arithmetic


def _new_hll() -> Any:
    return ds.hll_sketch(sk.HLL_LG_K)


def _new_frequent() -> Any:
    return ds.frequent_strings_sketch(sk.FREQUENT_LG_MAP)


@dataclass
class ColumnProfile:
    """Mergeable summary of one column.

    ``n_values`` counts the values behind the distribution: finite numbers for numeric
    columns (``float``, ``int``, ``datetime`` as nanoseconds since the epoch), non-null labels
    for the others (``bool``, ``category``, ``string``, ``mixed``). The sum of squared
    deviations from the mean is ``m2 * 4**m2_exp`` (``m2_exp`` is 0 unless values are so large
    that it overflows). ``integral``: every finite value is a whole number. ``timezone``: the
    time zone of a datetime column whose values carry one (they are held as UTC).
    ``kll_level``: the KLL sketch holds one value in ``2**kll_level``. ``exact_values``: the
    finite values of a numeric column profiled from data with at most ``EXACT_VALUES_LIMIT`` of
    them (read-only, in row order; ``None`` beyond, and after ``from_dict``, as it is not
    serialized); drift uses them instead of the sketch.
    """

    name: str
    type: str
    count: int = 0
    missing: int = 0
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    n_values: int = 0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    m2: float = 0.0
    m2_exp: int = 0
    length_min: int | None = None
    length_max: int | None = None
    length_sum: int = 0
    integral: bool = True
    kll_level: int = 0
    timezone: str | None = None
    kll: Any = None
    hll_sampled: Any = field(default_factory=_new_hll)
    hll_exact: Any = field(default_factory=_new_hll)
    frequent: Any = field(default_factory=_new_frequent)
    exact_values: NDArray[np.float64] | None = field(default=None, repr=False, compare=False)

    @property
    def numeric(self) -> bool:
        """Whether the column is profiled as numbers (quantiles) rather than labels."""
        return is_numeric(self.type)

    @property
    def null_share(self) -> float:
        """Share of rows that are missing (0 for a column with no rows)."""
        return self.missing / self.count if self.count else 0.0

    @property
    def std(self) -> float | None:
        """Sample standard deviation (``ddof=1``, as pandas) of the finite values."""
        if not self.numeric or self.n_values < 2:
            return None
        return cols.scaled_sqrt(self.m2, self.m2_exp, self.n_values - 1)

    @property
    def population_std(self) -> float | None:
        """Population standard deviation (``ddof=0``, as numpy) of the finite values."""
        if not self.numeric or self.n_values < 1:
            return None
        return cols.scaled_sqrt(self.m2, self.m2_exp, self.n_values)

    @property
    def distinct(self) -> int:
        """Estimated number of distinct non-null values (at most ``n_values``)."""
        if self.hll_exact is not None:
            estimate = float(self.hll_exact.get_estimate())
        else:
            estimate = float(self.hll_sampled.get_estimate()) * sk.SAMPLE_RATE
        return min(round(estimate), self.n_values)

    @property
    def length_mean(self) -> float | None:
        """Mean length of the labels (non-numeric columns)."""
        if self.numeric or self.n_values == 0:
            return None
        return self.length_sum / self.n_values

    def quantiles(
        self, ranks: Sequence[float] | NDArray[np.float64] = DEFAULT_QUANTILES
    ) -> list[float] | None:
        """Approximate quantiles at ``ranks`` (KLL), or ``None`` without numeric values."""
        if self.kll is None or self.kll.is_empty():
            return None
        return [float(q) for q in self.kll.get_quantiles(list(ranks))]

    def cdf(self, points: Sequence[float] | NDArray[np.float64]) -> NDArray[np.float64]:
        """Approximate share of values ``<= p`` for each point (increasing, unique)."""
        if self.kll is None or self.kll.is_empty():
            return np.zeros(len(points))
        return np.asarray(self.kll.get_cdf(list(points), True), dtype=np.float64)[:-1]

    def histogram(self, bins: int = HISTOGRAM_BINS) -> tuple[list[float], list[int]] | None:
        """Equal-width histogram between min and max: ``(edges, counts)`` from the sketch."""
        if not self.numeric or self.min is None or self.max is None:
            return None
        if self.min == self.max:
            return [self.min, self.max], [self.n_values]
        steps = np.linspace(0.0, 1.0, bins + 1)
        edges = self.min * (1.0 - steps) + self.max * steps  # max - min may overflow
        ranks = np.concatenate([[0.0], self.cdf(edges[1:-1]), [1.0]])
        counts = np.rint(np.diff(ranks) * self.n_values).astype(np.int64)
        return [float(e) for e in edges], [int(c) for c in counts]

    def top(self, k: int = TOP_VALUES) -> list[tuple[str, int]]:
        """Up to ``k`` most frequent values with their counts, most frequent first.

        Counts are exact while the frequent-items sketch holds every value
        (``frequency_error == 0``). Otherwise only values proven more frequent than that error
        are listed, each with the least count it can have. Datetimes are ISO 8601 text.
        """
        if self.frequent is None or self.frequent.is_empty():
            return []
        rows = self.frequent.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_POSITIVES)
        rows = sorted(rows, key=lambda row: (-row[2], row[0]))[:k]
        if self.type == "datetime":
            return [(_timestamp(str(row[0]), self.timezone), int(row[2])) for row in rows]
        return [(str(row[0]), int(row[2])) for row in rows]

    @property
    def frequency_error(self) -> int:
        """Most by which a count of the frequent-items sketch may fall short (0: exact)."""
        if self.frequent is None:
            return 0
        # The sketch states its error only through bounds: upper - lower is the same for all.
        return int(self.frequent.get_upper_bound("") - self.frequent.get_lower_bound(""))

    def lower_bounds(self) -> dict[str, int]:
        """Each value the frequent-items sketch tracks (as fed to it), with its least count.

        A value not listed occurs at most ``frequency_error`` times; every count is exact when
        that error is 0.
        """
        if self.frequent is None or self.frequent.is_empty():
            return {}
        rows = self.frequent.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES)
        return {str(row[0]): int(row[2]) for row in rows}

    def estimate(self, label: str) -> int:
        """Estimated count of one value (0 where the frequent-items sketch is unavailable)."""
        if self.frequent is None:
            return 0
        return int(self.frequent.get_estimate(label))

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        """Profile of the union of the rows behind ``self`` and ``other``.

        Raises:
            DataError: the column holds numbers in one profile and labels in the other.
        """
        if self.name != other.name:
            raise DataError(f"cannot merge profiles of columns {self.name!r} and {other.name!r}")
        kind = _merged_type(self, other)
        out = ColumnProfile(name=self.name, type=kind)
        out.count = self.count + other.count
        out.missing = self.missing + other.missing
        out.nan = self.nan + other.nan
        out.posinf = self.posinf + other.posinf
        out.neginf = self.neginf + other.neginf
        out.n_values = self.n_values + other.n_values
        out.min = _pick(min, self.min, other.min)
        out.max = _pick(max, self.max, other.max)
        out.mean, out.m2, out.m2_exp = _chan(self, other)
        out.length_min = _pick(min, self.length_min, other.length_min)
        out.length_max = _pick(max, self.length_max, other.length_max)
        out.length_sum = self.length_sum + other.length_sum
        out.integral = self.integral and other.integral
        out.timezone = self.timezone if self.timezone == other.timezone else None
        if is_numeric(kind):
            out.kll, out.kll_level = _merge_kll(self, other)
            out.exact_values = _merge_exact(self, other)
        else:
            out.kll = None
        out.hll_sampled = _union_hll(self.hll_sampled, other.hll_sampled)
        if self.hll_exact is not None and other.hll_exact is not None:
            out.hll_exact = _union_hll(self.hll_exact, other.hll_exact)
        else:
            out.hll_exact = None
        if self.frequent is not None and other.frequent is not None:
            out.frequent = ds.frequent_strings_sketch.deserialize(self.frequent.serialize())
            out.frequent.merge(other.frequent)
        else:
            out.frequent = None
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the exact state, a readable summary and the serialized sketches."""
        hist = self.histogram()
        return {
            "name": self.name,
            "type": self.type,
            "count": self.count,
            "missing": self.missing,
            "nan": self.nan,
            "posinf": self.posinf,
            "neginf": self.neginf,
            "n_values": self.n_values,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "m2": self.m2,
            "m2_exp": self.m2_exp,
            "length_min": self.length_min,
            "length_max": self.length_max,
            "length_sum": self.length_sum,
            "integral": self.integral,
            "kll_level": self.kll_level,
            "timezone": self.timezone,
            "summary": {
                "std": self.std,
                "distinct": self.distinct,
                "null_share": self.null_share,
                "quantiles": _quantile_dict(self.quantiles()),
                "histogram": None if hist is None else {"edges": hist[0], "counts": hist[1]},
                "top": [{"value": v, "count": c} for v, c in self.top()],
                "length_mean": self.length_mean,
            },
            "sketches": {
                "kll": None if self.kll is None else sk.encode(self.kll.serialize()),
                "hll_sampled": sk.encode(self.hll_sampled.serialize_compact()),
                "hll_exact": None
                if self.hll_exact is None
                else sk.encode(self.hll_exact.serialize_compact()),
                "frequent": None if self.frequent is None else sk.encode(self.frequent.serialize()),
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnProfile:
        """Rebuild from :meth:`to_dict` output (the ``summary`` is ignored).

        Raises:
            DataError: a key is missing, a value has the wrong type, or a sketch is damaged.
        """
        where = "profile column"
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected an object, found {_shown(data)}")
        name = _field(data, "name", where)
        if not isinstance(name, str):
            raise DataError(f"{where}: name: expected text, found {_shown(name)}")
        where = f"profile column {name!r}"
        kind = _field(data, "type", where)
        if kind not in (*FEATURE_TYPES, MIXED):
            raise DataError(
                f"{where}: type: expected one of {', '.join((*FEATURE_TYPES, MIXED))}, "
                f"found {_shown(kind)}"
            )
        out = cls(name=name, type=kind)
        for key in ("count", "missing", "nan", "posinf", "neginf", "n_values", "length_sum"):
            value = _whole(_field(data, key, where), f"{where}: {key}", low=0, high=_INT64_MAX)
            setattr(out, key, value)
        for key in ("min", "max", "mean"):
            value = _field(data, key, where)
            setattr(out, key, None if value is None else _number(value, f"{where}: {key}"))
        if out.min is not None and out.max is not None and out.min > out.max:
            raise DataError(f"{where}: min: expected at most max ({out.max:g}), found {out.min:g}")
        out.m2 = _number(_field(data, "m2", where), f"{where}: m2", low=0.0)
        out.m2_exp = _whole(data.get("m2_exp", 0), f"{where}: m2_exp")
        integral = data.get("integral", True)
        if not isinstance(integral, bool):
            raise DataError(f"{where}: integral: expected true or false, found {_shown(integral)}")
        out.integral = integral
        # A level is the log2 of a sampling rate of rows; merging loops over level differences.
        out.kll_level = _whole(data.get("kll_level", 0), f"{where}: kll_level", low=0, high=63)
        timezone = data.get("timezone")
        if timezone is not None and not isinstance(timezone, str):
            raise DataError(f"{where}: timezone: expected text, found {_shown(timezone)}")
        out.timezone = timezone
        for key in ("length_min", "length_max"):
            value = _field(data, key, where)
            setattr(out, key, None if value is None else _whole(value, f"{where}: {key}", low=0))
        sketches = _field(data, "sketches", where)
        if not isinstance(sketches, dict):
            raise DataError(f"{where}: sketches: expected an object, found {_shown(sketches)}")
        for key in ("kll", "hll_sampled", "hll_exact", "frequent"):
            setattr(out, key, _load(key, _field(sketches, key, f"{where}: sketches"), where))
        if out.hll_sampled is None:
            raise DataError(f"{where}: sketches.hll_sampled: expected a sketch, found null")
        if out.numeric and out.kll is None:
            raise DataError(
                f"{where}: sketches.kll: expected a sketch for a {kind} column, found null"
            )
        return out


@dataclass
class Profile:
    """Profiles of every column of a frame, mergeable across chunks.

    >>> import pandas as pd
    >>> left = profile_frame(pd.DataFrame({"x": [1.0, 2.0]}))
    >>> both = left.merge(profile_frame(pd.DataFrame({"x": [3.0, None]})))
    >>> both.n_rows, both.columns["x"].missing, both.columns["x"].max
    (4, 1, 3.0)
    """

    n_rows: int
    columns: dict[str, ColumnProfile]

    def merge(self, other: Profile) -> Profile:
        """Profile of the rows of both; a column absent on one side counts as missing there."""
        merged: dict[str, ColumnProfile] = {}
        for name in [*self.columns, *(c for c in other.columns if c not in self.columns)]:
            left = self.columns.get(name) or _absent(name, other.columns[name], self.n_rows)
            right = other.columns.get(name) or _absent(name, left, other.n_rows)
            merged[name] = left.merge(right)
        return Profile(n_rows=self.n_rows + other.n_rows, columns=merged)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with ``"format_version": 1``."""
        return {
            "format_version": FORMAT_VERSION,
            "n_rows": self.n_rows,
            "columns": [column.to_dict() for column in self.columns.values()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            DataError: the format version is unknown or the content is malformed.
        """
        if not isinstance(data, dict):
            raise DataError(f"profile: expected an object, found {_shown(data)}")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise DataError(f"profile: expected format_version {FORMAT_VERSION}, found {version!r}")
        n_rows = _whole(
            _field(data, "n_rows", "profile"), "profile: n_rows", low=0, high=_INT64_MAX
        )
        items = _field(data, "columns", "profile")
        if not isinstance(items, list):
            raise DataError(f"profile: columns: expected a list, found {_shown(items)}")
        columns: dict[str, ColumnProfile] = {}
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise DataError(
                    f"profile: columns[{index}]: expected an object, found {_shown(item)}"
                )
            column = ColumnProfile.from_dict(item)
            if column.name in columns:
                raise DataError(
                    f"profile: expected unique column names, found {column.name!r} twice"
                )
            columns[column.name] = column
        return cls(n_rows=n_rows, columns=columns)

    def to_json(self) -> str:
        """Serialize to JSON text (strict JSON: no NaN or infinity)."""
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Profile:
        """Parse :meth:`to_json` output.

        Raises:
            DataError: the text is not JSON or not a profile.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"profile: expected JSON, found invalid text ({exc.msg})") from exc
        return cls.from_dict(data)


def profile_frame(df: pd.DataFrame | pa.Table, *, columns: Iterable[str] | None = None) -> Profile:
    """Profile every column (or the given ``columns``) of ``df`` in one pass per column.

    Args:
        df: the data; an Arrow table (e.g. from :func:`~readyml.data.read_arrow`) is read
            in place and profiled exactly as its pandas conversion would be.
        columns: names to profile, in order; all columns by default.

    Returns:
        The profile.

    Raises:
        DataError: ``df`` is not a DataFrame or Table, a column is missing, or names repeat.

    >>> import pandas as pd
    >>> p = profile_frame(pd.DataFrame({"city": ["Oslo", "Oslo", "Rome"]}))
    >>> p.columns["city"].top()
    [('Oslo', 2), ('Rome', 1)]
    """
    names = column_names(df)
    wanted = chosen_columns(names, columns, "the frame")
    if isinstance(df, pa.Table):
        table, types = df, _arrow.pandas_numpy_types(df)
        done = map_columns(
            lambda name: profile_arrow_column(table, name, types.get(name)), wanted, len(df)
        )
        return Profile(n_rows=df.num_rows, columns=dict(zip(wanted, done, strict=True)))
    series = dict(zip(names, (s for _, s in df.items()), strict=True))
    done = map_columns(lambda name: profile_column(series[name], name=name), wanted, len(df))
    return Profile(n_rows=len(df), columns=dict(zip(wanted, done, strict=True)))


def chosen_columns(names: list[str], columns: Iterable[str] | None, where: str) -> list[str]:
    """The columns to profile: ``columns`` as text, in order, or all ``names``.

    Raises:
        DataError: a chosen column is not among ``names`` (found in ``where``).
    """
    wanted = names if columns is None else [str(c) for c in columns]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(f"profile: column {missing[0]!r} not found in {where}")
    return wanted


def column_names(df: pd.DataFrame | pa.Table) -> list[str]:
    """The data columns of a frame or table, as text (a table's stored pandas index left out).

    Raises:
        DataError: ``df`` is neither a DataFrame nor an Arrow Table, or names repeat.
    """
    if isinstance(df, pa.Table):
        names = _arrow.data_columns(df)
    elif isinstance(df, pd.DataFrame):
        names = [str(c) for c in df.columns]
    else:
        raise DataError(
            f"frame: expected a pandas DataFrame or an Arrow Table, found {type(df).__name__}"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"frame: expected unique column names, found {repeated[0]!r} repeated")
    return names


def profile_column(series: pd.Series, *, name: str | None = None) -> ColumnProfile:
    """Profile one column (see :func:`profile_frame`)."""
    label = str(series.name) if name is None else name
    kind = column_type(series)
    if is_numeric(kind):
        values, nulls = _number_array(series, kind)
        out = _profile_numbers(label, kind, [values], nulls, len(values))
        timezone = getattr(series.dtype, "tz", None)
        out.timezone = None if timezone is None else str(timezone)
        return out
    return _profile_labels(label, kind, cols.label_table(series, kind), len(series))


def profile_arrow_column(table: pa.Table, name: str, numpy_type: str | None) -> ColumnProfile:
    """Profile one column of an Arrow table, read in place (see :func:`profile_frame`)."""
    column = table.column(name)
    numbers = _arrow.number_chunks(column, numpy_type)
    if numbers is not None:
        return _profile_numbers(name, numbers[0], numbers[1], None, len(column))
    labels = _arrow.category_table(column)
    if labels is not None:
        return _profile_labels(name, "category", labels, len(column))
    return profile_column(_arrow.to_series(table, name), name=name)


def numeric_values(series: pd.Series, kind: str) -> NDArray[np.float64]:
    """A numeric column as float64 with NaN for nulls (datetimes as ns since the epoch)."""
    if kind == "datetime":
        values = series
        if series.dtype == object:  # dates, or stamps of several time zones: as UTC
            values = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
        if getattr(values.dtype, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        stamps = np.asarray(values.to_numpy())
        if stamps.dtype.kind != "M":
            stamps = stamps.astype("datetime64[ns]")
        # In the column's own unit, then scaled: converting to ns first wraps past 2262.
        unit, step = np.datetime_data(stamps.dtype)
        per_unit = float(np.array(step, dtype=f"m8[{unit}]").astype("m8[ns]").view(np.int64))
        out = stamps.view(np.int64).astype(np.float64) * per_unit
        out[np.isnat(stamps)] = np.nan
        return out
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    try:
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def label_counts(series: pd.Series) -> pd.Series:
    """Counts of each non-null value as text, most frequent first (one hash pass)."""
    (labels, weights), _ = cols.label_table(series, column_type(series))
    return pd.Series(weights, index=pd.Index(labels, dtype=object), dtype=np.int64)


def _number_array(series: pd.Series, kind: str) -> tuple[NDArray[np.generic], int | None]:
    """The values to scan, without a copy for numpy columns; and the nulls when known apart."""
    dtype = series.dtype
    if kind != "datetime" and isinstance(dtype, np.dtype) and dtype.kind in "iuf":
        return series.to_numpy(), None
    values = numeric_values(series, kind)
    return values, int(np.count_nonzero(np.isnan(values))) if kind == "datetime" else int(
        series.isna().sum()
    )


def _profile_numbers(
    name: str, kind: str, chunks: cols.Chunks, nulls: int | None, count: int
) -> ColumnProfile:
    """Profile of ``count`` numbers; ``nulls`` when they are not the NaN among ``chunks``."""
    scan = cols.scan_column(chunks, count)
    moments = scan.moments
    out = ColumnProfile(name=name, type=kind, count=count)
    out.missing = moments.nan if nulls is None else nulls
    out.nan = moments.nan if kind == "float" else 0
    out.posinf, out.neginf, out.n_values = moments.posinf, moments.neginf, moments.n_values
    out.min, out.max, out.mean = moments.min, moments.max, moments.mean
    out.m2, out.m2_exp = moments.m2, moments.m2_exp
    out.integral = moments.integral
    out.kll = ds.kll_doubles_sketch(sk.KLL_K)
    if not moments.n_values:
        out.exact_values = _frozen(np.empty(0))
        return out
    sample, out.kll_level = cols.quantile_sample(chunks, moments.n_values, scan)
    out.kll.update(sample)
    if out.kll_level == 0 and len(sample) <= sk.EXACT_VALUES_LIMIT:
        out.exact_values = _frozen(np.array(sample, dtype=np.float64))  # a copy: may be a view
    counted, kept = cols.number_counts(chunks, moments, scan.hashed)
    if kept is None and counted is not None:
        kept = counted[0][sk.sampled(sk.hash_floats(counted[0]))]
    if kept is not None:
        sk.update_all(out.hll_sampled, kept.tolist())
    if counted is None or len(counted[0]) > sk.EXACT_DISTINCT_LIMIT:
        out.hll_exact = out.frequent = None
        return out
    uniques, counts = counted
    sk.update_all(out.hll_exact, uniques.tolist())
    top = np.argsort(-counts, kind="stable")[: sk.TOP_PER_CHUNK]
    for value, count in zip(uniques[top].tolist(), counts[top].tolist(), strict=True):
        out.frequent.update(repr(value), count)
    return out


def _profile_labels(
    name: str, kind: str, table: tuple[cols.Table, int], count: int
) -> ColumnProfile:
    """Profile of labels from their counts (``label_table``) in a column of ``count`` rows."""
    (labels, weights), missing = table
    out = ColumnProfile(name=name, type=kind, count=count, missing=missing)
    out.n_values = int(weights.sum())
    if not len(labels):
        return out
    lengths = np.fromiter((len(label) for label in labels), dtype=np.int64, count=len(labels))
    out.length_min, out.length_max = int(lengths.min()), int(lengths.max())
    out.length_sum = int(np.dot(lengths, weights))
    for label, weight in zip(labels[: sk.TOP_PER_CHUNK].tolist(), weights.tolist(), strict=False):
        out.frequent.update(label, weight)
    sk.update_all(out.hll_sampled, labels[sk.sampled(sk.hash_labels(labels))].tolist())
    if len(labels) > sk.EXACT_DISTINCT_LIMIT:
        out.hll_exact = None
    else:
        sk.update_all(out.hll_exact, labels.tolist())
    return out


def _merged_type(left: ColumnProfile, right: ColumnProfile) -> str:
    if left.type == right.type or (right.n_values == 0 and right.numeric == left.numeric):
        return left.type
    if left.n_values == 0 and left.numeric == right.numeric:
        return right.type
    if left.numeric and right.numeric and "datetime" not in (left.type, right.type):
        return "float"
    if not left.numeric and not right.numeric:
        return "mixed" if "mixed" in (left.type, right.type) else "string"
    if left.n_values == 0:
        return right.type
    if right.n_values == 0:
        return left.type
    raise DataError(
        f"column {left.name!r}: cannot merge a profile of type {left.type} "
        f"with one of type {right.type}"
    )


def _absent(name: str, like: ColumnProfile, n_rows: int) -> ColumnProfile:
    out = ColumnProfile(name=name, type=like.type, count=n_rows, missing=n_rows)
    if like.numeric:
        out.kll = ds.kll_doubles_sketch(sk.KLL_K)
        out.exact_values = _frozen(np.empty(0))
    return out


def _pick(choose: Any, left: Any, right: Any) -> Any:
    if left is None:
        return right
    if right is None:
        return left
    return choose(left, right)


def _chan(left: ColumnProfile, right: ColumnProfile) -> tuple[float | None, float, int]:
    if left.mean is None or left.n_values == 0:
        return right.mean, right.m2, right.m2_exp
    if right.mean is None or right.n_values == 0:
        return left.mean, left.m2, left.m2_exp
    return cols.combine(
        (left.n_values, left.mean, left.m2, left.m2_exp),
        (right.n_values, right.mean, right.m2, right.m2_exp),
    )


def _merge_kll(left: ColumnProfile, right: ColumnProfile) -> tuple[Any, int]:
    """Union of two quantile sketches whose samples may have different rates.

    The side sampled more coarsely (higher level) is merged ``2**(difference)`` times, by
    doubling, so that each side keeps the weight of the rows it stands for.
    """
    parts = [p for p in (left, right) if p.kll is not None and not p.kll.is_empty()]
    level = min((p.kll_level for p in parts), default=0)
    out = ds.kll_doubles_sketch(sk.KLL_K)
    for part in parts:
        weighted = part.kll
        for _ in range(part.kll_level - level):
            copy = ds.kll_doubles_sketch.deserialize(weighted.serialize())
            copy.merge(weighted)
            weighted = copy
        out.merge(weighted)
    return out, level


def _merge_exact(left: ColumnProfile, right: ColumnProfile) -> NDArray[np.float64] | None:
    """Both sides' exact values, left then right; ``None`` when one lacks them or too many."""
    parts = [p.exact_values for p in (left, right) if p.n_values]  # no values: nothing lacks
    kept = [part for part in parts if part is not None]
    if len(kept) < len(parts) or sum(len(part) for part in kept) > sk.EXACT_VALUES_LIMIT:
        return None
    return _frozen(np.concatenate([np.empty(0), *kept]))


def _frozen(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """``values`` (an array the profile owns) made read-only."""
    values.flags.writeable = False
    return values


def _union_hll(left: Any, right: Any) -> Any:
    union = ds.hll_union(sk.HLL_LG_K)
    union.update(left)
    union.update(right)
    return union.get_result(ds.tgt_hll_type.HLL_4)


_SKETCH_KINDS: Final = {
    "kll": ds.kll_doubles_sketch,
    "hll_sampled": ds.hll_sketch,
    "hll_exact": ds.hll_sketch,
    "frequent": ds.frequent_strings_sketch,
}


def _load(key: str, text: Any, where: str) -> Any:
    """The sketch under ``sketches.<key>``, or ``None`` for null.

    Raises:
        DataError: the text is not base64 of an intact sketch of the expected kind.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise DataError(f"{where}: sketches.{key}: expected base64 text, found {_shown(text)}")
    try:
        blob = sk.decode(text)
        # The map is allocated at the size the header states: ours never exceed this one.
        if key == "frequent" and len(blob) > 4 and max(blob[3], blob[4]) > sk.FREQUENT_LG_MAP:
            raise ValueError(f"a map of 2^{max(blob[3], blob[4])} slots")
        sketch = _SKETCH_KINDS[key].deserialize(blob)
        if key == "kll":
            _check_kll(sketch)
        elif key != "frequent":
            _check_hll(blob)
    except (ValueError, IndexError, RuntimeError, TypeError, MemoryError) as exc:
        # MemoryError: std::bad_alloc for a size read from the damaged header; none was taken.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"{where}: sketches.{key}: expected a serialized {key} sketch, found damaged data "
            f"({reason})"
        ) from exc
    return sketch


def _check_kll(sketch: Any) -> None:
    """Refuse a KLL sketch whose levels point outside its items or miscount them.

    DataSketches reads these unchecked and later indexes memory with them (a crash, not an
    error). They are read back from the sketch's own serialization, which copies them as read.
    Layout of a sketch of several items: 20 header bytes (the item count at 8), ``num_levels``
    uint32 level starts, min and max, then the retained items, which end the buffer; of one
    item: 8 header bytes and the item.

    Raises:
        ValueError: the levels are inconsistent, or the sketch holds a value that is not
            finite (profiles feed it finite values only).
    """
    image = sketch.serialize()
    if image[0] != 5:  # empty or one item: no levels
        if not np.isfinite(np.frombuffer(image, dtype="<f8", offset=8)).all():
            raise ValueError("a value that is not finite")
        return
    num_levels = image[18]
    items_at = 20 + 4 * num_levels + 16
    if num_levels == 0 or len(image) < items_at or (len(image) - items_at) % 8:
        raise ValueError(f"{num_levels} levels in {len(image)} bytes")
    if not np.isfinite(np.frombuffer(image, dtype="<f8", offset=items_at - 16)).all():
        raise ValueError("a value that is not finite")
    bounds = [*np.frombuffer(image, dtype="<u4", count=num_levels, offset=20).tolist()]
    bounds.append(bounds[0] + (len(image) - items_at) // 8)
    if bounds != sorted(bounds):
        raise ValueError("level boundaries out of order")
    # An item of level h stands for 2**h values; a wrong count makes merges run for ages.
    weight = sum((bounds[h + 1] - bounds[h]) << h for h in range(num_levels))
    if weight != int.from_bytes(image[8:16], "little"):
        raise ValueError("item count does not match the items")


def _check_hll(blob: bytes) -> None:
    """Refuse an HLL sketch of a size out of range, or whose registers lack exceptions.

    A 4-bit register of 15 sends a read to the exception table, which DataSketches does
    unchecked (a crash on union, not an error); so does a size out of range. Layout in HLL
    mode: 40 header bytes (lg_k at 3, mode at 7, exception count at 36), two registers a byte
    (the even slot in the low half), then the exceptions, 4 bytes each: slot in the low 26
    bits, value above.

    Raises:
        ValueError: lg_k is out of range, or the registers and the exceptions do not match.
    """
    if not 4 <= blob[3] <= 21:  # read modulo 32 when sizes are checked, in full on use
        raise ValueError(f"lg_k {blob[3]} outside [4, 21]")
    if blob[0] != 10 or blob[7] & 3 != 2 or (blob[7] >> 2) & 3 != 0:  # not 4-bit registers
        return
    half = 1 << (blob[3] - 1)
    registers = np.frombuffer(blob, dtype=np.uint8, count=half, offset=40)
    tokens = np.flatnonzero(np.stack([registers & 15, registers >> 4], axis=1).ravel() == 15)
    entries = np.frombuffer(blob, dtype="<u4", offset=40 + half)
    slots = np.sort(entries[entries != 0] & 0x3FFFFFF)  # an updatable image has empty entries
    if len(tokens) != int.from_bytes(blob[36:40], "little") or not np.array_equal(slots, tokens):
        raise ValueError("4-bit registers without their exceptions")


def _quantile_dict(values: list[float] | None) -> dict[str, float] | None:
    if values is None:
        return None
    return {f"{rank:g}": value for rank, value in zip(DEFAULT_QUANTILES, values, strict=False)}


def _field(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise DataError(f"{where}: expected key {key!r}, not found")
    return data[key]


def _whole(value: Any, where: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as a whole number within ``[low, high]``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        wide = high is None or high == _INT64_MAX  # that limit only guards numpy arithmetic
        bounds = "" if low is None else f" >= {low}" if wide else f" in [{low}, {high}]"
        raise DataError(f"{where}: expected a whole number{bounds}, found {_shown(value)}")
    return int(value)


def _number(value: Any, where: str, *, low: float | None = None) -> float:
    """``value`` as a finite number, at least ``low``."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or (low is not None and value < low):
        bounds = "" if low is None else f" >= {low:g}"
        raise DataError(f"{where}: expected a finite number{bounds}, found {_shown(value)}")
    return float(value)


def _shown(value: Any) -> str:
    """A found JSON value for a message: scalars as written (text cut short), else the kind."""
    if isinstance(value, str):
        return json.dumps(value[:40]) + ("..." if len(value) > 40 else "")
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return str(value)
    if isinstance(value, dict):
        return "an object"
    return "a list" if isinstance(value, list) else type(value).__name__


def _timestamp(label: str, timezone: str | None) -> str:
    """A datetime label (nanoseconds since the epoch, as the sketch holds it) as ISO 8601.

    In ``timezone`` when it is a known zone; the label as it is when it is no finite number.
    """
    try:
        nanoseconds = float(label)
    except ValueError:
        return label
    if not math.isfinite(nanoseconds):
        return label
    try:  # a float holds nanoseconds near today to 256 ns: microseconds are what is known
        stamp = pd.Timestamp(round(nanoseconds), unit="ns").round("us")
    except (OverflowError, ValueError):
        try:  # outside pandas' range (years 1677 to 2262): as UTC
            micros = np.datetime64(round(nanoseconds / 1e3), "us")
            return str(np.datetime_as_string(micros, "s"))
        except (OverflowError, ValueError):
            return label
    if timezone is not None:
        try:
            stamp = stamp.tz_localize("UTC").tz_convert(timezone)
        except (LookupError, ValueError, TypeError):  # a zone this machine does not know
            stamp = stamp.tz_localize("UTC")
    return stamp.isoformat(timespec="seconds" if stamp.microsecond == 0 else "microseconds")
