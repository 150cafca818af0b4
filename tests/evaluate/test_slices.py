from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from readyml.config import SliceSpec
from readyml.errors import ConfigError, DataError
from readyml.evaluate.slices import Slice, check_declared_values, evaluate_slices


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "city": ["oslo"] * 40 + ["rome"] * 40 + ["nice"] * 5,
            "age": list(range(85)),
            "tier": ["a", "b"] * 42 + ["a"],
        }
    )


def _run(declared: list[SliceSpec], *, auto: bool = True) -> dict[str, Slice]:
    frame = _frame()
    y = np.array([1, 0] * 42 + [1])
    pred = y.copy()
    pred[:10] = 1 - pred[:10]  # mistakes in oslo only
    slices = evaluate_slices(
        frame,
        task="classification",
        y_true=y,
        y_pred=pred,
        proba=None,
        classes=None,
        declared=declared,
        features=["city", "age", "tier"],
        min_size=20,
        auto=auto,
    )
    return {s.name: s for s in slices}


def test_declared_values_ranges_and_crosses() -> None:
    found = _run(
        [
            SliceSpec(name="south", column="city", values=["rome", "nice"]),
            SliceSpec(name="young", column="age", max=30),
            SliceSpec(name="x", column="city", cross="tier"),
        ],
        auto=False,
    )
    south, young = found["south"], found["young"]
    assert south.size == 45 and south.kind == "declared"
    assert young.size == 30
    assert found["x: city=oslo & tier=a"].size == 20
    assert found["x: city=oslo & tier=a"].metrics["accuracy"] == pytest.approx(0.75)


def test_automatic_slices_cover_every_categorical_feature_and_small_ones_are_not_judged() -> None:
    found = _run([])
    assert {"city=oslo", "city=rome", "city=nice", "tier=a", "tier=b"} <= set(found)
    nice = found["city=nice"]
    assert nice.kind == "auto" and not nice.judged
    assert "too small to judge: 5 rows < min_slice_size 20" in nice.reason
    assert found["city=oslo"].metrics["accuracy"] == pytest.approx(0.75)


def test_unknown_slice_column_names_the_slice() -> None:
    with pytest.raises(DataError, match=r"slices\[bad\]: column 'nope'"):
        _run([SliceSpec(name="bad", column="nope")])


def test_a_declared_value_found_in_no_row_is_a_config_error_naming_it() -> None:
    train, valid = _frame().iloc[:60], _frame().iloc[60:]
    typo = SliceSpec(name="south", column="city", values=["rome", "nicce"])
    with pytest.raises(ConfigError) as raised:
        check_declared_values([typo], [train, valid])
    assert str(raised.value) == (
        "slices[south].values: expected values that occur in column 'city', found 'nicce' in "
        "no row of the data (did you mean 'nice'?); its values: 'nice', 'oslo', 'rome'"
    )


def test_declared_values_found_in_the_data_pass_even_outside_the_validation_rows() -> None:
    frame = _frame()
    frame["month"] = [float(1 + i % 12) for i in range(len(frame))]
    train, valid = frame[frame["city"] != "nice"], frame[frame["city"] == "nice"]
    check_declared_values(
        [
            SliceSpec(name="north", column="city", values=["oslo"]),  # in training rows only
            SliceSpec(name="winter", column="month", values=[12, 1, 2]),  # 12 matches 12.0
            SliceSpec(name="young", column="age", max=30),  # ranges are not values
            SliceSpec(name="bad", column="nope", values=["x"]),  # slice_masks names it
        ],
        [train, valid],
    )


def test_a_value_the_schema_lists_may_be_absent_from_this_data() -> None:
    # A season's retraining window lacks snow; the schema's categories know it is valid.
    summer = pd.DataFrame({"weather": ["sun", "rain", "sun"]})
    snow = SliceSpec(name="snow", column="weather", values=["snow"])
    check_declared_values([snow], [summer], {"weather": ["rain", "snow", "sun"]})
    with pytest.raises(ConfigError, match="found 'snwo' in no row"):
        typo = SliceSpec(name="snow", column="weather", values=["snwo"])
        check_declared_values([typo], [summer], {"weather": ["rain", "snow", "sun"]})


def test_a_refusal_shows_the_first_few_values_and_how_many() -> None:
    frame = pd.DataFrame({"code": [f"c{i:02d}" for i in range(30)]})
    with pytest.raises(ConfigError, match=r"its values: 'c00', .*'c07' \.\.\. \(30 in all\)$"):
        check_declared_values([SliceSpec(name="s", column="code", values=["zz"])], [frame])
