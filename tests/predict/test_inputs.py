"""NumericBlock: JSON records, rows and columns to one float64 block, checked in one pass."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from readyml.predict.inputs import (
    Feature,
    InvalidInput,
    NumericBlock,
    cast_tensor,
    describe,
    with_exact_integers,
)


def _block(*names: str, nullable: bool = False) -> NumericBlock:
    return NumericBlock([Feature(name, "float64", "number", nullable) for name in names])


@pytest.mark.parametrize("names", [("a",), ("a", "b", "c")])
def test_records_become_rows_in_feature_order(names: tuple[str, ...]) -> None:
    block = _block(*names)
    records = [
        {name: float(i * 10 + j) for j, name in reversed(list(enumerate(names)))} for i in range(3)
    ]
    expected = np.array([[i * 10 + j for j in range(len(names))] for i in range(3)], dtype=float)
    assert np.array_equal(block.from_records(records), expected)
    assert np.array_equal(block.from_records(records[:1]), expected[:1])


@pytest.mark.parametrize("records", [[{"a": 1.0}], [{"a": 1.0, "b": 2.0}, {"a": 1.0}]])
def test_a_missing_feature_is_named_for_one_record_or_many(records: list[dict[str, float]]) -> None:
    with pytest.raises(InvalidInput, match="feature 'b': expected a number, found no such field"):
        _block("a", "b").from_records(records)


def test_a_record_keyed_by_other_than_text_still_gets_the_missing_feature_error() -> None:
    # Python API callers can key a record by anything; listing the keys given once raised.
    record: dict[object, float] = {1: 1.0, ("x",): 2.0}
    with pytest.raises(InvalidInput, match=r"found no such field \(fields given: \('x',\), 1\)"):
        _block("a").from_records([record])


@pytest.mark.parametrize(
    ("record", "found"),
    [
        ({"a": 1.0, "b": "2"}, "string"),
        ({"a": True, "b": 2.0}, "boolean true"),
        ({"a": 1.0, "b": None}, "null"),
    ],
)
def test_a_lone_record_of_the_wrong_type_is_named(record: dict[str, object], found: str) -> None:
    with pytest.raises(InvalidInput, match=f"found {found}") as raised:
        _block("a", "b").from_records([record])
    assert raised.value.field in record


@pytest.mark.parametrize("record", [[1.0, 2.0], "a=1", 3])
def test_a_record_that_is_not_an_object_is_refused(record: object) -> None:
    with pytest.raises(InvalidInput, match="row 0: expected an object of feature values"):
        _block("a", "b").from_records([record])


def test_nullable_features_take_null_as_nan() -> None:
    block = _block("a", "b", nullable=True).from_records([{"a": None, "b": 2}])
    assert np.isnan(block[0, 0]) and block[0, 1] == 2.0


# -- ranges: int64 integers, float64 numbers, datetime64[ns] dates ---------------------------


@pytest.mark.parametrize("value", [2**63, 2**64 - 1, -(2**63) - 1, 10**400])
def test_an_integer_past_int64_is_refused_by_name_not_overflowed(value: int) -> None:
    age = Feature("age", "int64", "integer", False)
    with pytest.raises(InvalidInput) as raised:
        age.check_values([1, value])
    assert raised.value.field == "age"
    assert raised.value.expected == f"an integer from {-(2**63)} to {2**63 - 1} (int64)"
    assert raised.value.found.startswith(f"number {str(value)[:30]}")
    assert "(row 1)" in str(raised.value)


def test_the_int64_bounds_themselves_are_taken() -> None:
    column = Feature("age", "int64", "integer", False).check_values([-(2**63), 2**63 - 1])
    assert column.dtype == np.int64 and column.tolist() == [-(2**63), 2**63 - 1]


def test_integer_columns_of_a_block_are_checked_exactly_against_int64() -> None:
    block = NumericBlock(
        [Feature("x", "float64", "number", False), Feature("n", "int64", "integer", False)]
    )
    # 2**63 - 1 is 2**63 in float64: judged on the value sent, it is in range.
    edges = block.from_records([{"x": 1.0, "n": 2**63 - 1}, {"x": 2.0, "n": -(2**63)}])
    assert edges.shape == (2, 2)
    for value in (2**63, 2.0**63, 1e23):
        with pytest.raises(InvalidInput, match=r"'n': expected an integer from .* \(int64\)"):
            block.from_records([{"x": 1.0, "n": value}])
    with pytest.raises(InvalidInput, match=r"'n': expected an integer, found number 1\.5"):
        block.from_columns({"x": [1.0], "n": [1.5]})


def test_a_null_in_a_nullable_integer_column_is_not_a_fraction() -> None:
    block = NumericBlock(
        [Feature("x", "float64", "number", False), Feature("n", "int64", "integer", True)]
    )
    values = block.from_records([{"x": 1.5, "n": None}, {"x": 2.5, "n": 3}])
    assert np.isnan(values[0, 1]) and values[1, 1] == 3.0


def test_an_integer_past_float64_is_refused_by_name() -> None:
    # CSV cells are read as Python ints, which float64 cannot always hold.
    block = _block("a", "b")
    with pytest.raises(InvalidInput, match=r"feature 'b': expected a number within float64") as e:
        block.from_columns({"a": [1.0], "b": [10**400]})
    assert e.value.field == "b"
    mixed = Feature("b", "float64", "number", False)
    with pytest.raises(InvalidInput, match="within float64's range"):
        mixed.check_values([10**400])


@pytest.mark.parametrize("value", ["9999-12-31", "2262-04-11T23:47:16.854775808", "1600-01-01"])
def test_a_date_past_datetime64_ns_is_refused_not_wrapped(value: str) -> None:
    when = Feature("when", "datetime64[ns]", "datetime", False)
    with pytest.raises(InvalidInput, match=r"from 1677-09-21 to 2262-04-11") as raised:
        when.check_values(["2020-01-01", value])
    assert raised.value.found == f"string {value!r}"


@pytest.mark.parametrize("value", ["", "NaT"])
def test_an_empty_date_is_refused_where_nulls_are_not_allowed(value: str) -> None:
    with pytest.raises(InvalidInput, match="expected an ISO 8601 date-time string, found string"):
        Feature("when", "datetime64[ns]", "datetime", False).check_values([value])
    assert np.isnat(Feature("when", "datetime64[ns]", "datetime", True).check_values([value]))[0]


def test_a_null_for_an_integer_feature_does_not_claim_nulls_are_expected() -> None:
    with pytest.raises(InvalidInput, match="'n': expected an integer, found null"):
        Feature("n", "int64", "integer", True).check_values([1, None])


# -- messages -------------------------------------------------------------------------------


def test_an_integer_orjson_rounded_is_shown_as_sent() -> None:
    body = b'[{"a": 1.0, "n": 99999999999999999999999}]'
    block = NumericBlock(
        [Feature("a", "float64", "number", False), Feature("n", "int64", "integer", False)]
    )
    with pytest.raises(InvalidInput) as raised:
        with_exact_integers(block.from_records, orjson.loads(body), body)
    assert raised.value.found == "number 99999999999999999999999"


def test_a_missing_column_reads_as_a_list_of_plural_values() -> None:
    with pytest.raises(InvalidInput) as raised:
        _block("a", "b").from_columns({"a": [1.0]})
    assert raised.value.expected == "a list of numbers"
    nullable = Feature("c", "string", "string", True)
    assert nullable.expected_list == "a list of strings or nulls"


def test_long_names_given_are_cut_short_in_the_error() -> None:
    with pytest.raises(InvalidInput) as raised:
        _block("a").from_records([{"n" * 3000: 1.0}])
    assert len(str(raised.value)) < 200
    assert "n" * 64 + "…" in str(raised.value)


def test_nan_is_described_as_nan() -> None:
    assert describe(float("nan")) == "NaN"
    assert describe(None) == "null"


@pytest.mark.parametrize(
    ("array", "dtype", "found"),
    [
        (np.array([1.0, 1e300]), np.float32, "number 1e+300 (element 1)"),
        (np.array([300]), np.uint8, "number 300 (element 0)"),
        (np.array([2**64 - 1], dtype=np.uint64), np.int64, "number 18446744073709551615"),
        (np.array([2.0**63]), np.int64, "number 9.223372036854776e+18"),
        (np.array([1.5]), np.int32, "number 1.5"),
        (np.array([np.nan]), np.int32, "NaN"),
    ],
)
def test_a_tensor_cast_refuses_values_the_type_cannot_hold(
    array: np.ndarray, dtype: type, found: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        cast_tensor(array, np.dtype(dtype), "x")
    assert raised.value.field == "x" and raised.value.found.startswith(found)


def test_a_tensor_cast_keeps_what_fits() -> None:
    edges = cast_tensor(np.array([-(2.0**63), 7.0]), np.dtype(np.int64), "x")
    assert edges.tolist() == [-(2**63), 7]
    assert np.isinf(cast_tensor(np.array([np.inf]), np.dtype(np.float32), "x")).all()


def test_a_block_from_a_tensor_takes_int64_max_as_float64_rounds_it() -> None:
    block = NumericBlock(
        [Feature("x", "float64", "number", False), Feature("n", "int64", "integer", False)]
    )
    block.check_integers(np.array([[1.0, 2.0**63 - 1]]))  # 2**63 in float64: not refused
    with pytest.raises(InvalidInput, match=r"found number 1\.8446744073709552e\+19"):
        block.check_integers(np.array([[1.0, 2.0**64]]))
