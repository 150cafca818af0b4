"""Every check fires on the condition it watches and stays quiet on clean traffic."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from readyml.data import profile_frame
from readyml.errors import ConfigError
from readyml.monitor import (
    CheckResult,
    DependencyCheck,
    InvariantCheck,
    NumericalInstability,
    PerformanceCheck,
    QualityCheck,
    SkewCheck,
    StabilityCheck,
    StalenessCheck,
    TrainingGuard,
    record_feedback,
)
from readyml.registry import Registry, open_registry
from readyml.registry.records import StepStatus

from .helpers import NOW, inputs_for, log_traffic, make_log, predict, training_frame


def keys(result: CheckResult) -> set[str]:
    return {f.key for f in result.findings}


# -- monitor-1 ---------------------------------------------------------------------------


def test_dependency_check_passes_when_packages_and_inputs_match(workspace: Path) -> None:
    log_traffic(workspace, make_log())
    result = DependencyCheck().run(inputs_for(workspace))
    assert result.status == "passed", result.summary
    assert result.test_id == "monitor-1"


def test_dependency_check_names_changed_package_and_both_versions(workspace: Path) -> None:
    log_traffic(workspace, make_log())
    check = DependencyCheck(versions=lambda names: {"numpy": "0.0.1"})
    result = check.run(inputs_for(workspace))
    assert result.status == "failed"
    (finding,) = [f for f in result.findings if f.key == "package:numpy"]
    assert np.__version__ in finding.message and "0.0.1" in finding.message


def test_dependency_check_reports_served_and_upstream_schema_changes(workspace: Path) -> None:
    log_traffic(workspace, make_log().drop(columns=["x2"]))
    source = workspace.parent / "upstream.csv"
    pd.DataFrame({"x1": ["a", "b"], "city": ["oslo", "rome"], "extra": [1, 2]}).to_csv(
        source, index=False
    )
    result = DependencyCheck(sources=["upstream.csv"]).run(inputs_for(workspace))
    found = keys(result)
    assert "input:x2" in found
    changes = result.details["source_changes"]
    assert any("x1: float in the schema, category now" in c for c in changes), changes
    assert any("new column extra" in c for c in changes)


def test_dependency_check_reports_an_upstream_source_left_with_a_header_only(
    workspace: Path,
) -> None:
    log_traffic(workspace, make_log())
    (workspace.parent / "upstream.csv").write_text("x1,x2,city\n")
    result = DependencyCheck(sources=["upstream.csv"]).run(inputs_for(workspace))
    assert result.details["source_changes"] == ["upstream.csv: no rows (a header only)"]


def test_a_missing_upstream_source_is_one_finding(workspace: Path) -> None:
    log_traffic(workspace, make_log())
    result = DependencyCheck(sources=["gone.csv"]).run(inputs_for(workspace))
    assert result.details["source_changes"] == ["gone.csv: source not found"]
    assert [f.labels["source"] for f in result.findings] == ["gone.csv"]


# -- monitor-2 ---------------------------------------------------------------------------


def test_invariant_check_passes_on_clean_inputs(workspace: Path) -> None:
    log_traffic(workspace, make_log())
    result = InvariantCheck(max_errors=0).run(inputs_for(workspace))
    assert result.status == "passed", result.details["anomalies"]


def test_invariant_check_counts_each_anomaly_kind(workspace: Path) -> None:
    log = make_log()
    log.loc[:9, "x1"] = 1e6
    log.loc[:4, "city"] = "paris"
    log_traffic(workspace, log)
    result = InvariantCheck().run(inputs_for(workspace))
    assert result.status == "failed"
    assert result.details["counts"]["out_of_range"] == 1
    assert result.details["counts"]["unseen_categories"] == 1
    assert {"out_of_range:x1", "unseen_categories:city"} <= keys(result)


def test_a_value_just_past_its_bound_is_shown_with_the_digits_that_tell_them_apart(
    workspace: Path,
) -> None:
    log = make_log(n=50)
    log["x1"] = log["x1"].abs() + 0.6
    log.loc[0, "x1"] = 0.5999999999999996
    log_traffic(workspace, log)
    inputs = inputs_for(workspace)
    assert inputs.reference.schema is not None
    feature = inputs.reference.schema.feature("x1")
    assert feature is not None
    feature.min = 0.6
    result = InvariantCheck().run(inputs)
    (finding,) = [f for f in result.findings if f.key == "out_of_range:x1"]
    assert finding.message == (
        f"out_of_range in x1: expected values in [0.6, 10], found 1 of 50 rows outside "
        f"(min 0.5999999999999996, max {log['x1'].max():g})"
    )


# -- monitor-3 ---------------------------------------------------------------------------


def test_skew_check_passes_when_offline_features_match(workspace: Path) -> None:
    log = log_traffic(workspace, make_log())
    inputs = inputs_for(workspace)
    inputs.offline = log[["request_id", "x1", "x2", "city"]].copy()
    result = SkewCheck().run(inputs)
    assert result.status == "passed", result.summary
    assert result.details["per_example"]["features_with_skew"] == 0
    assert result.details["per_example"]["examples_compared"] == len(log)


def test_skew_check_counts_skewed_examples_per_feature(workspace: Path) -> None:
    log = log_traffic(workspace, make_log())
    offline = log[["request_id", "x1", "x2", "city"]].copy()
    offline.loc[:6, "x2"] = offline.loc[:6, "x2"] * 2 + 1
    offline.loc[:2, "city"] = "bergen"
    inputs = inputs_for(workspace)
    inputs.offline = offline
    result = SkewCheck().run(inputs)
    per = result.details["per_example"]
    assert per["features_with_skew"] == 2
    assert per["features"]["x2"]["skewed"] == 7
    assert per["features"]["city"]["skewed"] == 3
    assert {"skew:x2", "skew:city"} <= keys(result)


def test_skew_check_reads_offline_features_from_a_file(workspace: Path) -> None:
    log = log_traffic(workspace, make_log())
    offline = log[["request_id", "x1", "x2", "city"]].copy()
    offline.attrs = {}
    offline.to_parquet(workspace.parent / "offline.parquet")
    result = SkewCheck(offline_features="offline.parquet").run(inputs_for(workspace))
    assert result.details["per_example"]["examples_compared"] == len(log)


def two_row_requests(n: int = 200) -> pd.DataFrame:
    """Requests of two rows each: the rows of a request share its id and arrival time."""
    log = make_log(n)
    log["request_id"] = np.repeat(log["request_id"].to_numpy()[::2], 2)
    log["ts"] = np.repeat(log["ts"].to_numpy()[::2], 2)
    return log


def test_skew_check_compares_every_row_of_a_request(workspace: Path) -> None:
    log = log_traffic(workspace, two_row_requests())
    offline = log[["request_id", "x1", "x2", "city"]].copy()
    offline.loc[1::2, "x2"] += 5.0  # every request's second row
    inputs = inputs_for(workspace)
    inputs.offline = offline
    per = SkewCheck().run(inputs).details["per_example"]
    assert per["examples_compared"] == len(log)
    assert per["features"]["x2"]["skewed"] == len(log) // 2
    assert per["features_with_skew"] == 1


def test_skew_check_matches_offline_rows_by_their_row_column(workspace: Path) -> None:
    log = log_traffic(workspace, two_row_requests())
    offline = log[["request_id", "x1", "x2", "city"]].assign(row=np.tile([0, 1], len(log) // 2))
    offline = offline.iloc[::-1]  # in any order: the row column says which is which
    inputs = inputs_for(workspace)
    inputs.offline = offline
    per = SkewCheck().run(inputs).details["per_example"]
    assert per["examples_compared"] == len(log) and per["features_with_skew"] == 0


def test_skew_check_gives_the_offline_function_each_rows_position(workspace: Path) -> None:
    log_traffic(workspace, two_row_requests())
    (workspace.parent / "offline_rows.py").write_text(
        "def features(rows):\n"
        "    out = rows[['request_id', 'row', 'x1', 'x2', 'city']].copy()\n"
        "    out.loc[out['row'] == 1, 'x2'] += 5.0\n"
        "    return out.sample(frac=1.0, random_state=0)\n"
    )
    result = SkewCheck(offline_features="offline_rows:features").run(inputs_for(workspace))
    assert result.details["per_example"]["features"]["x2"]["skewed"] == 100


def test_an_error_in_the_offline_function_is_one_line_naming_it(workspace: Path) -> None:
    log_traffic(workspace, make_log())
    (workspace.parent / "offline_broken.py").write_text(
        "def features(rows):\n    return rows['nosuch']\n"
    )
    with pytest.raises(ConfigError) as info:
        SkewCheck(offline_features="offline_broken:features").run(inputs_for(workspace))
    assert str(info.value) == (
        "monitoring.skew.offline_features: expected offline_broken:features to recompute the "
        "logged rows' features, found KeyError at offline_broken.py:2: 'nosuch'"
    )


def test_skew_check_flags_distribution_drift_from_training(workspace: Path) -> None:
    log_traffic(workspace, make_log(shift=2.0))
    result = SkewCheck().run(inputs_for(workspace))
    assert result.status == "failed"
    assert "drift:x1" in keys(result)
    assert "drift:x2" not in keys(result)
    scores = result.series["drift_score"]["x1"]
    assert len(scores) == 3 and all(s is not None and s > 1 for s in scores)


def test_drift_with_matching_offline_features_is_reported_but_not_a_skew(workspace: Path) -> None:
    log = log_traffic(workspace, make_log(shift=2.0))
    inputs = inputs_for(workspace)
    inputs.offline = log[["request_id", "x1", "x2", "city"]].copy()
    result = SkewCheck().run(inputs)
    assert result.status == "passed", result.summary
    drift = next(f for f in result.findings if f.key == "drift:x1")
    assert drift.severity == "info"


# -- monitor-4 ---------------------------------------------------------------------------


def test_staleness_check_passes_for_a_fresh_model(workspace: Path) -> None:
    result = StalenessCheck(max_model_age="30d").run(inputs_for(workspace))
    assert result.status == "passed"
    assert result.details["model_age_days"] == pytest.approx(3.0)


def test_staleness_check_uses_the_staleness_curve_and_stage_limits(workspace: Path) -> None:
    inputs = inputs_for(workspace, retrain_every_days=2.0)
    result = StalenessCheck(max_stage_age={"train": "1d"}).run(inputs)
    assert result.details["limit_from"] == "staleness curve (model-4)"
    assert keys(result) == {"model_age", "stage:train"}


def test_a_stage_failing_for_many_runs_keeps_its_last_success(workspace: Path) -> None:
    registry = open_registry(workspace)
    project = f"stale-{uuid.uuid4().hex[:8]}"
    record_step(registry, project, "train", "succeeded", NOW - timedelta(days=10))
    for _ in range(60):  # more runs than any window of recent ones
        record_step(registry, project, "train", "failed", NOW - timedelta(hours=1))
    success = registry.store.last_step_successes(project)
    assert success == {"train": NOW - timedelta(days=10)}
    inputs = inputs_for(workspace, stage_success=success)
    result = StalenessCheck(max_stage_age={"train": "7d", "evaluate": "7d"}).run(inputs)
    assert keys(result) == {"stage:train", "stage:evaluate"}
    never = next(f for f in result.findings if f.key == "stage:evaluate")
    assert never.message == "pipeline stage evaluate has never succeeded; limit 7.0 days"
    assert result.details["stages"]["evaluate"]["last_success"] is None


def record_step(
    registry: Registry, project: str, step: str, status: StepStatus, ended: datetime
) -> None:
    """One run of ``project`` with one step ending at ``ended``."""
    run = registry.store.start_run(project, {}, {})
    registry.store.record_step(
        run.id, step, status=status, started_at=ended, ended_at=ended, input_fingerprint="f"
    )
    registry.store.finish_run(run.id, "succeeded" if status == "succeeded" else "failed")


# -- monitor-5 ---------------------------------------------------------------------------


def test_stability_check_passes_on_finite_values(workspace: Path) -> None:
    log_traffic(workspace, make_log())
    assert StabilityCheck().run(inputs_for(workspace)).status == "passed"


def test_stability_check_counts_nan_and_inf_in_inputs_and_outputs(workspace: Path) -> None:
    log = make_log()
    log.loc[:2, "x1"] = np.nan
    log.loc[3, "x2"] = np.inf
    log.loc[:4, "proba_a"] = np.nan
    log_traffic(workspace, log)
    result = StabilityCheck().run(inputs_for(workspace))
    assert result.details["columns"]["x1"] == {"nan": 3, "inf": 0}
    assert result.details["columns"]["x2"] == {"nan": 0, "inf": 1}
    assert {"nonfinite:x1", "nonfinite:x2", "nonfinite:proba_a"} == keys(result)


def test_training_guard_stops_on_nan_loss_and_dead_relus() -> None:
    torch = pytest.importorskip("torch")
    guard = TrainingGuard(max_dead_share=0.5)
    guard.after_step(0.3)
    with pytest.raises(NumericalInstability, match="step 2"):
        guard.after_step(float("inf"))
    layer = torch.nn.Linear(3, 4)
    with torch.no_grad():
        layer.weight.fill_(-1.0)
        layer.bias.fill_(-1.0)
    module = torch.nn.Sequential(layer, torch.nn.ReLU())
    with pytest.raises(NumericalInstability, match="dead"):
        guard.after_epoch(module, torch.ones(8, 3))
    healthy = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
    with torch.no_grad():
        healthy[0].weight.fill_(1.0)
    report = guard.after_epoch(healthy, torch.ones(8, 3))
    assert report["dead_relu_share"]["1"] == 0.0


# -- monitor-6 ---------------------------------------------------------------------------


def test_performance_check_passes_on_steady_traffic(workspace: Path) -> None:
    log_traffic(workspace, make_log(version=1))
    result = PerformanceCheck().run(inputs_for(workspace))
    assert result.status == "passed", result.findings
    assert result.details["versions"][1]["p99_ms"] < 7


def test_performance_check_catches_jump_against_previous_version(workspace: Path) -> None:
    log_traffic(workspace, make_log(version=1, latency_ms=5.0, seed=3))
    log_traffic(workspace, make_log(version=2, latency_ms=20.0, rss_mb=400.0))
    inputs = inputs_for(workspace, version=2, previous_version=1)
    result = PerformanceCheck().run(inputs)
    assert {"jump:p99_ms:previous", "jump:memory_mb:previous"} <= keys(result)


def test_performance_check_catches_a_slow_leak_and_errors(workspace: Path) -> None:
    log_traffic(workspace, make_log(rss_mb=lambda hours: 200.0 + 120.0 * hours, status=503))
    result = PerformanceCheck(max_memory_growth_mb_per_h=50.0).run(inputs_for(workspace))
    assert result.details["versions"][1]["memory_growth_mb_per_h"] == pytest.approx(120.0, rel=0.01)
    assert {"memory_leak", "error_rate"} <= keys(result)


def test_memory_growth_over_a_short_span_is_not_called_a_leak(workspace: Path) -> None:
    log = make_log(rss_mb=lambda hours: 200.0 + 120.0 * hours)
    log["ts"] = log["ts"].min() + (log["ts"] - log["ts"].min()) / 100  # the same in 1/100 the time
    log_traffic(workspace, log)
    result = PerformanceCheck(max_memory_growth_mb_per_h=50.0).run(inputs_for(workspace))
    version = result.details["versions"][1]
    assert version["memory_growth_mb_per_h"] > 50.0 and version["memory_span_h"] < 0.5
    assert "memory_leak" not in keys(result)


def test_performance_check_catches_jump_against_trailing_baseline(workspace: Path) -> None:
    log = make_log(n=600)
    log.loc[500:, "latency_ms"] = 50.0
    log_traffic(workspace, log)
    result = PerformanceCheck().run(inputs_for(workspace))
    assert "jump:p99_ms:baseline" in keys(result)


def test_memory_is_read_when_only_newer_log_files_record_it(workspace: Path) -> None:
    older = make_log(version=1, seed=3).drop(columns=["rss_mb"])  # before the server recorded it
    log_traffic(workspace, older)
    log_traffic(workspace, make_log(version=2, rss_mb=lambda hours: 200.0 + 120.0 * hours))
    inputs = inputs_for(workspace, version=2, previous_version=1)
    result = PerformanceCheck(max_memory_growth_mb_per_h=50.0).run(inputs)
    assert result.details["versions"][2]["memory_growth_mb_per_h"] == pytest.approx(120.0, rel=0.01)
    assert "memory_leak" in keys(result)


# -- monitor-7 ---------------------------------------------------------------------------


def test_quality_check_passes_with_good_labels(workspace: Path) -> None:
    log = log_traffic(workspace, make_log())
    record_feedback(
        workspace,
        [
            {"request_id": r, "label": y}
            for r, y in zip(log["request_id"], log.attrs["truth"], strict=True)
        ],
    )
    result = QualityCheck().run(inputs_for(workspace))
    assert result.status == "passed", result.findings
    assert result.details["labelled"] == len(log)
    error = result.details["estimate_error"]
    assert abs(error["error"]) < 0.1  # the CBPE estimate is close to the measured accuracy


def test_quality_check_fires_on_a_quality_drop_overall_and_per_slice(workspace: Path) -> None:
    log = log_traffic(workspace, make_log())
    truth = log.attrs["truth"].copy()
    flip = np.arange(len(truth)) % 3 == 0
    truth[flip] = np.where(truth[flip] == "a", "b", "a")
    record_feedback(
        workspace,
        [{"request_id": r, "label": y} for r, y in zip(log["request_id"], truth, strict=True)],
    )
    result = QualityCheck().run(inputs_for(workspace))
    assert result.status == "failed"
    assert {"quality:accuracy", "slice_quality:city=oslo", "slice_quality:city=rome"} <= keys(
        result
    )
    assert len(result.series["accuracy"]) == 3


def test_a_regressors_error_that_went_up_reads_above_validation(workspace: Path) -> None:
    log = make_log(n=200)
    truth = (log["x1"] + log["x2"]).to_numpy()
    log["prediction"] = truth
    log = log.drop(columns=["proba_a", "proba_b"])
    log_traffic(workspace, log)
    labels = truth + np.random.default_rng(0).normal(0.0, 2.0, len(log))
    record_feedback(
        workspace,
        [
            {"request_id": r, "label": float(y)}
            for r, y in zip(log["request_id"], labels, strict=True)
        ],
    )
    inputs = inputs_for(
        workspace,
        task="regression",
        classes=None,
        profile=None,
        metrics={"rmse": 0.5},
        primary="rmse",
        valid=None,
        valid_pred=None,
        valid_proba=None,
    )
    result = QualityCheck(metric="rmse", min_labels=10, slice_columns=[]).run(inputs)
    (finding,) = [f for f in result.findings if f.key == "quality:rmse"]
    assert f"{finding.value:.3f} above validation (0.500)" in finding.message, finding.message


def test_quality_check_before_labels_flags_prediction_shift_and_slice_bias(workspace: Path) -> None:
    log_traffic(workspace, make_log(shift=1.5))
    result = QualityCheck().run(inputs_for(workspace))
    assert result.details["labelled"] == 0
    assert "prediction_shift" in keys(result)
    assert any(k.startswith("slice_bias:city=") for k in keys(result))
    assert 0.5 < result.details["estimated_accuracy"] <= 1.0


def test_quality_check_before_labels_is_quiet_on_training_like_traffic(workspace: Path) -> None:
    log_traffic(workspace, make_log())
    result = QualityCheck().run(inputs_for(workspace))
    assert result.status == "passed", result.findings


def test_quality_estimate_leaves_out_rows_whose_probabilities_are_not_finite(
    workspace: Path, tmp_path: Path
) -> None:
    log = make_log()
    broken = log.copy()
    broken.loc[: len(log) // 2, ["proba_a", "proba_b"]] = np.nan
    broken.loc[len(log) - 1, "proba_a"] = np.inf
    log_traffic(workspace, broken)
    kept = tmp_path / "kept" / ".readyml"
    kept.mkdir(parents=True)
    log_traffic(kept, log.iloc[len(log) // 2 + 1 : -1])
    result = QualityCheck().run(inputs_for(workspace))
    # NaN confidences once fell into the lowest bin and dragged the estimate down: a false alert.
    assert result.status == "passed", result.findings
    assert result.details["estimate_left_out"] == {
        "rows": len(log) // 2 + 2,
        "reason": "probabilities not finite",
    }
    expected = QualityCheck().run(inputs_for(kept)).details["estimated_accuracy"]
    assert result.details["estimated_accuracy"] == pytest.approx(expected)
    assert "left out of the accuracy estimate" in result.summary


def test_checks_skip_without_traffic(workspace: Path) -> None:
    inputs = inputs_for(workspace)
    for check in (
        InvariantCheck(),
        SkewCheck(),
        StabilityCheck(),
        PerformanceCheck(),
        QualityCheck(),
    ):
        assert check.run(inputs).status == "skipped"


def test_lookback_leaves_out_old_traffic(workspace: Path) -> None:
    log_traffic(workspace, make_log(start=NOW - timedelta(days=30), latency_ms=500.0))
    log_traffic(workspace, make_log(seed=5))
    inputs = inputs_for(workspace)
    assert len(inputs.traffic()) == 400


def test_quality_check_matches_integer_classes_to_their_training_profile(
    workspace: Path,
) -> None:
    as_int = {"a": 1, "b": 0}
    log = make_log().rename(columns={"proba_a": "proba_1", "proba_b": "proba_0"})
    log["prediction"] = log["prediction"].map(as_int)
    log_traffic(workspace, log)
    record_feedback(
        workspace,
        [
            {"request_id": r, "label": as_int[y]}
            for r, y in zip(log["request_id"], log.attrs["truth"], strict=True)
        ],
    )
    train, valid = training_frame(), training_frame(300, seed=7)
    train["y"], valid["y"] = train["y"].map(as_int), valid["y"].map(as_int)
    result = QualityCheck().run(
        inputs_for(
            workspace,
            classes=["0", "1"],
            profile=profile_frame(train),  # profiles a whole-number label as "1.0", "0.0"
            valid=valid,
            valid_pred=np.vectorize(as_int.get)(predict(valid)[0]),
        )
    )
    assert "drift:label" not in keys(result)
    assert result.details["label_shift"]["distance"] < 0.1
    assert set(result.details["label_shift"]["reference"]) == {"0", "1"}
