"""NumericBlock: JSON records, rows and columns to one float64 block, checked in one pass."""

from __future__ import annotations

import numpy as np
import pytest

from readyml.predict.inputs import Feature, InvalidInput, NumericBlock


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
