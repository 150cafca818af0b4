"""Every gate of the project applies to a compressed version, and a repeat keeps its status."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from readyml.compress import Methods, Splits, compress_version
from readyml.compress.demo import register_trained
from readyml.config import (
    BaselineRule,
    FairnessRule,
    FairnessSpec,
    GateRule,
    GatesSpec,
    SensitiveAttribute,
)
from readyml.registry import ModelVersion, Registry


def _stump(registry: Registry, splits: Splits) -> ModelVersion:
    """A one-split tree: it loses to the linear baseline on iris."""
    from sklearn.tree import DecisionTreeClassifier

    from readyml.flavors.sklearn import SklearnModel

    model = SklearnModel(estimator=DecisionTreeClassifier(max_depth=1, random_state=0))
    return register_trained(registry, "iris", model.fit(splits.X_train, splits.y_train), splits)


def _mlp(registry: Registry, splits: Splits, hidden: list[int]) -> ModelVersion:
    from readyml.flavors.torch import TorchModel

    model = TorchModel(factory_params={"hidden": hidden}, epochs=20, lr=1e-2, seed=0)
    return register_trained(registry, "iris", model.fit(splits.X_train, splits.y_train), splits)


def _failed(gate: dict[str, Any] | None, kind: str) -> list[dict[str, Any]]:
    reasons = (gate or {}).get("reasons") or []
    return [r for r in reasons if r["kind"] == kind and r["judged"] and not r["passed"]]


def test_a_copy_of_a_model_that_loses_to_the_baselines_is_vetoed(
    registry: Registry, iris_splits: Splits
) -> None:
    parent = _stump(registry, iris_splits)
    gates = GatesSpec(beat_baselines=BaselineRule(baselines=["linear"]))
    report = compress_version(
        registry, parent.ref, iris_splits, Methods(format="onnx"), gates=gates
    )
    row = report.rows[1]
    assert row.decision == "vetoed"
    assert "does not beat the linear baseline" in _failed(row.gate, "baseline")[0]["message"]
    assert registry.get(row.ref).status == "vetoed"


def test_latency_and_size_bounds_are_measured_on_the_candidate(
    registry: Registry, iris_splits: Splits
) -> None:
    parent = _mlp(registry, iris_splits, [64, 64])
    report = compress_version(
        registry,
        parent.ref,
        iris_splits,
        Methods(prune=0.5, structured=True),
        gates=GatesSpec(max_size_mb=0.001, max_latency_ms=1e-6),
        max_quality_loss=1.0,
        max_slice_loss=1.0,
    )
    base, row = report.rows
    assert row.decision == "vetoed"
    assert len(_failed(row.gate, "latency")) == 1
    size = _failed(row.gate, "size")[0]["value"]
    assert size == pytest.approx(row.size_bytes / 1e6)  # the pruned files, not the parent's
    assert row.size_bytes < base.size_bytes


def test_fairness_rules_apply_to_the_candidate(registry: Registry, iris_splits: Splits) -> None:
    parent = _stump(registry, iris_splits)
    splits = dataclasses.replace(
        iris_splits,
        valid_frame=iris_splits.X_valid,
        fairness=FairnessSpec(sensitive=[SensitiveAttribute(name="site")], min_group_size=5),
    )
    gates = GatesSpec(
        fairness=[
            FairnessRule(metric="accuracy_difference", max=1.0),
            FairnessRule(metric="accuracy_difference", max=1.0, attribute="region"),
        ]
    )
    report = compress_version(registry, parent.ref, splits, Methods(format="onnx"), gates=gates)
    row = report.rows[1]
    reasons = [r for r in (row.gate or {})["reasons"] if r["kind"] == "fairness"]
    assert [r["passed"] for r in reasons] == [True, False]
    assert "no sensitive attribute 'region'" in reasons[1]["message"]
    assert "site" in row.quality["fairness"]["attributes"]


def test_a_repeat_reports_the_stored_status_and_keeps_the_report(
    registry: Registry, iris_splits: Splits, tmp_path: Path
) -> None:
    parent = _stump(registry, iris_splits)
    strict = GatesSpec(rules=[GateRule(metric="accuracy", max=0.1)])
    out = tmp_path / "report"
    first = compress_version(
        registry, parent.ref, iris_splits, Methods(format="onnx"), gates=strict, out=out
    )
    assert first.rows[1].decision == "vetoed"
    written = (out / "compression.json").read_text()
    again = compress_version(registry, parent.ref, iris_splits, Methods(format="onnx"), out=out)
    row = again.rows[1]
    assert row.details["already_registered"]
    assert (row.decision, again.vetoed) == ("vetoed", [row])  # the registry's, not a new verdict
    assert registry.get(row.ref).status == "vetoed"
    assert (out / "compression.json").read_text() == written
