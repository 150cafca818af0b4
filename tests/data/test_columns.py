"""Tests for the vectorised column scans behind profiles (readyml.data._columns)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from readyml.data import (
    Profile,
    ValidationOptions,
    infer_schema,
    profile_frame,
    record_validation_evidence,
    validate_frame,
)
from readyml.data import _columns as cols
from readyml.data import _sketches as sk
from readyml.types import Evidence

RANK_ERROR = 0.025  # KLL's ~1.65 % plus the stratified sample's ~0.3 %


def test_scan_matches_numpy_across_blocks_with_nan_and_infinities() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(1e6, 3.0, 3 * cols.BLOCK + 17)
    x[[5, cols.BLOCK + 1]] = np.nan
    x[7] = np.inf
    x[2 * cols.BLOCK] = -np.inf
    scan = cols.scan_numbers([x])
    finite = x[np.isfinite(x)]
    assert (scan.nan, scan.posinf, scan.neginf, scan.n_values) == (2, 1, 1, len(finite))
    assert (scan.min, scan.max) == (finite.min(), finite.max())
    assert scan.mean == pytest.approx(finite.mean(), rel=1e-13)
    assert scan.m2 == pytest.approx(((finite - finite.mean()) ** 2).sum(), rel=1e-9)
    assert not scan.integral


def test_integral_flag_survives_nulls_merge_and_json() -> None:
    whole = profile_frame(pd.DataFrame({"n": [1.0, np.nan, 3.0]})).columns["n"]
    half = profile_frame(pd.DataFrame({"n": [1.5]})).columns["n"]
    assert whole.integral and not half.integral
    assert not whole.merge(half).integral
    back = Profile.from_json(profile_frame(pd.DataFrame({"n": [1.5]})).to_json())
    assert not back.columns["n"].integral


def test_large_columns_feed_a_stratified_sample_to_the_quantile_sketch() -> None:
    x = np.random.default_rng(1).normal(size=300_000)
    col = profile_frame(pd.DataFrame({"x": x})).columns["x"]
    assert col.kll_level == 3 and col.n_values == len(x)
    for rank, value in zip([0.05, 0.5, 0.95], col.quantiles([0.05, 0.5, 0.95]) or [], strict=True):
        assert abs(np.mean(x <= value) - rank) < RANK_ERROR
    again = profile_frame(pd.DataFrame({"x": x})).columns["x"]
    assert again.kll_level == col.kll_level  # the sample is the same every time


def test_merge_weights_sketches_sampled_at_different_rates() -> None:
    rng = np.random.default_rng(2)
    big = profile_frame(pd.DataFrame({"x": rng.uniform(0, 1, 200_000)}))
    small = profile_frame(pd.DataFrame({"x": rng.uniform(1, 2, 50_000)}))
    assert big.columns["x"].kll_level == 2 and small.columns["x"].kll_level == 0
    for merged in (big.merge(small), small.merge(big)):
        column = merged.columns["x"]
        assert column.kll_level == 0
        assert column.cdf([1.0])[0] == pytest.approx(0.8, abs=RANK_ERROR)


def test_whole_numbers_over_many_rows_are_counted_exactly() -> None:
    rng = np.random.default_rng(3)
    ints = rng.integers(-200, 200, 200_000)
    floats = np.where(rng.random(200_000) < 0.1, np.nan, rng.integers(0, 7, 200_000) / 2)
    prof = profile_frame(pd.DataFrame({"i": ints, "f": floats}))
    i, f = prof.columns["i"], prof.columns["f"]
    assert i.hll_exact is not None and i.distinct == pytest.approx(400, rel=0.03)
    values, counts = np.unique(ints, return_counts=True)
    expected = {repr(float(v)): int(c) for v, c in zip(values, counts, strict=True)}
    assert dict(i.top(1000)) == expected
    assert f.hll_exact is not None and f.distinct == 7 and not f.integral
    assert sum(c for _, c in f.top(10)) == f.n_values == int(np.isfinite(floats).sum())


def test_high_cardinality_columns_use_the_hash_sample() -> None:
    x = np.random.default_rng(4).normal(size=400_000)
    col = profile_frame(pd.DataFrame({"x": x})).columns["x"]
    assert col.hll_exact is None and col.frequent is None
    assert col.distinct == pytest.approx(len(x), rel=0.1)
    kept = cols.hash_sampled_values([x])
    assert len(kept) == len(np.unique(x[sk.sampled(sk.hash_floats(x))]))


@pytest.mark.parametrize("n", [50, 5000])
def test_label_tables_agree_with_pandas(n: int) -> None:
    rng = np.random.default_rng(5)
    text = pd.Series(rng.choice(["a", "bb", "ccc"], n)).where(rng.random(n) > 0.1)
    frame = pd.DataFrame(
        {
            "s": text,
            "o": text.astype(object),
            "c": text.astype(pd.CategoricalDtype(["a", "bb", "ccc", "unused"])),
            "b": rng.random(n) < 0.3,
            "m": pd.Series([1, "x", 2.5, None] * (n // 4 + 1), dtype=object)[:n],
        }
    )
    prof = profile_frame(frame)
    for name in ("s", "o", "c", "b", "m"):
        expected = frame[name].dropna().astype(str).value_counts()
        column = prof.columns[name]
        assert dict(column.top(10)) == expected.to_dict(), name
        assert column.missing == int(frame[name].isna().sum())
        assert column.length_sum == int(expected.index.str.len().to_numpy() @ expected.to_numpy())


def test_unseen_categories_in_a_categorical_column_name_rows() -> None:
    rng = np.random.default_rng(6)
    train = pd.DataFrame({"c": pd.Categorical(rng.choice(["x", "y"], 1000))})
    schema = infer_schema(train)
    bad = train.copy()
    bad["c"] = bad["c"].cat.add_categories("z")
    bad.loc[[4, 9], "c"] = "z"
    (anomaly,) = validate_frame(bad, schema=schema).anomalies
    assert (anomaly.kind, anomaly.examples) == ("unseen_categories", [4, 9])
    assert validate_frame(train, schema=schema).anomalies == []


def test_small_batches_find_the_same_anomalies_as_large_frames() -> None:
    rng = np.random.default_rng(7)
    train = pd.DataFrame({"x": rng.normal(size=500), "city": rng.choice(["Oslo", "Rome"], 500)})
    schema = infer_schema(train)
    batch = pd.DataFrame({"x": [0.1, 99.0], "city": ["Oslo", "Paris"]})
    found = {
        (a.kind, a.column, tuple(a.examples))
        for a in validate_frame(batch, schema=schema).anomalies
    }
    assert found == {("out_of_range", "x", (1,)), ("unseen_categories", "city", (1,))}
    big = pd.concat([train, batch], ignore_index=True)
    found_big = {(a.kind, a.column) for a in validate_frame(big, schema=schema).anomalies}
    assert found_big == {(k, c) for k, c, _ in found}


class MemoryStore:
    def __init__(self) -> None:
        self.kept: list[Evidence] = []

    def add_evidence(self, evidence: Evidence) -> int:
        self.kept.append(evidence)
        return len(self.kept)


def test_record_validation_evidence_passes_only_without_errors() -> None:
    store = MemoryStore()
    good = validate_frame(pd.DataFrame({"x": [1.0, 2.0]}))
    bad = validate_frame(pd.DataFrame({"x": [1.0, np.inf]}), options=ValidationOptions())
    record_validation_evidence(store, good, project="p", test_id="monitor-2", run_id="r1")
    evidence = record_validation_evidence(store, bad, project="p", details={"source": "requests"})
    assert [e.passed for e in store.kept] == [True, False]
    assert store.kept[0].test_id == "monitor-2" and store.kept[0].run_id == "r1"
    assert evidence.test_id == "data-1"
    assert evidence.details == {
        "rows": 2,
        "columns": 1,
        "anomalies": 1,
        "errors": 1,
        "kinds": {"nan_or_inf": 1},
        "reason": "column 'x': nan_or_inf: expected finite values, found 1 +inf, 0 -inf",
        "source": "requests",
    }
    assert "reason" not in store.kept[0].details


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int64])
def test_bincount_of_narrow_integers_does_not_overflow(dtype: type[np.integer]) -> None:
    info = np.iinfo(dtype)
    low, high = max(int(info.min), -100), min(int(info.max), 100)
    values = np.random.default_rng(6).integers(low, high + 1, 50_000).astype(dtype)
    chunks = np.split(values, [20_001, 20_002])
    found = cols._bincount(chunks, int(values.min()), int(values.max()) - int(values.min()) + 1)
    expected = np.unique(values, return_counts=True)
    assert np.array_equal(found[0], expected[0].astype(np.float64))
    assert np.array_equal(found[1], expected[1])
