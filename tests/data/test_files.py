"""Tests for readyml.data.files: files profiled and validated a column at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from readyml.data import (
    ValidationOptions,
    _parallel,
    infer_schema,
    profile_file,
    profile_frame,
    read_arrow,
    validate_file,
    validate_frame,
)
from readyml.data.files import ParquetColumns
from readyml.data.profile import Profile
from readyml.errors import DataError

KLL_FIELDS = ("quantiles", "histogram", "kll")  # the quantile sketch compacts at random


def without_kll(profile: Profile) -> list[dict[str, Any]]:
    """The profile's columns as dicts, minus what the (randomised) quantile sketch gives."""
    out = []
    for column in profile.to_dict()["columns"]:
        out.append(
            {
                key: {k: v for k, v in value.items() if k not in KLL_FIELDS}
                if isinstance(value, dict)
                else value
                for key, value in column.items()
            }
        )
    return out


def test_profile_file_equals_the_profile_of_the_read_table(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    frame = frame.iloc[:150].copy()  # at most the sketch's k values: quantiles are exact
    frame.loc[3, "temp"] = np.nan
    frame["maybe"] = pd.array([None if i % 9 == 0 else i for i in range(150)], dtype="Int64")
    frame["kind"] = pd.Categorical(["a", "b", None] * 50)
    path = tmp_path / "data.parquet"
    frame.to_parquet(path)
    assert profile_file(path).to_dict() == profile_frame(read_arrow(path)).to_dict()
    chosen = profile_file(path, columns=["city", "temp"])
    assert list(chosen.columns) == ["city", "temp"]


def test_a_glob_of_row_grouped_files_profiles_as_its_concatenation(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for part in range(3):
        n = 20_000
        table = pa.table(
            {
                "x": rng.normal(0, 1, n),
                "n": rng.integers(0, 50, n),
                "label": pa.array(rng.choice(["a", "b", "c"], n)).dictionary_encode(),
            }
        )
        pq.write_table(table, tmp_path / f"part-{part}.parquet", row_group_size=7_000)
    pattern = str(tmp_path / "part-*.parquet")
    streamed, whole = profile_file(pattern), profile_frame(read_arrow(pattern))
    assert streamed.n_rows == 60_000
    assert without_kll(streamed) == without_kll(whole)
    values = read_arrow(pattern).column("x").to_numpy()
    ranks = [0.01, 0.25, 0.5, 0.75, 0.99]
    got = streamed.columns["x"].quantiles(ranks)
    assert got is not None
    exact_ranks = [float(np.mean(values <= q)) for q in got]
    assert exact_ranks == pytest.approx(ranks, abs=0.02)  # KLL k=200: 1.65 % rank error (99 %)


def bad_parts(tmp_path: Path, train: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """Two files with an anomaly of each row-level kind, the second repeating a first-file row."""
    bad = train.copy()
    bad.loc[3, "x"] = np.inf
    bad.loc[2900, "x"] = 40.0
    bad.loc[2950, "age"] = 200
    bad["city"] = bad["city"].where(bad.index % 700 != 1, "Paris")
    bad.loc[2999] = bad.loc[10]
    first, second = bad.iloc[:1000], bad.iloc[1000:]
    first.to_parquet(tmp_path / "a.parquet", index=False)
    second.to_parquet(tmp_path / "b.parquet", index=False)
    return str(tmp_path / "*.parquet"), bad


@pytest.mark.parametrize("threads", [1, 2])
def test_validate_file_reports_what_validate_frame_reports(
    tmp_path: Path, train: pd.DataFrame, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if threads == 2:  # columns are profiled on two threads from this many rows on
        monkeypatch.setattr(_parallel, "PARALLEL_ROWS", 0)
        monkeypatch.setattr(_parallel, "_cores", lambda: 2)
    pattern, bad = bad_parts(tmp_path, train)
    schema = infer_schema(train)
    opts = ValidationOptions(check_duplicates=True)
    streamed = validate_file(pattern, schema=schema, options=opts)
    whole = validate_frame(bad.reset_index(drop=True), schema=schema, options=opts)
    assert [a.to_dict() for a in streamed.anomalies] == [a.to_dict() for a in whole.anomalies]
    found = {(a.kind, a.column): a.examples for a in streamed.anomalies}
    assert found[("out_of_range", "x")] == [3, 2900]  # row positions across both files
    assert found[("out_of_range", "age")] == [2950]
    assert found[("unseen_categories", "city")] == [1, 701, 1401, 2101, 2801]
    assert found[("duplicate_rows", None)] == [2999]
    assert streamed.n_rows == 3000 and not streamed.ok


def test_clean_columns_are_read_once(
    tmp_path: Path, train: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "train.parquet"
    train.to_parquet(path)
    reads: list[str] = []
    table = ParquetColumns.table

    def counted(self: ParquetColumns, name: str) -> pa.Table:
        reads.append(name)
        return table(self, name)

    monkeypatch.setattr(ParquetColumns, "table", counted)
    report = validate_file(path, schema=infer_schema(train), reference=profile_frame(train))
    assert report.ok and report.anomalies == []
    assert sorted(reads) == ["age", "city", "x"]


def test_csv_and_differing_parquet_schemas_are_read_whole(tmp_path: Path) -> None:
    pd.DataFrame({"v": [1, 2, 3]}).to_parquet(tmp_path / "1.parquet")
    pd.DataFrame({"v": [0.5, 9.0]}).to_parquet(tmp_path / "2.parquet")
    pattern = str(tmp_path / "*.parquet")
    assert ParquetColumns.open(pattern) is None
    profile = profile_file(pattern)
    assert profile.n_rows == 5 and profile.columns["v"].type == "float"
    assert profile.columns["v"].max == 9.0
    csv = tmp_path / "data.csv"
    csv.write_text("v,w\n1,a\n2,b\n", encoding="utf-8")
    assert ParquetColumns.open(csv) is None
    assert validate_file(csv).n_rows == 2


def test_a_glob_matching_a_dataset_folder_reads_it_whole(tmp_path: Path) -> None:
    folder = tmp_path / "out.parquet"  # as Spark and Dask write a dataset
    folder.mkdir()
    pd.DataFrame({"v": [1.0, 2.0]}).to_parquet(folder / "part-0.parquet")
    pd.DataFrame({"v": [3.0]}).to_parquet(folder / "part-1.parquet")
    pattern = str(tmp_path / "*.parquet")
    assert ParquetColumns.open(pattern) is None
    profile = profile_file(pattern)
    assert profile.n_rows == 3 and profile.columns["v"].max == 3.0


def test_repeated_column_names_are_a_data_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "twice.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["x", "x"]), path)
    with pytest.raises(DataError, match=r"twice\.parquet': .*'x' repeated"):
        validate_file(path)


def test_bad_files_raise_data_errors_naming_them(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        profile_file(tmp_path / "none.parquet")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"broken\.parquet': cannot read it as parquet"):
        validate_file(broken)
    with pytest.raises(DataError, match="expected extension"):
        (tmp_path / "data.txt").write_text("v\n1\n", encoding="utf-8")
        profile_file(tmp_path / "data.txt")
    good = tmp_path / "good.parquet"
    pd.DataFrame({"v": [1.0]}).to_parquet(good)
    with pytest.raises(DataError, match="column 'w' not found"):
        profile_file(good, columns=["w"])


def test_an_empty_file_profiles_to_zero_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pd.DataFrame({"v": pd.Series([], dtype="float64"), "c": pd.Series([], dtype=str)}).to_parquet(
        path
    )
    report = validate_file(path)
    assert report.n_rows == 0
    assert [a.kind for a in report.anomalies] == ["too_few_rows"]
