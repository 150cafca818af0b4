"""The rubric: 28 tests, seven per section, paper titles, freshness windows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from readyml.score import RUBRIC, SECTIONS, max_age, rubric_test
from readyml.types import ModelRef, is_test_id


def test_rubric_has_seven_tests_in_each_of_four_sections_in_order() -> None:
    assert len(RUBRIC) == 28
    assert [t.id for t in RUBRIC] == [f"{s}-{n}" for s in SECTIONS for n in range(1, 8)]
    assert all(is_test_id(t.id) for t in RUBRIC)


def test_titles_follow_the_paper() -> None:
    assert rubric_test("data-1").title == "Feature expectations are captured in a schema"
    assert rubric_test("model-5").title == "A simpler model is not better"
    assert rubric_test("infra-7").title == (
        "Models can be quickly and safely rolled back to a previous serving version"
    )
    assert rubric_test("monitor-4").title == "Models are not too stale"
    assert len({t.title for t in RUBRIC}) == 28


def test_every_test_says_how_to_improve_and_accepts_manual_evidence() -> None:
    for test in RUBRIC:
        assert test.improve
        assert test.manual


def test_monitoring_evidence_has_a_shorter_window_than_other_sections() -> None:
    assert rubric_test("monitor-2").max_age == timedelta(days=7)
    assert rubric_test("data-2").max_age == timedelta(days=90)


def test_window_overrides_prefer_the_test_over_its_section() -> None:
    monitor_4 = rubric_test("monitor-4")
    assert max_age(monitor_4, {}) == timedelta(days=7)
    assert max_age(monitor_4, {"monitor": 2}) == timedelta(days=2)
    assert max_age(monitor_4, {"monitor": 2, "monitor-4": 1}) == timedelta(days=1)


def test_unknown_test_id_names_the_accepted_forms() -> None:
    with pytest.raises(KeyError, match="data-N"):
        rubric_test("data-8")


@pytest.mark.parametrize("text", ["data-2\n", " data-2", "data-2 "])
def test_a_test_id_with_whitespace_is_not_one(text: str) -> None:
    assert not is_test_id(text)


@pytest.mark.parametrize("text", ["demo:\u0661", "demo@champion\nx", "demo:1\nx"])
def test_a_model_reference_takes_ascii_digits_and_nothing_after(text: str) -> None:
    with pytest.raises(ValueError, match="expected NAME, NAME:VERSION or NAME@ALIAS"):
        ModelRef.parse(text)
