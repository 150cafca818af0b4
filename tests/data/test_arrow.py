"""Arrow tables are profiled and validated in place, exactly as their pandas conversion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from readyml.data import (
    Profile,
    Schema,
    ValidationOptions,
    _arrow,
    _parallel,
    infer_schema,
    profile_frame,
    read_arrow,
    read_table,
    validate_frame,
)
from readyml.data import _columns as cols
from readyml.errors import DataError

ROWS = 150_000  # beyond the exact-sample and exact-distinct limits, over several blocks
ODD_CHUNKS = (70_001, 1, 0, 59_998, 20_000)  # chunk boundaries off the block boundaries


def comparable(profile: Profile) -> dict[str, Any]:
    """A profile's JSON without the KLL sketch and what is read from it.

    DataSketches' KLL compacts with random coin flips, so two sketches of the same values
    differ; their inputs are compared instead (``test_quantile_sample_ignores_chunking``).
    """
    data: dict[str, Any] = json.loads(profile.to_json())
    for column in data["columns"]:
        kll = column["sketches"].pop("kll")
        column["kll_empty"] = kll is None
        column["summary"].pop("quantiles")
        column["summary"].pop("histogram")
    return data


def rechunk(table: pa.Table, sizes: tuple[int, ...]) -> pa.Table:
    """The same rows in chunks of the given sizes (the rest in one more)."""
    starts = np.cumsum([0, *sizes]).tolist()
    bounds = list(zip(starts, [*sizes, table.num_rows - starts[-1]], strict=True))
    columns = [
        pa.chunked_array([column.slice(a, n).combine_chunks() for a, n in bounds], column.type)
        for column in table.columns
    ]
    return pa.Table.from_arrays(columns, schema=table.schema)


def mixed_frame(n: int = ROWS) -> pd.DataFrame:
    """Every kind of column the two paths treat differently, with nulls, NaN and infinities."""
    rng = np.random.default_rng(11)
    floats = rng.normal(5.0, 2.0, n)
    floats[rng.random(n) < 0.02] = np.nan
    floats[[3, n // 2]] = np.inf
    few = rng.integers(0, 5, n) / 2.0
    city = rng.choice(["Oslo", "Rome", "Lima"], n).astype(object)
    city[rng.random(n) < 0.01] = None
    nullable = pd.array(rng.integers(0, 9, n), dtype="Int64")
    nullable[rng.random(n) < 0.1] = pd.NA
    return pd.DataFrame(
        {
            "f": floats,
            "few": few,
            "f32": rng.random(n).astype(np.float32),
            "i": rng.integers(-50, 3_000_000, n),
            "u8": rng.integers(0, 255, n).astype(np.uint8),
            "nullable": nullable,
            "cat": pd.Categorical(city, categories=["Rome", "Oslo", "Lima", "unused"]),
            "text": pd.Series(city, dtype="str"),
            "flag": rng.random(n) < 0.3,
            "when": pd.date_range("2020-01-01", periods=n, freq="min"),
        }
    )


@pytest.fixture(scope="module")
def table() -> pa.Table:
    """The mixed frame as an Arrow table in odd chunks, as a file might give it."""
    return rechunk(pa.Table.from_pandas(mixed_frame(), preserve_index=False), ODD_CHUNKS)


def test_profile_of_a_table_equals_the_profile_of_its_pandas_conversion(table: pa.Table) -> None:
    on_arrow, on_pandas = profile_frame(table), profile_frame(table.to_pandas())
    assert comparable(on_arrow) == comparable(on_pandas)
    for name, column in on_arrow.columns.items():
        other = on_pandas.columns[name]
        assert column.kll_level == other.kll_level
        if column.kll is not None:
            assert column.kll.n == other.kll.n
            assert column.kll.get_min_value() == other.kll.get_min_value()


def test_numbers_and_categories_are_read_in_place(
    table: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    converted: list[str] = []
    convert = _arrow.to_series

    def spy(data: pa.Table, name: str) -> pd.Series:
        converted.append(name)
        return convert(data, name)

    monkeypatch.setattr(_arrow, "to_series", spy)
    profile_frame(table)
    assert sorted(converted) == ["flag", "nullable", "text", "when"]  # threads: any order


def test_table_columns_keep_their_pandas_types(table: pa.Table) -> None:
    types = {name: column.type for name, column in profile_frame(table).columns.items()}
    assert types == {
        "f": "float",
        "few": "float",
        "f32": "float",
        "i": "int",
        "u8": "int",
        "nullable": "int",
        "cat": "category",
        "text": "string",
        "flag": "bool",
        "when": "datetime",
    }


def test_tables_without_pandas_metadata_convert_as_pandas_would() -> None:
    dictionaries = [pa.array(["b", "a"]), pa.array(["c", "a", "b"])]
    categories = pa.chunked_array(
        [
            pa.DictionaryArray.from_arrays(pa.array([0, 1, None, 0], pa.int8()), dictionaries[0]),
            pa.DictionaryArray.from_arrays(pa.array([0, 2, 1], pa.int8()), dictionaries[1]),
        ]
    )
    table = pa.table(
        {
            "ints_with_nulls": pa.chunked_array([[1, None, 3], [4, 5, 6, 7]]),
            "ints": pa.chunked_array([[1, 2, 3], [4, 5, 6, 7]]),
            "categories": categories,
            "empty": pa.chunked_array([[None] * 3, [None] * 4], pa.float64()),
        }
    )
    profile = profile_frame(table)
    assert profile.columns["ints_with_nulls"].type == "float"
    assert profile.columns["categories"].top() == [("b", 3), ("a", 2), ("c", 1)]
    assert comparable(profile) == comparable(profile_frame(table.to_pandas()))


def test_a_stored_pandas_index_is_not_a_column() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]}, index=[10, 20, 30])
    table = pa.Table.from_pandas(frame)
    assert "__index_level_0__" in table.column_names
    assert list(profile_frame(table).columns) == ["x"]
    assert validate_frame(table).n_columns == 1


def test_validation_of_a_table_equals_validation_of_its_pandas_conversion(
    table: pa.Table,
) -> None:
    frame = table.to_pandas()
    schema = infer_schema(frame.iloc[:1000])
    features = {f.name: f for f in schema.features}
    features["f"].max, features["f"].nullable = 6.0, False
    features["i"].min = 0
    features["cat"].categories = ["Oslo", "Rome"]
    features["flag"].type = "int"
    schema.features.append(schema.features[0].__class__(name="absent", type="float"))
    options = ValidationOptions(check_duplicates=True, max_null_share=0.005)
    on_arrow = validate_frame(table, schema=schema, options=options)
    on_pandas = validate_frame(frame, schema=schema, options=options)
    kinds = {(a.kind, a.column) for a in on_arrow.anomalies}
    assert {("out_of_range", "f"), ("nan_or_inf", "f"), ("out_of_range", "i")} <= kinds
    assert {("unseen_categories", "cat"), ("type_mismatch", "flag")} <= kinds
    assert ("missing_column", "absent") in kinds
    assert on_arrow.to_dict() == on_pandas.to_dict()
    assert on_arrow.profile is not None and on_pandas.profile is not None
    assert comparable(on_arrow.profile) == comparable(on_pandas.profile)


def test_profile_of_a_table_rejects_repeated_names_and_other_objects() -> None:
    repeated = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(DataError, match="'a' repeated"):
        profile_frame(repeated)
    with pytest.raises(DataError, match="DataFrame or an Arrow Table, found list"):
        profile_frame([1, 2])


@pytest.mark.parametrize("sizes", [(), ODD_CHUNKS, (cols.BLOCK, cols.BLOCK)])
def test_scans_ignore_chunking(sizes: tuple[int, ...]) -> None:
    values = mixed_frame()["f"].to_numpy()
    chunks = np.split(values, np.cumsum(sizes)) if sizes else [values]
    whole, chunked = cols.scan_numbers([values]), cols.scan_numbers(chunks)
    assert chunked == whole  # bitwise: the same blocks, combined in the same order
    blocks = list(cols.blocks(chunks))
    assert [len(b) for b in blocks] == [len(b) for b in cols.blocks([values])]
    assert np.array_equal(np.concatenate(blocks), values, equal_nan=True)
    assert np.array_equal(cols.hash_sampled_values(chunks), cols.hash_sampled_values([values]))


def test_quantile_sample_ignores_chunking() -> None:
    values = mixed_frame()["f"].to_numpy()
    n_values = int(np.isfinite(values).sum())
    chunks = np.split(values, np.cumsum(ODD_CHUNKS))
    sample, level = cols.quantile_sample(chunks, n_values)
    expected, expected_level = cols.quantile_sample([values], n_values)
    assert level == expected_level > 0
    assert np.array_equal(sample, expected)


def test_read_arrow_reads_parquet_csv_and_globs_like_read_table(tmp_path: Path) -> None:
    frame = mixed_frame(2000).drop(columns=["nullable"])
    frame.iloc[:1000].to_parquet(tmp_path / "part1.parquet", row_group_size=300)
    frame.iloc[1000:].to_parquet(tmp_path / "part2.parquet", row_group_size=300)
    frame.to_csv(tmp_path / "all.csv", index=False)
    for path in (tmp_path / "part1.parquet", tmp_path / "part*.parquet", tmp_path / "all.csv"):
        table = read_arrow(path)
        assert isinstance(table, pa.Table)
        assert comparable(profile_frame(table)) == comparable(profile_frame(read_table(path)))
    assert read_arrow(tmp_path / "part*.parquet").num_rows == 2000


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.parquet", None, "not found"),
        ("nothing*.parquet", None, "no file matches"),
        ("data.xlsx", b"x", "expected extension"),
        ("bad.parquet", b"garbage", "cannot read it as parquet"),
        ("bad.csv", b"a,b\n1,2,3\n", "cannot read it as csv"),
    ],
)
def test_read_arrow_raises_data_error_naming_the_file(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_arrow(tmp_path / name)


def test_schema_inferred_from_a_table_equals_the_one_from_its_frame(table: pa.Table) -> None:
    assert infer_schema(table) == infer_schema(table.to_pandas())
    assert Schema.from_yaml(infer_schema(table).to_yaml()) == infer_schema(table)


def test_parquet_files_keep_one_column_per_dictionary_after_reading(tmp_path: Path) -> None:
    frame = mixed_frame(5000)
    frame.to_parquet(tmp_path / "d.parquet", row_group_size=1000)
    table = read_arrow(tmp_path / "d.parquet")
    assert pa.types.is_dictionary(table.schema.field("cat").type)
    assert table.column("f").num_chunks > 1
    assert pq.ParquetFile(tmp_path / "d.parquet").metadata.num_row_groups == 5
    assert comparable(profile_frame(table)) == comparable(
        profile_frame(read_table(tmp_path / "d.parquet"))
    )


@pytest.mark.parametrize("sizes", [(), ODD_CHUNKS])
def test_one_scan_gathers_what_the_separate_passes_would(sizes: tuple[int, ...]) -> None:
    values = mixed_frame()["f"].to_numpy()
    chunks = np.split(values, np.cumsum(sizes)) if sizes else [values]
    scan = cols.scan_column(chunks, len(values))
    assert scan.moments == cols.scan_numbers([values])
    sample, level = cols.quantile_sample([values], scan.moments.n_values)
    assert scan.level == level > 0 and scan.picked is not None
    assert np.array_equal(scan.picked, sample)
    assert scan.hashed is not None
    assert np.array_equal(scan.hashed, cols.hash_sampled_values([values]))


def test_scan_samples_again_when_its_guesses_do_not_hold() -> None:
    rng = np.random.default_rng(12)
    sparse = rng.normal(size=ROWS)
    sparse[rng.random(ROWS) < 0.7] = np.nan  # the level of the finite values is lower
    scan = cols.scan_column([sparse], ROWS)
    n_values = int(np.isfinite(sparse).sum())
    sample, level = cols.quantile_sample([sparse], n_values, scan)
    assert level < scan.level
    assert np.array_equal(sample, cols.quantile_sample([sparse], n_values)[0])
    whole_first = np.concatenate([np.arange(cols.BLOCK, dtype=np.float64), rng.normal(size=ROWS)])
    late = cols.scan_column([whole_first], len(whole_first))
    assert late.hashed is None and not late.moments.integral  # the first block was not hashed
    _, kept = cols.number_counts([whole_first], late.moments, late.hashed)
    assert kept is not None
    assert np.array_equal(kept, cols.hash_sampled_values([whole_first]))


def test_profiles_do_not_depend_on_threads(
    table: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    threaded = profile_frame(table)
    monkeypatch.setattr(_parallel, "MAX_THREADS", 1)
    assert comparable(profile_frame(table)) == comparable(threaded)
    assert list(threaded.columns) == _arrow.data_columns(table)
