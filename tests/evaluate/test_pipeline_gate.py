from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from evaluate.conftest import RanProject, region_frame, region_spec, run
from readyml.errors import AliasError
from readyml.score import score_project
from readyml.score.report import how_to_improve
from readyml.train.evaluation_steps import _baseline_evidence
from support import IRIS_SPEC, iris_frame, write_project

MODEL_TESTS = {
    "model-1",
    "model-3",
    "model-4",
    "model-5",
    "model-6",
    "model-7",
    "data-2",
    "data-3",
    "infra-4",
}


def test_every_model_test_has_evidence_after_a_run(ran_regions: RanProject) -> None:
    evidence = ran_regions.registry.list_evidence(project="regions")
    found = {e.test_id for e in evidence if e.run_id == ran_regions.result.run_id}
    assert found >= MODEL_TESTS
    assert all(e.automated for e in evidence if e.test_id in MODEL_TESTS)
    by_id = {e.test_id: e for e in evidence}
    assert by_id["model-1"].details["reason"]  # git state or "not a git repository"
    assert by_id["model-3"].details["n_trials"] == 2
    assert by_id["model-4"].details["retrain_every_days"] > 0
    assert by_id["model-5"].passed and by_id["model-5"].details["margins"]["dummy"] > 0
    assert by_id["model-7"].details["attributes"]["region"]["disparities"]
    assert by_id["infra-4"].details["decision"] == "blessed"


def test_version_carries_decision_baselines_and_slices(ran_regions: RanProject) -> None:
    version = ran_regions.registry.get("regions:1")
    metrics = version.metrics
    assert version.gate is not None and version.gate["decision"] == "blessed"
    assert "no champion yet" in version.gate["note"]
    assert {"dummy", "linear", "margins"} <= set(metrics["baselines"])
    slices = {s["name"]: s for s in metrics["slices"]}
    assert slices["north"]["kind"] == "declared" and slices["north"]["judged"]
    assert metrics["ci"]["low"] <= metrics["valid"]["accuracy"] <= metrics["ci"]["high"]
    assert set(metrics["importance"]["features"]) == {"x1", "x2", "region"}
    assert metrics["importance"]["features"]["x1"]["verdict"] == "helps"
    assert metrics["staleness"]["points"] and metrics["spec_review"]["reason"]
    assert metrics["serving"]["size_mb"] > 0


def test_high_x2_slice_is_reported_as_too_small(ran_regions: RanProject) -> None:
    slices = {s["name"]: s for s in ran_regions.registry.get("regions:1").metrics["slices"]}
    small = slices["high x2"]
    assert 0 < small["size"] < 30 and not small["judged"]
    assert "too small to judge" in small["reason"]


def test_candidate_without_its_best_features_is_vetoed_and_cannot_be_promoted(
    tmp_path: Path,
) -> None:
    spec = {
        **IRIS_SPEC,
        "gates": {"champion": {"max_regression": 0.005}},
    }
    write_project(tmp_path, spec)
    first, registry, _ = run(tmp_path)
    assert first.value("gate")["decision"] == "blessed"
    registry.promote("iris:1", who="test", reason="first")
    worse = {**spec, "exclude": ["petal_length", "petal_width"]}
    (tmp_path / "readyml.yaml").write_text(yaml.safe_dump(worse), encoding="utf-8")
    second, registry, _ = run(tmp_path)
    gate = second.value("gate")
    assert gate["decision"] == "vetoed" and gate["compared_with_champion"]
    failed = " | ".join(gate["failed"])
    assert "accuracy vs champion v1 failed" in failed and "allowed" in failed
    with pytest.raises(AliasError, match="vetoed"):
        registry.promote("iris:2", who="test", reason="try anyway")
    assert registry.get("iris@champion").version == 1


SLICE_FIT = """
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def fit(X, y, params, seed):
    y = np.asarray(y).copy()
    bad = params.get("corrupt")
    if bad:  # learn the opposite label in one region only
        mask = (X["region"] == bad).to_numpy()
        y[mask] = np.where(y[mask] == "yes", "no", "yes")
    encode = ColumnTransformer(
        [("region", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["region"])],
        remainder="passthrough",
    )
    model = RandomForestClassifier(n_estimators=30, random_state=seed)
    return Pipeline([("encode", encode), ("model", model)]).fit(X, y)
"""


def test_candidate_worse_on_one_declared_slice_only_is_vetoed_naming_it(tmp_path: Path) -> None:
    (tmp_path / "slicefit.py").write_text(SLICE_FIT, encoding="utf-8")
    base = region_spec(
        model={"entry_point": "slicefit:fit", "params": {}},
        gates={"champion": {"max_regression": 0.5, "relative": False, "max_slice_regression": 0.1}},
        tuning=None,
        fairness={},
        importance={"repeats": 1, "drop_column_max_rows": 0},
    )
    write_project(tmp_path, base, region_frame())
    first, registry, _ = run(tmp_path)
    assert first.status == "succeeded", first.error
    assert first.value("gate")["decision"] == "blessed"
    registry.promote("regions:1", who="test", reason="first")
    worse = {**base, "model": {"entry_point": "slicefit:fit", "params": {"corrupt": "north"}}}
    (tmp_path / "readyml.yaml").write_text(yaml.safe_dump(worse), encoding="utf-8")
    second, registry, _ = run(tmp_path)
    gate = second.value("gate")
    assert gate["decision"] == "vetoed"
    failed = [r for r in gate["reasons"] if r["judged"] and not r["passed"]]
    assert [r["slice"] for r in failed] == ["north"]
    assert "on slice 'north' vs champion v1 failed" in failed[0]["message"]
    with pytest.raises(AliasError):
        registry.promote("regions:2", who="test", reason="try anyway")


def test_failed_baseline_and_slice_tests_say_why(tmp_path: Path) -> None:
    # Iris declares no slices and has no categorical feature; the model is the linear
    # baseline itself, so a required margin of 0.5 cannot be met.
    write_project(tmp_path, {**IRIS_SPEC, "gates": {"beat_baselines": {"margin": 0.5}}})
    result, registry, _ = run(tmp_path)
    evidence = {
        e.test_id: e for e in registry.list_evidence(project="iris") if e.run_id == result.run_id
    }
    baselines, slices = evidence["model-5"], evidence["model-6"]
    assert not baselines.passed and not slices.passed
    assert baselines.details["reason"].startswith(
        "expected accuracy at least as good as every baseline, by at least 0.5 "
        "(gates.beat_baselines.margin) beyond validation noise, found "
    )
    assert "linear " in baselines.details["reason"]
    assert slices.details["reason"] == (
        "no slice was judged: declare slices, or categorical features, with at least "
        "gates.min_slice_size validation rows each"
    )


def test_a_baseline_that_scores_better_fails_model_5_whatever_the_gates_tolerance() -> None:
    # The demo's numbers: the gate tolerates a baseline 0.02 better, the evidence does not.
    baselines = {
        "dummy": {"metrics": {"accuracy": 0.4}},
        "linear": {"metrics": {"accuracy": 0.6178}},
        "margins": {"dummy": 0.21, "linear": -0.0078},
    }
    passed, details = _baseline_evidence("accuracy", 0.61, baselines, -0.02)
    assert not passed and details["required_margin"] == 0.0
    assert details["reason"] == (
        "expected accuracy at least as good as every baseline beyond validation noise, found "
        "linear better by 0.0078 (0.6178 against 0.6100)"
    )
    tied = {**baselines, "margins": {"dummy": 0.21, "linear": 0.0}}
    assert _baseline_evidence("accuracy", 0.6178, tied, -0.02)[0]


def test_a_baseline_ahead_within_validation_noise_is_not_better() -> None:
    # The paired bootstrap's interval of the candidate's margin decides, not its sign.
    linear = {"metrics": {"accuracy": 0.6178}, "margin_interval": [-0.03, 0.015]}
    baselines = {
        "dummy": {"metrics": {"accuracy": 0.4}, "margin_interval": [0.15, 0.27]},
        "linear": linear,
        "margins": {"dummy": 0.21, "linear": -0.0078},
    }
    passed, details = _baseline_evidence("accuracy", 0.61, baselines, -0.02)
    assert passed and details["within_noise"] == ["linear"] and "reason" not in details
    ahead = {**baselines, "linear": {**linear, "margin_interval": [-0.02, -0.001]}}
    passed, details = _baseline_evidence("accuracy", 0.61, ahead, -0.02)
    assert not passed
    assert details["reason"].endswith(
        "linear better by 0.0078 (0.6178 against 0.6100; margin interval -0.02 to -0.001)"
    )


def test_the_champion_is_judged_on_rows_it_never_saw_whatever_their_label(
    tmp_path: Path,
) -> None:
    spec = {**IRIS_SPEC, "gates": {"champion": {"max_regression": 0.005}}}
    write_project(tmp_path, spec)
    first, registry, _ = run(tmp_path)
    registry.promote("iris:1", who="test", reason="first")
    # Shuffled labels and a new split: most rows v1 trained on come back with another label.
    frame = iris_frame()
    frame["species"] = np.random.default_rng(0).permutation(frame["species"].to_numpy())
    write_project(tmp_path, {**spec, "seed": 5}, frame)
    second, _, _ = run(tmp_path)
    assert second.status == "succeeded", second.error
    features = [c for c in frame.columns if c != "species"]
    seen = set(first.value("train")[features].itertuples(index=False))
    valid = second.value("valid")[features]
    unseen = sum(row not in seen for row in valid.itertuples(index=False))
    rows = second.value("gate")["champion_rows"]
    assert rows["left_out"] == len(valid) - unseen > 0 and rows["compared"] == unseen


def test_deleted_step_cache_weakens_the_champion_comparison_instead_of_failing(
    tmp_path: Path,
) -> None:
    write_project(tmp_path, IRIS_SPEC)
    first, registry, project = run(tmp_path)
    assert first.status == "succeeded", first.error
    registry.promote("iris:1", who="test", reason="first")
    changed = {**IRIS_SPEC, "seed": 5}
    (tmp_path / "readyml.yaml").write_text(yaml.safe_dump(changed), encoding="utf-8")
    shutil.rmtree(project.workspace / "artifacts" / "cache")  # a cache must be safe to delete
    second, _, _ = run(tmp_path)
    assert second.status == "succeeded", second.error
    gate = second.value("gate")
    assert "champion v1's training split is unavailable" in gate["champion_split_unavailable"]
    assert gate["champion_rows"]["left_out"] == 0
    assert gate["champion_rows"]["why"].startswith("all validation rows")
    gate_step = next(s for s in second.steps if s.name == "gate")
    assert "champion's training split unavailable" in gate_step.message


def test_failed_importance_gate_and_inclusion_tests_say_why(tmp_path: Path) -> None:
    # No gate rule, a sensitive attribute whose groups are too small, and a feature that
    # holds nothing.
    fairness = {"sensitive": [{"name": "site"}], "min_group_size": 1000}
    spec = {**IRIS_SPEC, "gates": {}, "fairness": fairness}
    frame = iris_frame().assign(zeros=0.0, site=["a", "b", "c"] * 50)
    write_project(tmp_path, spec, frame)
    result, registry, project = run(tmp_path)
    assert result.status == "succeeded", result.error
    evidence = {
        e.test_id: e for e in registry.list_evidence(project="iris") if e.run_id == result.run_id
    }
    assert not any(evidence[t].passed for t in ("data-2", "infra-4", "model-7"))
    assert (
        evidence["data-2"]
        .details["reason"]
        .startswith("expected every feature to improve accuracy, found ")
    )
    assert (
        "zeros (loss of accuracy when shuffled: +0 ± 0; when refitted without it: +0)"
        in evidence["data-2"].details["reason"]
    )
    assert evidence["infra-4"].details["reason"] == (
        "expected the gate to judge the candidate by at least one rule, found no rule "
        "declared (gates)"
    )
    assert evidence["model-7"].details["reason"] == (
        "expected disparities between the groups of fairness.sensitive, found none measured: "
        "fewer than two groups of at least 1000 validation rows (fairness.min_group_size)"
    )
    # The score says why, where it said only that the latest run failed.
    score = score_project(project, registry)
    assert how_to_improve(score.test("infra-4")).startswith(
        "fix it: the latest automated run failed: expected the gate to judge"
    )
