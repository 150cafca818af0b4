"""Tests for readyml.data.io."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from readyml.data import read_table
from readyml.errors import DataError


def test_read_table_reads_csv_and_parquet(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet")
    assert read_table(tmp_path / "d.csv")["a"].tolist() == [1, 2]
    assert read_table(str(tmp_path / "d.parquet"))["b"].tolist() == ["x", "y"]


def test_read_table_concatenates_a_glob_in_sorted_order(tmp_path: Path) -> None:
    pd.DataFrame({"a": [2]}).to_parquet(tmp_path / "p2.parquet")
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "p1.parquet")
    assert read_table(tmp_path / "p*.parquet")["a"].tolist() == [1, 2]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "not found"),
        ("nothing*.csv", None, "no file matches"),
        ("data.xlsx", b"x", "expected extension"),
        ("bad.parquet", b"garbage", "cannot read it as parquet"),
        ("bad.csv", b"a,b\n1,2,3\n", "cannot read it as csv"),
        ("empty.csv", b"", "expected a header row of column names, found none"),
        ("blank.csv", b"\n\n", "expected a header row of column names, found none"),
        ("index.csv", b",a\n0,1\n", "expected a name for every column, found column 1 unnamed"),
    ],
)
def test_read_table_raises_data_error_naming_the_file(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_table(tmp_path / name)


def test_read_table_of_a_folder_says_it_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"expected a file or a glob .*found a folder"):
        read_table(tmp_path)


def test_a_declared_format_decides_how_a_file_is_read(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    frame.to_csv(tmp_path / "d.txt", index=False)
    frame.to_parquet(tmp_path / "d.bin")
    assert read_table(tmp_path / "d.txt", format="csv")["a"].tolist() == [1, 2]
    assert read_table(tmp_path / "d.bin", format="parquet")["a"].tolist() == [1, 2]
    with pytest.raises(DataError, match=r"or declare data.format: csv or parquet"):
        read_table(tmp_path / "d.txt")


@pytest.mark.parametrize(
    ("name", "fmt", "message"),
    [
        ("d.parquet", "csv", r"as csv \(data.format: csv\): found a Parquet file"),
        ("d.csv", "parquet", r"as parquet \(data.format: parquet\): found no Parquet header"),
        ("d.csv", "auto", r"as csv \(by its extension '.csv'\): found a Parquet file"),
    ],
)
def test_content_that_contradicts_the_format_is_one_line(
    tmp_path: Path, name: str, fmt: Any, message: str
) -> None:
    if name == "d.csv" and fmt == "parquet":
        pd.DataFrame({"a": [1]}).to_csv(tmp_path / name, index=False)
    else:  # Parquet content, whatever the name says
        pd.DataFrame({"a": [1]}).to_parquet(tmp_path / name)
    with pytest.raises(DataError, match=message):
        read_table(tmp_path / name, format=fmt)
