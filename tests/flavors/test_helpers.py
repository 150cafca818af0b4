"""Signatures, the tabular encoder, label codes, imports, exports and doctests."""

from __future__ import annotations

import doctest
import importlib
import importlib.util

import numpy as np
import pandas as pd
import pytest

import readyml.flavors
from readyml.errors import FlavorError, NotFittedError
from readyml.flavors import available_flavors
from readyml.flavors._imports import check_params, import_object
from readyml.flavors._signature import dtype_name, infer_inputs
from readyml.flavors._tabular import TabularEncoder, encode_labels, label_codes


def test_public_names_are_pinned_and_sorted() -> None:
    assert readyml.flavors.__all__ == [
        "FLAVORS",
        "FLAVOR_FILE",
        "ModelAdapter",
        "available_flavors",
        "build_model",
        "load_model",
    ]
    assert readyml.flavors.__all__ == sorted(readyml.flavors.__all__)


def test_available_flavors_lists_importable_libraries() -> None:
    flavors = available_flavors()
    assert "sklearn" in flavors
    for name, (_, library) in readyml.flavors.FLAVORS.items():
        assert (name in flavors) == (importlib.util.find_spec(library) is not None)


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        (pd.Series([1.5]), "float64"),
        (pd.Series([1]), "int64"),
        (pd.Series(["a"]), "string"),
        (pd.Series(["a"], dtype=object), "string"),
        (pd.Series([True]), "bool"),
        (pd.Series(pd.to_datetime(["2024-01-01"])).astype("datetime64[ns]"), "datetime64[ns]"),
        (pd.Series(["a"], dtype="category"), "category"),
        (pd.Series([1], dtype="Int64"), "int64"),
    ],
)
def test_dtype_names_are_stable(series: pd.Series, expected: str) -> None:
    assert dtype_name(series.dtype) == expected


def test_infer_inputs_keeps_column_order() -> None:
    frame = pd.DataFrame({"b": [1.0], "a": ["x"]})
    assert infer_inputs(frame) == [
        {"name": "b", "dtype": "float64"},
        {"name": "a", "dtype": "string"},
    ]


def test_encoder_ignores_unknown_and_missing_categories_and_round_trips() -> None:
    train = pd.DataFrame({"city": ["Oslo", "Rome", "Oslo"], "x": [1.0, 2.0, 3.0]})
    encoder = TabularEncoder(standardize=True).fit(train)
    assert encoder.categorical_ == ["city"] and encoder.numeric_ == ["x"]
    test = pd.DataFrame({"city": ["Lima", None, "Rome"], "x": [2.0, np.nan, 4.0]})
    encoded = encoder.transform(test)
    np.testing.assert_allclose(encoded[:, :2], [[0, 0], [0, 0], [0, 1]])
    assert encoded[1, 2] == 0.0  # missing number -> the mean
    again = TabularEncoder.from_json(encoder.to_json())
    np.testing.assert_array_equal(again.transform(test), encoded)


def test_encoder_refuses_undeclared_datetime_and_checks_fit() -> None:
    frame = pd.DataFrame({"when": pd.to_datetime(["2024-01-01"])})
    with pytest.raises(FlavorError, match="column 'when'"):
        TabularEncoder().fit(frame)
    with pytest.raises(NotFittedError):
        TabularEncoder().transform(frame)


def test_label_codes_keep_string_labels_and_refuse_unseen_ones() -> None:
    classes, codes = encode_labels(np.array(["b", "a", "c", "a"], dtype=object))
    assert classes.tolist() == ["a", "b", "c"]
    assert codes.tolist() == [1, 0, 2, 0]
    with pytest.raises(FlavorError, match="found \\['z'\\]"):
        label_codes(classes, ["a", "z"], field="y_valid")
    with pytest.raises(FlavorError, match="missing labels"):
        encode_labels(np.array(["a", None], dtype=object))


def test_entry_point_and_dotted_spellings_both_import() -> None:
    assert import_object("os.path:join", field="f") is import_object("os.path.join", field="f")


def test_check_params_accepts_known_and_open_ended_targets() -> None:
    def factory(n_inputs: int, n_outputs: int, *, width: int = 3) -> None:
        return None

    check_params(factory, {"width": 4})
    with pytest.raises(FlavorError, match="factory has no parameter 'widht'"):
        check_params(factory, {"widht": 4})
    check_params(dict, {"anything": 1})


@pytest.mark.parametrize(
    "module",
    [
        "readyml.flavors",
        "readyml.flavors._imports",
        "readyml.flavors._signature",
        "readyml.flavors._tabular",
        "readyml.flavors.sklearn",
        "readyml.flavors.xgboost",
        "readyml.flavors.lightgbm",
        "readyml.flavors.torch",
        "readyml.flavors.torch_quantization",
    ],
)
def test_doctests(module: str) -> None:
    library = {"readyml.flavors.xgboost": "xgboost", "readyml.flavors.lightgbm": "lightgbm"}
    library |= {"readyml.flavors.torch": "torch", "readyml.flavors.torch_quantization": "torch"}
    if module in library and importlib.util.find_spec(library[module]) is None:
        pytest.skip(f"{library[module]} is not installed")
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
