from __future__ import annotations

from typing import Any

import pytest

from readyml.config import GateRule, GatesSpec
from readyml.errors import ConfigError
from readyml.evaluate import gate, judge, primary_metric


def _evaluation(accuracy: float = 0.9, north: float = 0.9, size: int = 50) -> dict[str, Any]:
    return {
        "primary": "accuracy",
        "valid": {"accuracy": accuracy, "log_loss": 0.3},
        "slices": [
            {
                "name": "north",
                "kind": "declared",
                "size": size,
                "judged": size >= 30,
                "reason": "" if size >= 30 else f"too small to judge: {size} rows",
                "metrics": {"accuracy": north},
            },
        ],
        "baselines": {
            "dummy": {"metrics": {"accuracy": 0.5}},
            "linear": {"metrics": {"accuracy": 0.85}},
        },
        "serving": {"latency_ms_p95": 12.0, "size_mb": 3.0},
        "fairness": {
            "attributes": {"sex": {"disparities": {"demographic_parity_difference": 0.3}}}
        },
    }


def _spec(**kwargs: Any) -> GatesSpec:
    return GatesSpec.model_validate(kwargs)


def test_absolute_rules_bless_when_every_rule_passes() -> None:
    decision = judge(
        {"accuracy": 0.9, "log_loss": 0.3},
        [GateRule(metric="accuracy", min=0.8), GateRule(metric="log_loss", max=0.5)],
    )
    assert decision.blessed and [r.passed for r in decision.reasons] == [True, True]


def test_veto_names_metric_threshold_and_value() -> None:
    decision = judge({"accuracy": 0.61}, [GateRule(metric="accuracy", min=0.8)])
    assert decision.decision == "vetoed"
    assert decision.reasons[0].message == "accuracy >= 0.8 failed: accuracy = 0.6100"


def test_a_metric_that_was_not_computed_vetoes() -> None:
    decision = judge({"accuracy": 0.9}, [GateRule(metric="roc_auc", min=0.7)])
    assert not decision.blessed and "was not computed" in decision.reasons[0].message


def test_absolute_rule_on_a_slice_names_the_slice() -> None:
    spec = _spec(rules=[{"metric": "accuracy", "min": 0.8, "slice": "north"}])
    decision = gate(_evaluation(north=0.7), spec)
    assert (
        decision.failed[0].message == "accuracy >= 0.8 on slice 'north' failed: accuracy = 0.7000"
    )


def test_a_rule_on_a_per_value_slice_judges_every_value() -> None:
    evaluation = _evaluation()
    evaluation["slices"] = [
        {
            "name": f"region={value}",
            "kind": "declared",
            "source": "region",
            "size": size,
            "judged": size >= 30,
            "reason": "",
            "metrics": {"accuracy": accuracy},
        }
        for value, accuracy, size in [("east", 0.90, 60), ("north", 0.79, 48), ("west", 0.1, 5)]
    ]
    spec = _spec(rules=[{"metric": "accuracy", "min": 0.85, "slice": "region"}])
    decision = gate(evaluation, spec)
    assert decision.decision == "vetoed"
    assert [r.slice for r in decision.reasons if r.kind == "absolute"] == [
        "region=east",
        "region=north",
        "region=west",
    ]
    assert [r.slice for r in decision.failed] == ["region=north"]
    west = next(r for r in decision.reasons if r.slice == "region=west")
    assert not west.judged
    assert west.message.startswith("accuracy >= 0.85 not applied to slice 'region=west', ")
    assert west.message.endswith("(applied to the other slices of 'region')")


@pytest.mark.parametrize(
    ("size", "why"),
    [
        (10, "'north' too small to judge: 10 rows"),
        # A listed value found in the data but in no validation row (values found nowhere
        # are refused before, see check_declared_values).
        (0, "'north' empty: no validation rows"),
    ],
)
def test_a_rule_on_a_slice_that_could_not_be_judged_vetoes(size: int, why: str) -> None:
    evaluation = _evaluation(north=0.99, size=size)
    if size == 0:
        evaluation["slices"][0].update(reason="empty: no validation rows", metrics={})
    spec = _spec(rules=[{"metric": "accuracy", "min": 0.8, "slice": "north"}])
    decision = gate(evaluation, spec)
    assert decision.decision == "vetoed"
    (failed,) = decision.failed
    assert failed.slice == "north" and failed.judged and not failed.passed
    assert failed.message.startswith(
        "accuracy >= 0.8 on slice 'north' failed: not judged, too few validation rows ("
    )
    assert why in failed.message and "lower gates.min_slice_size" in failed.message


def test_a_rule_on_a_per_value_slice_none_of_whose_values_is_judged_vetoes() -> None:
    evaluation = _evaluation()
    evaluation["slices"] = [
        {
            "name": f"region={value}",
            "kind": "declared",
            "source": "region",
            "size": 5,
            "judged": False,
            "reason": "too small to judge: 5 rows < min_slice_size 30",
            "metrics": {"accuracy": 1.0},
        }
        for value in ("east", "north", "south", "west")
    ]
    spec = _spec(rules=[{"metric": "accuracy", "min": 0.85, "max": 1.0, "slice": "region"}])
    (failed,) = gate(evaluation, spec).failed
    assert failed.message.startswith(
        "accuracy >= 0.85 and accuracy <= 1 on slice 'region' failed: not judged, "
    )
    assert "'region=south' too small to judge" in failed.message
    assert "and 1 more" in failed.message and "region=west" not in failed.message


def test_champion_regression_overall_and_per_slice() -> None:
    spec = _spec(champion={"max_regression": 0.005})
    champion = {"version": 3, "metrics": _evaluation(accuracy=0.9, north=0.95)}
    decision = gate(_evaluation(accuracy=0.899, north=0.80), spec, champion=champion)
    assert decision.compared_with_champion and decision.champion == 3
    assert [r.slice for r in decision.failed] == ["north"]
    assert "accuracy on slice 'north' vs champion v3 failed: 0.8000 against 0.9500" in (
        decision.failed[0].message
    )


def test_first_model_and_same_model_are_not_compared_with_a_champion() -> None:
    spec = _spec(champion={"max_regression": 0.0})
    first = gate(_evaluation(accuracy=0.1), spec)
    assert first.blessed and "no champion yet" in first.note
    champion = {"version": 1, "metrics": _evaluation(accuracy=0.99)}
    same = gate(_evaluation(accuracy=0.1), spec, champion=champion, same_as_champion=True)
    assert same.blessed and not same.compared_with_champion and "not compared" in same.note


def test_too_small_slices_are_reported_not_judged() -> None:
    spec = _spec(champion={"max_regression": 0.0})
    champion = {"version": 1, "metrics": _evaluation(north=0.99, size=10)}
    decision = gate(_evaluation(north=0.1, size=10), spec, champion=champion)
    unjudged = [r for r in decision.reasons if not r.judged]
    assert decision.blessed and unjudged and "too small to judge" in unjudged[0].message


def test_baselines_latency_size_and_fairness_rules() -> None:
    spec = _spec(
        beat_baselines={"margin": 0.1},
        max_latency_ms=10.0,
        max_size_mb=5.0,
        fairness=[{"metric": "demographic_parity_difference", "max": 0.2, "attribute": "sex"}],
    )
    failed = [r.message for r in gate(_evaluation(), spec).failed]
    assert failed == [
        "accuracy does not beat the linear baseline by more than 0.1: 0.9000 against 0.8500 "
        "(margin +0.0500)",
        "p95 latency <= 10 ms failed: latency_ms_p95 = 12.000 ms",
        "demographic_parity_difference for 'sex' <= 0.2 failed: "
        "demographic_parity_difference = 0.3000",
    ]


def test_primary_metric_must_fit_the_task() -> None:
    assert primary_metric("regression", None) == "rmse"
    with pytest.raises(ConfigError, match="expected a regression metric"):
        primary_metric("regression", "accuracy")
