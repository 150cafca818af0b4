"""Tests for readyml.data.drift: scipy parity, sketch paths, auto rule, corrections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from readyml.data import (
    KS,
    METHODS,
    PSI,
    ChiSquare,
    JensenShannon,
    LInfinity,
    Profile,
    Wasserstein,
    choose_method,
    detect_drift,
    profile_frame,
)
from readyml.data._sketches import EXACT_VALUES_LIMIT
from readyml.data.drift import DriftMethod
from readyml.data.profile import ColumnProfile
from readyml.errors import ConfigError, DataError

TOL = 1e-9


def _profiled(values: np.ndarray) -> ColumnProfile:
    """The profile of one column ``x`` made from the data (it keeps exact values)."""
    return profile_frame(pd.DataFrame({"x": values})).columns["x"]


def _sketched(values: np.ndarray) -> ColumnProfile:
    """The same profile read back from JSON: sketches only, as a stored reference is."""
    return Profile.from_json(profile_frame(pd.DataFrame({"x": values})).to_json()).columns["x"]


@pytest.fixture
def samples() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.normal(0, 1, 800), rng.normal(0.2, 1.3, 600)


def test_ks_matches_scipy(samples: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = samples
    ours, theirs = KS().run(ref, cur), stats.ks_2samp(ref, cur)
    assert ours.statistic == pytest.approx(theirs.statistic, abs=TOL)
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=TOL)


def test_wasserstein_matches_scipy(samples: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = samples
    result = Wasserstein().run(ref, cur)
    expected = stats.wasserstein_distance(ref, cur)
    assert result.details["distance"] == pytest.approx(expected, abs=TOL)
    assert result.statistic == pytest.approx(expected / np.std(ref), abs=TOL)


def test_jensen_shannon_matches_scipy_base_2() -> None:
    ref = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20, dtype=object)
    cur = np.array(["a"] * 20 + ["b"] * 30 + ["c"] * 45 + ["d"] * 5, dtype=object)
    p = np.array([50, 30, 20, 0]) / 100
    q = np.array([20, 30, 45, 5]) / 100
    assert JensenShannon().run(ref, cur).statistic == pytest.approx(
        jensenshannon(p, q, base=2), abs=TOL
    )


def test_jensen_shannon_on_numbers_matches_scipy_on_the_same_bins(
    samples: tuple[np.ndarray, np.ndarray],
) -> None:
    ref, cur = samples
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)[1:-1]))
    full = np.concatenate([[-np.inf], edges, [np.inf]])
    p, _ = np.histogram(ref, bins=full)
    q, _ = np.histogram(cur, bins=full)
    # np.histogram bins are [a, b); ours are (a, b]: equal for continuous data
    assert JensenShannon().run(ref, cur).statistic == pytest.approx(
        jensenshannon(p, q, base=2), abs=TOL
    )


def test_chisquare_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    ref = rng.choice(list("abcd"), 500, p=[0.4, 0.3, 0.2, 0.1])
    cur = rng.choice(list("abcd"), 300, p=[0.25, 0.25, 0.25, 0.25])
    labels = list("abcd")
    ref_counts = np.array([np.sum(ref == x) for x in labels], dtype=float)
    cur_counts = np.array([np.sum(cur == x) for x in labels], dtype=float)
    theirs = stats.chisquare(cur_counts, ref_counts / ref_counts.sum() * cur_counts.sum())
    ours = ChiSquare().run(ref, cur)
    assert ours.statistic == pytest.approx(theirs.statistic, abs=TOL)
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=TOL)
    assert ours.drifted


def test_psi_and_linf_follow_their_definitions() -> None:
    ref = np.array(["a"] * 60 + ["b"] * 40, dtype=object)
    cur = np.array(["a"] * 30 + ["b"] * 70, dtype=object)
    expected = (0.3 - 0.6) * np.log(0.3 / 0.6) + (0.7 - 0.4) * np.log(0.7 / 0.4)
    assert PSI().run(ref, cur).statistic == pytest.approx(expected, abs=TOL)
    assert LInfinity().run(ref, cur).statistic == pytest.approx(0.3, abs=TOL)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_detects_a_shift_and_not_a_null_one(name: str) -> None:
    rng = np.random.default_rng(11)
    ref, same, shifted = rng.normal(0, 1, 3000), rng.normal(0, 1, 3000), rng.normal(1, 1, 3000)
    method: DriftMethod = METHODS[name]()
    assert method.run(ref, shifted).drifted
    assert not method.run(ref, same).drifted
    # profiles of data keep their values: the profile path is the array path, exactly
    for cur in (shifted, same):
        assert method.from_profiles(_profiled(ref), _profiled(cur)) == method.run(ref, cur)
    # sketches only (profiles read from JSON): the sketch path agrees
    ref_p = _sketched(ref)
    assert method.from_profiles(ref_p, _sketched(shifted)).drifted
    if name != "chisquare":  # KLL bin counts are too noisy for a p-value (documented)
        assert not method.from_profiles(ref_p, _sketched(same)).drifted


def test_constructors_only_store_parameters() -> None:
    for kind in METHODS.values():
        method = kind(threshold=0.3, bins=7)
        assert vars(method) == {"threshold": 0.3, "bins": 7}


def test_sketch_statistics_are_close_to_exact(samples: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = samples
    ref_p, cur_p = _sketched(ref), _sketched(cur)
    sketched = KS().from_profiles(ref_p, cur_p)
    # the stated approximation: within the two sketches' rank errors
    assert sketched.statistic == pytest.approx(
        KS().run(ref, cur).statistic, abs=sketched.details["rank_error"]
    )
    # KLL compaction flips coins (no seed in DataSketches): over 300 profiles of these 800 and
    # 600 values the sketched distance was within 6 % of the exact one (1.3 % beyond 5 %).
    assert Wasserstein().from_profiles(ref_p, cur_p).statistic == pytest.approx(
        Wasserstein().run(ref, cur).statistic, rel=0.1
    )


def test_choose_method_follows_the_stated_rule() -> None:
    assert choose_method(numeric=True, n_reference=1000, n_distinct=6) == "ks"
    assert choose_method(numeric=True, n_reference=1001, n_distinct=6) == "wasserstein"
    assert choose_method(numeric=True, n_reference=1001, n_distinct=5) == "jensenshannon"
    assert choose_method(numeric=False, n_reference=10, n_distinct=99) == "chisquare"
    assert choose_method(numeric=False, n_reference=5000, n_distinct=99) == "jensenshannon"


def test_detect_drift_on_frames_and_profiles_gives_the_same_verdicts() -> None:
    rng = np.random.default_rng(2)
    n = 5000
    ref = pd.DataFrame(
        {"x": rng.normal(0, 1, n), "c": rng.choice(list("abc"), n), "k": rng.integers(0, 3, n)}
    )
    cur = pd.DataFrame(
        {
            "x": rng.normal(0.6, 1, n),
            "c": rng.choice(list("abc"), n, p=[0.6, 0.2, 0.2]),
            "k": rng.integers(0, 3, n),
        }
    )
    exact = detect_drift(ref, cur)
    sketched = detect_drift(profile_frame(ref), profile_frame(cur))
    for report in (exact, sketched):
        verdicts = {n: (r.method, r.drifted) for n, r in report.columns.items()}
        assert verdicts == {
            "x": ("wasserstein", True),
            "c": ("jensenshannon", True),
            "k": ("jensenshannon", False),
        }
        assert report.dataset_drifted and report.share_drifted == pytest.approx(2 / 3)
    data = exact.to_dict()
    assert data["n_drifted"] == 2 and data["columns"][0]["column"] == "x"


def test_detect_drift_corrects_p_values_for_multiple_tests() -> None:
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({f"c{i}": rng.normal(size=200) for i in range(20)})
    cur = pd.DataFrame({f"c{i}": rng.normal(size=200) for i in range(20)})
    none = detect_drift(ref, cur, correction="none")
    bh = detect_drift(ref, cur, correction="bh")
    bonf = detect_drift(ref, cur, correction="bonferroni")
    for name in ref.columns:
        raw = none.columns[name].p_value
        assert raw is not None
        assert bonf.columns[name].adjusted_p_value == pytest.approx(min(raw * 20, 1.0))
        adj = bh.columns[name].adjusted_p_value
        assert adj is not None and raw <= adj <= min(raw * 20, 1.0) + 1e-12
    assert bh.n_drifted <= none.n_drifted
    assert not bh.dataset_drifted


def test_benjamini_hochberg_matches_scipy() -> None:
    rng = np.random.default_rng(8)
    ref = pd.DataFrame({f"c{i}": rng.normal(size=100) for i in range(8)})
    cur = pd.DataFrame({f"c{i}": rng.normal(0.1 * i, 1, 100) for i in range(8)})
    report = detect_drift(ref, cur)
    raw = [report.columns[c].p_value for c in ref.columns]
    expected = stats.false_discovery_control(raw, method="bh")
    got = [report.columns[c].adjusted_p_value for c in ref.columns]
    assert got == pytest.approx(list(expected), abs=TOL)


def test_detect_drift_skips_columns_without_values_and_rejects_bad_options() -> None:
    ref = pd.DataFrame({"x": [np.nan] * 3, "y": [1.0, 2.0, 3.0]})
    cur = pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0]})
    report = detect_drift(ref, cur)
    assert "x" in report.skipped and "y" in report.columns
    assert report.skipped["x"] == "column 'x': the reference data has no finite values"
    empty = detect_drift(profile_frame(ref.iloc[:0]), cur)
    assert set(empty.skipped) == {"x", "y"} and not empty.dataset_drifted
    with pytest.raises(ConfigError, match="drift method"):
        detect_drift(ref, cur, method="magic")
    with pytest.raises(ConfigError, match="correction"):
        detect_drift(ref, cur, correction="holm")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="'z' not found"):
        detect_drift(ref, cur, columns=["z"])
    with pytest.raises(ConfigError, match="drift_share"):
        detect_drift(ref, cur, drift_share=5)
    with pytest.raises(ConfigError, match="bins"):
        detect_drift(ref, cur, method="psi", bins=0)
    with pytest.raises(DataError, match="expected numeric values"):
        KS().run(np.array(["a"], dtype=object), np.array(["b"], dtype=object))


def test_wasserstein_scale_of_values_near_the_float_limit_is_finite() -> None:
    ref = np.linspace(-1.0, 1.0, 50)
    exact = Wasserstein().run(ref, ref * 0.9)
    huge = Wasserstein().run(ref * 1e308, ref * 0.9e308)
    assert huge.details["scale"] == pytest.approx(exact.details["scale"] * 1e308)
    assert huge.statistic == pytest.approx(exact.statistic)


def _categories(probabilities: np.ndarray, n: int, seed: int) -> pd.DataFrame:
    labels = np.array([f"c{i}" for i in range(len(probabilities))], dtype=object)
    chosen = np.random.default_rng(seed).choice(labels, n, p=probabilities / probabilities.sum())
    return pd.DataFrame({"k": chosen})


@pytest.mark.parametrize("skew", [0.0, 1.1])
def test_profiles_of_many_categories_from_one_distribution_do_not_drift(skew: float) -> None:
    """Past ~768 values the frequent-items sketch drops rare ones: they must not look new."""
    weights = 1 / np.arange(1, 1201) ** skew
    ref, cur = _categories(weights, 60_000, 1), _categories(weights, 60_000, 2)
    halves = profile_frame(cur.iloc[:30_000]).merge(profile_frame(cur.iloc[30_000:]))
    assert profile_frame(ref).columns["k"].frequency_error > 0  # the sketch is not exact
    exact = detect_drift(ref, cur).columns["k"]
    for current in (profile_frame(cur), halves):
        sketched = detect_drift(profile_frame(ref), current).columns["k"]
        assert sketched.method == "jensenshannon" and not sketched.drifted
        assert sketched.statistic <= exact.statistic  # fewer, coarser buckets
        for name in ("psi", "linf"):
            assert not detect_drift(profile_frame(ref), current, method=name).columns["k"].drifted


@pytest.mark.parametrize("change", ["a tenth 5x as often", "reordered", "a new value", "one gone"])
def test_profiles_of_many_categories_still_show_a_real_change(change: str) -> None:
    n = 100_000
    ref_weights = 1 / np.arange(1, 1001) ** (0.0 if change == "a tenth 5x as often" else 0.7)
    cur_weights = ref_weights.copy()
    if change == "a tenth 5x as often":  # the audit's 1,000 even categories, 100 of them 5x
        cur_weights[:100] *= 5
    elif change == "reordered":
        cur_weights = cur_weights[::-1]
    elif change == "a new value":  # 'c1000' becomes 30 % of the rows
        cur_weights = np.append(cur_weights, cur_weights.sum() * 0.43)
    else:
        ref_weights = np.append(ref_weights, ref_weights.sum() * 0.43)
    ref, cur = _categories(ref_weights, n, 1), _categories(cur_weights, n, 2)
    assert detect_drift(ref, cur).columns["k"].drifted
    sketched = detect_drift(profile_frame(ref), profile_frame(cur)).columns["k"]
    assert sketched.drifted and sketched.statistic > 0.2


def test_profiles_with_few_categories_compare_every_value_exactly() -> None:
    ref = pd.DataFrame({"k": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    cur = pd.DataFrame({"k": ["a"] * 20 + ["b"] * 30 + ["c"] * 45 + ["d"] * 5})
    for name in ("jensenshannon", "psi", "linf", "chisquare"):
        exact = detect_drift(ref, cur, method=name).columns["k"]
        sketched = detect_drift(profile_frame(ref), profile_frame(cur), method=name).columns["k"]
        assert sketched.statistic == pytest.approx(exact.statistic, abs=TOL), name


def test_ks_where_scipys_exact_p_value_fails_falls_back_without_a_warning() -> None:
    # Found by the fuzzing test: scipy warns and switches to the asymptotic p-value.
    ref, cur = [0.0, 0.0, 0.25, 2.0, 2.0], [0.0, 0.0, 0.5, 1.0, 3.0]
    with pytest.warns(RuntimeWarning, match="Exact calculation unsuccessful"):
        expected = stats.ks_2samp(ref, cur, method="auto")
    result = detect_drift(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), method="ks")
    column = result.columns["x"]
    assert column.statistic == pytest.approx(expected.statistic)
    assert column.p_value == pytest.approx(expected.pvalue) and not column.drifted


def test_drift_between_profiles_of_the_same_data_is_the_same_every_run() -> None:
    # KLL compaction flips unseeded coins: these sketched statistics varied from run to run.
    rng = np.random.default_rng(8)
    n = 5000
    ref = pd.DataFrame({"x": rng.normal(0, 1, n), "k": rng.integers(0, 400, n)})
    cur = pd.DataFrame({"x": rng.normal(0.05, 1.1, n), "k": rng.integers(0, 410, n)})
    exact = detect_drift(ref, cur).to_dict()
    runs = []
    for _ in range(5):
        ref_p, cur_p = profile_frame(ref), profile_frame(cur)
        assert detect_drift(ref_p, cur_p).to_dict() == exact  # the frame path's numbers
        runs.append(
            {
                name: kind().from_profiles(ref_p.columns["x"], cur_p.columns["x"]).to_dict()
                for name, kind in METHODS.items()
            }
        )
    assert all(run == runs[0] for run in runs)


def test_drift_of_data_against_a_stored_profile_is_the_same_every_run() -> None:
    rng = np.random.default_rng(9)
    ref, cur = rng.normal(0, 1, 5000), rng.normal(0.05, 1, 5000)
    stored = _sketched(ref)  # one sketch, read as often as needed: the same every time
    runs = [
        {name: kind().from_profiles(stored, _profiled(cur)) for name, kind in METHODS.items()}
        for _ in range(5)
    ]
    assert all(run == runs[0] for run in runs)
    # only the stored side's sketch error is allowed for, and the result is still close
    ks = runs[0]["ks"]
    assert ks.details["rank_error"] == pytest.approx(stored.kll.normalized_rank_error(False))
    assert ks.statistic == pytest.approx(KS().run(ref, cur).statistic, abs=ks.details["rank_error"])


def test_columns_above_the_exact_limit_use_the_sketch() -> None:
    rng = np.random.default_rng(10)
    at_limit = _profiled(rng.normal(0, 1, EXACT_VALUES_LIMIT))
    above = _profiled(rng.normal(0, 1, EXACT_VALUES_LIMIT + 1))
    assert at_limit.exact_values is not None and len(at_limit.exact_values) == EXACT_VALUES_LIMIT
    assert above.exact_values is None
    assert "rank_error" not in KS().from_profiles(at_limit, at_limit).details  # exact
    # one side beyond the limit: sketched, allowing for that side's rank error only
    result = KS().from_profiles(at_limit, above)
    assert result.details["rank_error"] == pytest.approx(above.kll.normalized_rank_error(False))
    both = KS().from_profiles(above, above)
    assert both.details["rank_error"] == pytest.approx(2 * above.kll.normalized_rank_error(False))
