"""Drift tests between a reference and a current sample: KS, chi-square, PSI, Wasserstein,
Jensen-Shannon and L-infinity, on raw arrays or on mergeable profiles.

Every method is one object with ``run(reference, current)`` (raw arrays, exact) and
``from_profiles(reference, current)`` (column profiles: approximate, unless they keep their
values), both returning a :class:`DriftResult`.

Automatic choice (``method="auto"``), following Evidently's default rule (TFDV has no
default: it asks for L-infinity on categorical and Jensen-Shannon on numeric features):

* numeric column with more than 5 distinct values (reference | current):
  Kolmogorov-Smirnov (p < 0.05) when the reference has at most 1,000 values, otherwise
  Wasserstein distance normalised by the reference standard deviation (drift at ≥ 0.1);
* categorical, boolean, text, or numeric with at most 5 distinct values:
  chi-square (p < 0.05) up to 1,000 reference values, otherwise Jensen-Shannon (≥ 0.1).
  (Evidently uses a Z-test for two values and few rows; we use chi-square there too.)

Definitions. *Jensen-Shannon* is reported as a **distance** (the square root of the
divergence) with **base-2 logarithms**, so it lies in [0, 1]; this is
``scipy.spatial.distance.jensenshannon(p, q, base=2)``. Evidently uses the same distance with
natural logarithms (range [0, 0.833]); TFDV reports the divergence. *PSI* is
``Σ (c - r)·ln(c / r)`` over bins with empty shares replaced by 1e-4. *Wasserstein* is
scipy's ``wasserstein_distance`` divided by ``max(std(reference), 1e-3)`` (population std).
*L-infinity* is the largest absolute difference of category shares. *Chi-square* compares
current counts with reference shares scaled to the current total (``scipy.stats.chisquare``);
categories unseen in the reference get a pseudo-count of 0.5 there. Numeric values are binned
for PSI, Jensen-Shannon, chi-square and L-infinity into ``bins`` reference-quantile bins
``(q_i, q_{i+1}]``.

From profiles: bins and quantiles come from KLL sketches and categories from frequent-items
sketches. Those count exactly up to about 768 distinct values; beyond, a count may be short by
the sketch's error. Then a value is compared on its own only where one side counts it over
twice that side's error and over 30 times (fewer is mostly sampling noise), at the sketches'
estimates; all other values fall into one "other" bucket per side (the rest of its non-null
values). So sketch error does not make rare values look new or gone, and a shift among rare
values shows only through the "other" bucket.
KS from sketches evaluates both CDFs at 1,000 quantiles of each sketch; its p-value uses the
statistic reduced by the two sketches' rank-error bounds (≈ 0.013 each at k = 200),
so sketch error alone does not raise drift. Wasserstein from sketches averages
``|Q_ref(u) - Q_cur(u)|`` over 1,000 ranks. Chi-square on numeric bins from sketches counts
with the KLL rank error (about 1.3 % of n per bin), which inflates the statistic on large
samples: it is never chosen automatically there (Wasserstein is), and its p-value should be
read as a rough indicator only.

Exact values. A profile made from data keeps the values of each numeric column of at most
``EXACT_VALUES_LIMIT`` (32,768) finite values, in memory (see ``readyml.data.profile``). When
both sides have them, ``from_profiles`` is ``run`` on them: the numbers of the frame path,
exactly. When one side has them (e.g. data against a profile read from JSON), that side's
quantiles and CDF are exact (rank error 0) and the other's come from its sketch. KLL
compaction flips coins that DataSketches gives no way to seed, so this is what makes the same
inputs give the same drift numbers every run; only columns beyond the limit on both sides,
or two profiles read from JSON, rest on the sketches alone (then the same profile files still
give the same numbers: reading a sketch is deterministic).

Verdicts. p-value tests are corrected for the number of p-value tests in one report
(Benjamini-Hochberg by default, or Bonferroni); distance tests compare with their threshold.
The dataset drifts when the share of drifted columns is at least ``drift_share`` (0.5).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Final, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from readyml.data._types import column_type, is_numeric
from readyml.data.profile import ColumnProfile, Profile, label_counts, numeric_values, profile_frame
from readyml.errors import ConfigError, DataError

SMALL_SAMPLE: Final = 1000  # reference values up to which p-value tests are chosen
FEW_VALUES: Final = 5  # numeric columns with this many distinct values count as categorical
PSI_FLOOR: Final = 1e-4  # share used for empty bins in PSI (as Evidently)
STD_FLOOR: Final = 1e-3  # smallest scale for the normalised Wasserstein distance
UNSEEN_PSEUDO_COUNT: Final = 0.5  # reference count given to categories it never saw
GRID: Final = 1000  # ranks used to compare quantile sketches
HEAVY_HITTER: Final = 2  # values above this many sketch errors are compared one by one
HEAVY_MIN_COUNT: Final = 30  # ... and counted over this often (less: sampling noise)

Correction = Literal["bh", "bonferroni", "none"]
Counts = tuple[NDArray[np.float64], NDArray[np.float64]]


@dataclass(frozen=True)
class DriftResult:
    """Outcome of one drift test on one column.

    ``drifted`` compares ``adjusted_p_value`` (p-value tests) or ``statistic`` (distances)
    with ``threshold``. ``details`` holds method-specific numbers (e.g. the raw distance).
    """

    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    column: str | None = None
    adjusted_p_value: float | None = None
    details: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "column": self.column,
            "method": self.method,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "adjusted_p_value": self.adjusted_p_value,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "details": dict(self.details),
        }


class DriftMethod:
    """Base of the drift tests: ``run`` on arrays, ``from_profiles`` on column profiles."""

    name: ClassVar[str] = ""
    uses_p_value: ClassVar[bool] = False
    numeric_only: ClassVar[bool] = False
    default_threshold: ClassVar[float] = 0.1

    def __init__(self, *, threshold: float | None = None, bins: int = 10) -> None:
        self.threshold = threshold
        self.bins = bins

    @property
    def threshold_in_use(self) -> float:
        """The threshold in use: the given one or the method's default."""
        return self.default_threshold if self.threshold is None else self.threshold

    def run(self, reference: ArrayLike, current: ArrayLike) -> DriftResult:
        """Compare raw samples (numbers, or labels of any type for categorical methods).

        Raises:
            DataError: a side has no values, or labels were given to a numeric-only test.
        """
        ref, cur = np.asarray(reference), np.asarray(current)
        if _is_number_array(ref) and _is_number_array(cur):
            return self._numbers(_finite(ref, "reference"), _finite(cur, "current"))
        if self.numeric_only:
            raise DataError(f"drift test {self.name!r}: expected numeric values, found labels")
        return self._histogram(*_label_counts(ref, cur))

    def from_profiles(self, reference: ColumnProfile, current: ColumnProfile) -> DriftResult:
        """Compare two column profiles (exactly when both keep their values, else from
        sketches; see the module docstring).

        Raises:
            DataError: a side has no values, or the profiles cannot support this test.
        """
        for side, prof in (("reference", reference), ("current", current)):
            if prof.n_values == 0:
                raise DataError(f"column {prof.name!r}: the {side} data has no values")
        if reference.numeric and current.numeric:
            if reference.exact_values is not None and current.exact_values is not None:
                return self._numbers(reference.exact_values, current.exact_values)
            return self._sketches(reference, current)
        if self.numeric_only:
            raise DataError(f"drift test {self.name!r}: column {reference.name!r} is not numeric")
        return self._histogram(*_profile_label_counts(reference, current))

    def categorical_from_profiles(
        self, reference: ColumnProfile, current: ColumnProfile
    ) -> DriftResult:
        """Compare two profiles by their value frequencies, numeric or not."""
        return self._histogram(*_profile_label_counts(reference, current))

    def _numbers(self, ref: NDArray[np.float64], cur: NDArray[np.float64]) -> DriftResult:
        return self._histogram(*_bin_numbers(ref, cur, self.bins))

    def _sketches(self, ref: ColumnProfile, cur: ColumnProfile) -> DriftResult:
        return self._histogram(*_bin_profiles(ref, cur, self.bins))

    def _histogram(self, ref: NDArray[np.float64], cur: NDArray[np.float64]) -> DriftResult:
        statistic, p_value = self.score(ref, cur)
        return self._result(statistic, p_value)

    def score(
        self, reference: NDArray[np.float64], current: NDArray[np.float64]
    ) -> tuple[float, float | None]:
        """Statistic (and p-value) from aligned count vectors."""
        raise NotImplementedError

    def _result(self, statistic: float, p_value: float | None, **details: float) -> DriftResult:
        level = self.threshold_in_use
        value = p_value if self.uses_p_value else statistic
        drifted = bool(
            value is not None and (value < level if self.uses_p_value else value >= level)
        )
        return DriftResult(
            method=self.name,
            statistic=float(statistic),
            p_value=p_value,
            threshold=level,
            drifted=drifted,
            adjusted_p_value=p_value,
            details=details,
        )


class KS(DriftMethod):
    """Two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp`` on raw arrays).

    >>> KS().run([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]).drifted
    False
    """

    name = "ks"
    uses_p_value = True
    numeric_only = True
    default_threshold = 0.05

    def _numbers(self, ref: NDArray[np.float64], cur: NDArray[np.float64]) -> DriftResult:
        with warnings.catch_warnings():
            # On some small samples with ties the exact p-value fails and scipy falls back
            # to the asymptotic one itself; its warning leaves the user nothing to do.
            warnings.filterwarnings("ignore", "ks_2samp: Exact calculation", RuntimeWarning)
            res = stats.ks_2samp(ref, cur)
        return self._result(float(res.statistic), float(res.pvalue))

    def _sketches(self, ref: ColumnProfile, cur: ColumnProfile) -> DriftResult:
        ranks = (np.arange(GRID) + 0.5) / GRID
        points: NDArray[np.float64] = np.unique(
            np.concatenate([_quantiles(ref, ranks), _quantiles(cur, ranks)])
        )
        gap = np.abs(_cdf(ref, points) - _cdf(cur, points))
        statistic = float(gap.max()) if len(gap) else 0.0
        slack = _rank_error(ref) + _rank_error(cur)
        big, small = sorted([float(ref.n_values), float(cur.n_values)], reverse=True)
        effective = round(big * small / (big + small))
        p_value = float(stats.kstwo.sf(max(statistic - slack, 0.0), max(effective, 1)))
        return self._result(statistic, p_value, rank_error=slack)


class Wasserstein(DriftMethod):
    """Wasserstein-1 distance divided by the reference standard deviation.

    >>> round(Wasserstein().run([0.0, 1.0], [1.0, 2.0]).statistic, 6)
    2.0
    """

    name = "wasserstein"
    numeric_only = True

    def _numbers(self, ref: NDArray[np.float64], cur: NDArray[np.float64]) -> DriftResult:
        distance = float(stats.wasserstein_distance(ref, cur))
        scale = max(_std(ref), STD_FLOOR)
        return self._result(distance / scale, None, distance=distance, scale=scale)

    def _sketches(self, ref: ColumnProfile, cur: ColumnProfile) -> DriftResult:
        ranks = (np.arange(GRID) + 0.5) / GRID
        gap = np.abs(_quantiles(ref, ranks) - _quantiles(cur, ranks))
        distance = float(gap.mean())
        scale = max(ref.population_std or 0.0, STD_FLOOR)
        return self._result(distance / scale, None, distance=distance, scale=float(scale))


class ChiSquare(DriftMethod):
    """Pearson chi-square test of current counts against reference shares."""

    name = "chisquare"
    uses_p_value = True
    default_threshold = 0.05

    def score(
        self, reference: NDArray[np.float64], current: NDArray[np.float64]
    ) -> tuple[float, float | None]:
        keep = (reference > 0) | (current > 0)
        ref = np.where(reference[keep] > 0, reference[keep], UNSEEN_PSEUDO_COUNT)
        cur = current[keep]
        if len(cur) < 2:
            return 0.0, 1.0
        expected = ref / ref.sum() * cur.sum()
        statistic = float(np.sum((cur - expected) ** 2 / expected))
        return statistic, float(stats.chi2.sf(statistic, len(cur) - 1))


class PSI(DriftMethod):
    """Population stability index over shared bins or categories."""

    name = "psi"

    def score(
        self, reference: NDArray[np.float64], current: NDArray[np.float64]
    ) -> tuple[float, float | None]:
        ref, cur = _shares(reference, current)
        ref, cur = np.maximum(ref, PSI_FLOOR), np.maximum(cur, PSI_FLOOR)
        return float(np.sum((cur - ref) * np.log(cur / ref))), None


class JensenShannon(DriftMethod):
    """Jensen-Shannon distance in bits (square root of the base-2 divergence), in [0, 1]."""

    name = "jensenshannon"

    def score(
        self, reference: NDArray[np.float64], current: NDArray[np.float64]
    ) -> tuple[float, float | None]:
        ref, cur = _shares(reference, current)
        mid = (ref + cur) / 2
        divergence = (_kl(ref, mid) + _kl(cur, mid)) / 2
        return float(np.sqrt(max(divergence, 0.0))), None


class LInfinity(DriftMethod):
    """Largest absolute difference between reference and current shares (TFDV's choice)."""

    name = "linf"

    def score(
        self, reference: NDArray[np.float64], current: NDArray[np.float64]
    ) -> tuple[float, float | None]:
        ref, cur = _shares(reference, current)
        return float(np.max(np.abs(ref - cur))) if len(ref) else 0.0, None


METHODS: Final[dict[str, type[DriftMethod]]] = {
    m.name: m for m in (KS, ChiSquare, PSI, Wasserstein, JensenShannon, LInfinity)
}


def choose_method(*, numeric: bool, n_reference: int, n_distinct: int) -> str:
    """The automatic rule (see the module docstring): a name from ``METHODS``.

    >>> choose_method(numeric=True, n_reference=5000, n_distinct=300)
    'wasserstein'
    """
    if numeric and n_distinct > FEW_VALUES:
        return "ks" if n_reference <= SMALL_SAMPLE else "wasserstein"
    return "chisquare" if n_reference <= SMALL_SAMPLE else "jensenshannon"


@dataclass
class DriftReport:
    """Per-column drift results and the dataset verdict."""

    columns: dict[str, DriftResult]
    skipped: dict[str, str]
    correction: str
    drift_share: float

    @property
    def n_drifted(self) -> int:
        """Number of drifted columns."""
        return sum(r.drifted for r in self.columns.values())

    @property
    def share_drifted(self) -> float:
        """Share of tested columns that drifted."""
        return self.n_drifted / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drifted(self) -> bool:
        """Whether at least ``drift_share`` of the tested columns drifted."""
        return bool(self.columns) and self.share_drifted >= self.drift_share

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "dataset_drifted": self.dataset_drifted,
            "share_drifted": self.share_drifted,
            "n_drifted": self.n_drifted,
            "n_columns": len(self.columns),
            "drift_share": self.drift_share,
            "correction": self.correction,
            "columns": [r.to_dict() for r in self.columns.values()],
            "skipped": dict(self.skipped),
        }


def detect_drift(
    reference: pd.DataFrame | Profile,
    current: pd.DataFrame | Profile,
    *,
    columns: Iterable[str] | None = None,
    method: str | Mapping[str, str] = "auto",
    thresholds: Mapping[str, float] | None = None,
    correction: Correction = "bh",
    drift_share: float = 0.5,
    bins: int = 10,
) -> DriftReport:
    """Test every shared column for drift and give the dataset verdict.

    Two frames are compared exactly on their values; if either side is a :class:`Profile`,
    both are compared through profiles (the frame side is profiled first).

    Args:
        reference: training (or earlier) data, or its profile.
        current: new data, or its profile.
        columns: columns to test; by default those present on both sides.
        method: ``"auto"``, a name from ``METHODS`` for every column, or a mapping from
            column name to method name (missing columns use ``"auto"``).
        thresholds: per-method thresholds, keyed by method name.
        correction: multiple-testing correction of p-values: ``"bh"``, ``"bonferroni"``
            or ``"none"``.
        drift_share: share of drifted columns at which the dataset drifts.
        bins: number of bins for numeric values in histogram tests.

    Returns:
        The report; columns that cannot be tested (e.g. no values) are in ``skipped``.

    Raises:
        ConfigError: unknown method or correction, ``drift_share`` outside (0, 1], or
            fewer than 2 ``bins``.
        DataError: a requested column is missing.

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(0, 1, 500)})
    >>> detect_drift(ref, pd.DataFrame({"x": rng.normal(3, 1, 500)})).dataset_drifted
    True
    """
    if correction not in ("bh", "bonferroni", "none"):
        raise ConfigError(
            f"drift correction: expected bh, bonferroni or none, found {correction!r}"
        )
    if not 0.0 < drift_share <= 1.0:
        raise ConfigError(f"drift_share: expected a share in (0, 1], found {drift_share!r}")
    if bins < 2:
        raise ConfigError(f"drift bins: expected at least 2, found {bins!r}")
    names = _shared_columns(reference, current, columns)
    use_profiles = isinstance(reference, Profile) or isinstance(current, Profile)
    if use_profiles:
        reference = _as_profile(reference, names)
        current = _as_profile(current, names)
    results: dict[str, DriftResult] = {}
    skipped: dict[str, str] = {}
    for name in names:
        chosen = method.get(name, "auto") if isinstance(method, Mapping) else method
        try:
            if isinstance(reference, Profile) and isinstance(current, Profile):
                result = _profile_column(
                    reference.columns[name], current.columns[name], chosen, thresholds, bins
                )
            else:
                assert isinstance(reference, pd.DataFrame) and isinstance(current, pd.DataFrame)
                result = _frame_column(reference[name], current[name], chosen, thresholds, bins)
        except DataError as exc:
            skipped[name] = str(exc)
            continue
        results[name] = replace(result, column=name)
    return DriftReport(
        columns=_correct(results, correction),
        skipped=skipped,
        correction=correction,
        drift_share=drift_share,
    )


def _make(name: str, thresholds: Mapping[str, float] | None, bins: int) -> DriftMethod:
    kind = METHODS.get(name)
    if kind is None:
        raise ConfigError(
            f"drift method: expected auto or one of {', '.join(METHODS)}, found {name!r}"
        )
    return kind(threshold=(thresholds or {}).get(name), bins=bins)


def _frame_column(
    ref: pd.Series, cur: pd.Series, chosen: str, thresholds: Mapping[str, float] | None, bins: int
) -> DriftResult:
    ref_type, cur_type = column_type(ref), column_type(cur)
    numeric = is_numeric(ref_type) and is_numeric(cur_type)
    if numeric:
        where = f"column {ref.name!r}"
        ref_values = _finite(numeric_values(ref, ref_type), "reference", where)
        cur_values = _finite(numeric_values(cur, cur_type), "current", where)
        n_distinct = len(pd.unique(np.concatenate([ref_values, cur_values])))
        n_ref = len(ref_values)
    else:
        n_ref = int(ref.notna().sum())
        n_distinct = FEW_VALUES + 1
    if chosen == "auto":
        chosen = choose_method(numeric=numeric, n_reference=n_ref, n_distinct=n_distinct)
    test = _make(chosen, thresholds, bins)
    if numeric and (n_distinct > FEW_VALUES or test.numeric_only):
        return test.run(ref_values, cur_values)
    ref_counts, cur_counts = label_counts(ref), label_counts(cur)
    if ref_counts.empty or cur_counts.empty:
        side = "reference" if ref_counts.empty else "current"
        raise DataError(f"column {ref.name!r}: the {side} data has no values")
    if test.numeric_only:
        raise DataError(f"drift test {chosen!r}: column {ref.name!r} is not numeric")
    return test._histogram(*_align(ref_counts, cur_counts))


def _profile_column(
    ref: ColumnProfile,
    cur: ColumnProfile,
    chosen: str,
    thresholds: Mapping[str, float] | None,
    bins: int,
) -> DriftResult:
    numeric = ref.numeric and cur.numeric
    few = (
        numeric
        and ref.frequent is not None
        and cur.frequent is not None
        and ref.merge(cur).distinct <= FEW_VALUES
    )
    if chosen == "auto":
        chosen = choose_method(
            numeric=numeric,
            n_reference=ref.n_values,
            n_distinct=FEW_VALUES if few else FEW_VALUES + 1,
        )
    test = _make(chosen, thresholds, bins)
    if few and not test.numeric_only:
        for side, prof in (("reference", ref), ("current", cur)):
            if prof.n_values == 0:
                raise DataError(f"column {prof.name!r}: the {side} data has no values")
        return test.categorical_from_profiles(ref, cur)
    return test.from_profiles(ref, cur)


def _correct(results: dict[str, DriftResult], correction: str) -> dict[str, DriftResult]:
    tested = [n for n, r in results.items() if r.p_value is not None]
    if not tested or correction == "none":
        return results
    p = np.array([results[n].p_value for n in tested], dtype=np.float64)
    m = len(p)
    if correction == "bonferroni":
        adjusted = np.minimum(p * m, 1.0)
    else:
        order = np.argsort(p)
        scaled = p[order] * m / np.arange(1, m + 1)
        monotone = np.minimum.accumulate(scaled[::-1])[::-1]
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(monotone, 1.0)
    out = dict(results)
    for name, value in zip(tested, adjusted.tolist(), strict=False):
        old = results[name]
        out[name] = replace(old, adjusted_p_value=value, drifted=value < old.threshold)
    return out


def _shared_columns(
    reference: pd.DataFrame | Profile,
    current: pd.DataFrame | Profile,
    columns: Iterable[str] | None,
) -> list[str]:
    for side, data in (("reference", reference), ("current", current)):
        if not isinstance(data, pd.DataFrame | Profile):
            raise DataError(
                f"drift: {side} must be a DataFrame or a Profile, found {type(data).__name__}"
            )
    ref_names = _names(reference)
    cur_names = _names(current)
    if columns is None:
        return [n for n in ref_names if n in cur_names]
    wanted = [str(c) for c in columns]
    for name in wanted:
        for side, present in (("reference", ref_names), ("current", cur_names)):
            if name not in present:
                raise DataError(f"drift: column {name!r} not found in the {side} data")
    return wanted


def _names(data: pd.DataFrame | Profile) -> list[str]:
    return list(data.columns) if isinstance(data, Profile) else [str(c) for c in data.columns]


def _as_profile(data: pd.DataFrame | Profile, names: list[str]) -> Profile:
    return data if isinstance(data, Profile) else profile_frame(data, columns=names)


def _is_number_array(values: NDArray[Any]) -> bool:
    return values.dtype.kind in "iuf"


def _finite(values: NDArray[Any], side: str, where: str = "drift") -> NDArray[np.float64]:
    numbers = np.asarray(values, dtype=np.float64).ravel()
    numbers = numbers[np.isfinite(numbers)]
    if not len(numbers):
        raise DataError(f"{where}: the {side} data has no finite values")
    return numbers


def _label_counts(ref: NDArray[Any], cur: NDArray[Any]) -> Counts:
    ref_counts = label_counts(pd.Series(ref.ravel(), dtype=object))
    cur_counts = label_counts(pd.Series(cur.ravel(), dtype=object))
    for side, counts in (("reference", ref_counts), ("current", cur_counts)):
        if counts.empty:
            raise DataError(f"drift: the {side} data has no values")
    return _align(ref_counts, cur_counts)


def _align(ref: pd.Series, cur: pd.Series) -> Counts:
    labels = ref.index.union(cur.index, sort=False)
    return (
        ref.reindex(labels, fill_value=0).to_numpy(dtype=np.float64),
        cur.reindex(labels, fill_value=0).to_numpy(dtype=np.float64),
    )


def _bin_numbers(ref: NDArray[np.float64], cur: NDArray[np.float64], bins: int) -> Counts:
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    size = len(edges) + 1
    return (
        np.bincount(np.searchsorted(edges, ref, side="left"), minlength=size).astype(np.float64),
        np.bincount(np.searchsorted(edges, cur, side="left"), minlength=size).astype(np.float64),
    )


def _bin_profiles(ref: ColumnProfile, cur: ColumnProfile, bins: int) -> Counts:
    edges: NDArray[np.float64] = np.unique(_quantiles(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    out = []
    for prof in (ref, cur):
        ranks = np.concatenate([[0.0], _cdf(prof, edges), [1.0]])
        out.append(np.diff(ranks) * prof.n_values)
    return out[0], out[1]


def _quantiles(prof: ColumnProfile, ranks: NDArray[np.float64]) -> NDArray[np.float64]:
    """Quantiles at ``ranks``: exact where the profile has its values, else from the sketch.

    Exact ones follow KLL's (non-inclusive) definition, the ``floor(rank * n)``-th smallest
    value, which is what the sketch itself gives while it holds every value.
    """
    values = prof.exact_values
    if values is None:
        return np.asarray(prof.quantiles(ranks) or [], dtype=np.float64)
    if not len(values):
        return np.empty(0)
    at = np.minimum((np.asarray(ranks) * len(values)).astype(np.int64), len(values) - 1)
    return np.sort(values)[at]


def _cdf(prof: ColumnProfile, points: NDArray[np.float64]) -> NDArray[np.float64]:
    """Share of values ``<= p`` for each point: exact where the profile has its values."""
    values = prof.exact_values
    if values is None:
        return prof.cdf(points)
    if not len(values):
        return np.zeros(len(points))
    below = np.searchsorted(np.sort(values), points, side="right")
    return np.asarray(below, dtype=np.float64) / len(values)


def _rank_error(prof: ColumnProfile) -> float:
    """The single-sided normalized rank error of the profile's quantiles (0 when exact)."""
    return 0.0 if prof.exact_values is not None else float(prof.kll.normalized_rank_error(False))


def _profile_label_counts(ref: ColumnProfile, cur: ColumnProfile) -> Counts:
    for prof in (ref, cur):
        if prof.frequent is None:
            raise DataError(
                f"column {prof.name!r}: the profile has too many distinct values to compare "
                "frequencies; use a numeric test"
            )
    # Heavy hitters one by one, the rest lumped (see the module docstring).
    exact = ref.frequency_error == cur.frequency_error == 0
    chosen: list[str] = []
    for prof in (ref, cur):
        floor = 0 if exact else max(HEAVY_HITTER * prof.frequency_error, HEAVY_MIN_COUNT)
        chosen += [v for v, low in prof.lower_bounds().items() if low > floor]
    labels = list(dict.fromkeys(chosen))
    counts = []
    for prof in (ref, cur):
        known = np.array([prof.estimate(v) for v in labels], dtype=np.float64)
        counts.append(np.append(known, max(prof.n_values - known.sum(), 0.0)))
    return counts[0], counts[1]


def _shares(ref: NDArray[np.float64], cur: NDArray[np.float64]) -> Counts:
    return ref / max(ref.sum(), 1.0), cur / max(cur.sum(), 1.0)


def _kl(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log2(p[mask] / q[mask])))


def _std(values: NDArray[np.float64]) -> float:
    """``np.std(values)``, computed on values scaled by a power of two so it cannot overflow."""
    peak = float(np.max(np.abs(values))) if len(values) else 0.0
    if not 0.0 < peak < float("inf"):
        return float(np.std(values))
    exponent = int(np.frexp(peak)[1])
    with np.errstate(over="ignore"):
        return float(np.ldexp(np.std(np.ldexp(values, -exponent)), exponent))
