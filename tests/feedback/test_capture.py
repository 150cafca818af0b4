"""``readyml capture``: each reason selects its rows, within budget and window, never twice."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.helpers import NOW, make_log, make_reference, predict, training_frame
from readyml.cli import app as readyml_app
from readyml.config import Project, SliceSpec
from readyml.errors import ConfigError, DataError
from readyml.feedback.capture import Capture, CaptureResult, capture
from readyml.feedback.review_import import import_review
from readyml.feedback.review_sets import (
    LEAD_COLUMNS,
    REASONS,
    TAIL_COLUMNS,
    captured_ids,
    read_examples,
    review_root,
)
from readyml.monitor import read_traffic, record_feedback, replay_offline, write_log
from readyml.monitor.inputs import Reference
from readyml.registry import Registry
from readyml.train import SilentReporter, open_project_registry, run_project
from readyml.train.production_data import blend_production
from support import iris_frame, write_project

FEATURES = ["x1", "x2", "city"]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty ``.readyml`` folder inside a project folder."""
    path = tmp_path / ".readyml"
    path.mkdir()
    return path


def only(**budget: int) -> dict[str, int]:
    """A budget giving nothing to the reasons not named."""
    return {**dict.fromkeys(REASONS, 0), **budget}


def run(
    workspace: Path, budget: dict[str, int], reference: Reference | None = None, **params: Any
) -> CaptureResult:
    """Capture with ``budget`` (seed 3) from the log of ``workspace``."""
    capture = Capture(budget=budget, seed=3, **params)
    return capture.run(workspace, reference or make_reference(), now=NOW)


def examples(workspace: Path, result: CaptureResult) -> pd.DataFrame:
    assert result.set_id is not None
    return read_examples(workspace, result.set_id)


def relog(log: pd.DataFrame) -> pd.DataFrame:
    """Recompute predictions and probabilities after features were edited."""
    labels, proba = predict(log)
    return log.assign(prediction=labels, proba_a=proba[:, 0], proba_b=proba[:, 1])


def ids(log: pd.DataFrame, rows: Iterable[int]) -> set[str]:
    """The example ids of single-row requests ``rows`` of ``log``."""
    return {f"{r}:0" for r in log["request_id"].iloc[list(rows)]}


def test_mispredictions_are_labelled_rows_the_model_got_wrong_most_confident_first(
    workspace: Path,
) -> None:
    log = make_log(n=60)
    write_log(workspace, log)
    flip = {"a": "b", "b": "a"}
    records = [
        {"request_id": r, "label": flip[p]} for r, p in log[["request_id", "prediction"]].values[:8]
    ]
    records += [
        {"request_id": r, "label": p} for r, p in log[["request_id", "prediction"]].values[8:20]
    ]
    record_feedback(workspace, records, now=NOW)
    result = run(workspace, only(misprediction=50))
    got = examples(workspace, result)
    assert set(got["example_id"]) == ids(log, range(8))
    assert (got["reason"] == "misprediction").all() and result.counts["misprediction"] == 8
    assert got["confidence"].is_monotonic_decreasing
    assert got["detail"].str.contains(r"predicted '\w' \(p=[01]\.\d\d\), labelled '\w'").all()


def test_regression_mispredictions_exceed_the_validation_error_scale(workspace: Path) -> None:
    log = make_log(n=40).drop(columns=["proba_a", "proba_b"])
    log["prediction"] = log["x1"] + log["x2"]
    write_log(workspace, log)
    errors = [5.0, 0.3, 2.0, 0.01, 0.02]  # validation p95 of |error| is about 0.2
    record_feedback(
        workspace,
        [
            {"request_id": r, "label": str(p + e)}
            for r, p, e in zip(log["request_id"], log["prediction"], errors, strict=False)
        ],
        now=NOW,
    )
    valid = training_frame(300, seed=7)
    noise = np.random.default_rng(0).normal(0.0, 0.1, len(valid))
    valid["y"] = valid["x1"] + valid["x2"] + noise
    reference = make_reference(
        task="regression",
        classes=None,
        valid=valid,
        valid_pred=(valid["x1"] + valid["x2"]).to_numpy(),
    )
    result = run(workspace, only(misprediction=50, low_confidence=50), reference)
    got = examples(workspace, result)
    assert got["example_id"].tolist() == [f"{log['request_id'][i]}:0" for i in (0, 2, 1)]
    assert got["confidence"].isna().all()
    assert "validation p95" in got["detail"][0]
    assert any("regression" in note for note in result.notes)


def test_low_confidence_takes_the_least_confident_rows_up_to_the_budget(workspace: Path) -> None:
    log = make_log(n=200)
    write_log(workspace, log)
    result = run(workspace, only(low_confidence=5), confidence_below=0.6)
    top = log[["proba_a", "proba_b"]].max(axis=1)
    uncertain = top[top < 0.6].sort_values()
    assert result.matched["low_confidence"] == len(uncertain) > 5  # the budget caps it
    got = examples(workspace, result)
    assert set(got["example_id"]) == ids(log, uncertain.index[:5])
    assert got["confidence"].tolist() == pytest.approx(uncertain.iloc[:5].tolist(), abs=1e-6)
    assert got["detail"].str.match(r"p\(max\)=0\.\d\d < 0\.6").all()


def test_drift_selects_rows_outside_the_training_mass_of_drifted_features(workspace: Path) -> None:
    log = make_log(n=200, shift=2.5)  # x1 drifts; x2 and city do not
    write_log(workspace, log)
    reference = make_reference()
    result = run(workspace, only(drift=500), reference)
    assert reference.profile is not None
    low, high = reference.profile.columns["x1"].quantiles([0.01, 0.99]) or [0.0, 0.0]
    outside = np.flatnonzero((log["x1"] < low) | (log["x1"] > high))
    assert 0 < len(outside) < len(log)
    got = examples(workspace, result)
    assert set(got["example_id"]) == ids(log, outside)
    assert got["detail"].str.contains(r"x1=[\d.]+ outside reference \[.+\]; drifted: x1 \(").all()
    assert "x2" not in " ".join(got["detail"])


def test_rare_slices_cover_rare_feature_values_and_declared_slices(workspace: Path) -> None:
    log = make_log(n=200)
    log.loc[[3, 4], "city"] = "paris"  # never seen in training
    log.loc[[10, 11, 12], "x2"] = 3.0  # in the declared slice 'far', rare in validation
    log = relog(log)
    write_log(workspace, log)
    slices = [SliceSpec(name="far", column="x2", min=2.5)]
    reference = make_reference()
    assert reference.valid is not None and (reference.valid["x2"] >= 2.5).mean() < 0.02
    result = run(workspace, only(rare_slice=50), reference, slices=slices)
    got = examples(workspace, result)
    expected = np.flatnonzero((log["x2"] >= 2.5) | (log["city"] == "paris"))
    assert set(got["example_id"]) == ids(log, expected)
    assert set(got["example_id"][:2]) == ids(log, [3, 4])  # unseen: the rarest, first
    assert got["detail"][0].startswith("city=paris (training share 0.000)")
    assert got["detail"].str.contains("slice far").sum() >= 3


def test_schema_violations_are_served_rows_outside_the_checked_in_schema(workspace: Path) -> None:
    log = make_log(n=100)
    log.loc[5, "x1"] = 50.0
    log.loc[5, "city"] = "paris"
    log.loc[7, "x2"] = np.nan
    log.loc[9, "x1"] = -12.0
    log = relog(log)
    write_log(workspace, log)
    result = run(workspace, only(schema_violation=50))
    got = examples(workspace, result).set_index("example_id")
    assert got.index.tolist()[0] == f"{log['request_id'][5]}:0"  # two violations: first
    assert set(got.index) == ids(log, [5, 7, 9])
    assert str(got.loc[f"{log['request_id'][5]}:0", "detail"]).startswith(
        "x1=50 outside schema [-10, 10]; city=paris not a schema category"
    )
    assert got.loc[f"{log['request_id'][7]}:0", "detail"] == "x2 is null (nullable: false)"


def test_an_example_matching_several_reasons_is_taken_once_under_the_first(workspace: Path) -> None:
    log = make_log(n=100)
    log.loc[0, ["x1", "x2"]] = [0.01, 0.0]  # p(max) about 0.51
    log.loc[0, "city"] = "paris"
    log = relog(log)
    write_log(workspace, log)
    wrong = {"a": "b", "b": "a"}[log["prediction"][0]]
    record_feedback(workspace, [{"request_id": log["request_id"][0], "label": wrong}], now=NOW)
    result = run(workspace, dict.fromkeys(REASONS, 50))
    got = examples(workspace, result)
    first = got[got["example_id"] == f"{log['request_id'][0]}:0"]
    assert len(first) == 1 and first["reason"].item() == "misprediction"
    detail, also = first["detail"].item().split("; also ")
    assert detail.startswith("predicted") and "misprediction" not in also
    assert {"low_confidence", "rare_slice", "schema_violation"} <= set(also.split(", "))
    assert got["example_id"].is_unique
    assert result.counts["random"] == 50 and result.total == len(got)


def test_random_control_sample_is_seeded_and_disjoint_from_targeted_rows(
    tmp_path: Path,
) -> None:
    log = make_log(n=150)
    picks = []
    for name in ("one", "two"):
        workspace = tmp_path / name / ".readyml"
        workspace.mkdir(parents=True)
        write_log(workspace, log)
        result = run(workspace, {**only(random=10), "low_confidence": 50})
        got = examples(workspace, result)
        random = got[got["reason"] == "random"]
        assert (
            len(random) == 10 and result.matched["random"] == 150 - result.counts["low_confidence"]
        )
        assert not set(random["example_id"]) & set(got[got["reason"] != "random"]["example_id"])
        assert random["detail"].str.startswith("uniform sample of").all()
        picks.append(set(random["example_id"]))
    assert picks[0] == picks[1]


def test_a_second_capture_never_selects_an_example_again(workspace: Path) -> None:
    log = make_log(n=30)
    write_log(workspace, log)
    first = run(workspace, {**only(random=12), "low_confidence": 3})
    second = run(workspace, {**only(random=12), "low_confidence": 3})
    a, b = examples(workspace, first), examples(workspace, second)
    assert not set(a["example_id"]) & set(b["example_id"])
    assert second.already_captured == first.total == 15
    assert len(captured_ids(workspace)) == first.total + second.total
    rest = run(workspace, only(random=50))
    assert rest.total == 30 - first.total - second.total
    third = run(workspace, only(random=50))
    assert third.total == 0 and third.path is None and third.set_id is None
    assert "earlier review set" in third.notes[-1]


def test_a_labelled_example_is_not_captured_again_after_its_review_set_is_deleted(
    workspace: Path,
) -> None:
    write_log(workspace, make_log(n=30))
    first = run(workspace, only(random=10))
    assert first.set_id is not None
    filled = examples(workspace, first).assign(label="a")
    filled.to_csv(workspace / "filled.csv", index=False)
    assert import_review(workspace, workspace / "filled.csv", label="y").kept == 10
    shutil.rmtree(review_root(workspace) / first.set_id)

    second = run(workspace, only(random=50))

    assert second.already_captured == 10 and second.total == 20
    assert not set(examples(workspace, second)["example_id"]) & set(filled["example_id"])


def test_the_time_window_leaves_out_rows_outside_it(workspace: Path) -> None:
    old = make_log(n=40, start=NOW - timedelta(hours=6))
    new = make_log(n=40, seed=2, start=NOW - timedelta(hours=2))
    old.attrs, new.attrs = {}, {}
    write_log(workspace, pd.concat([old, new], ignore_index=True))
    since, until = NOW - timedelta(hours=3), NOW - timedelta(minutes=90)
    result = Capture(budget=only(random=100)).run(
        workspace, make_reference(), since=since, until=until, now=NOW
    )
    inside = new[(new["ts"] >= since) & (new["ts"] < until)]
    assert result.rows_scanned == len(inside) == result.counts["random"]
    got = examples(workspace, result)
    assert set(got["example_id"]) == {f"{r}:0" for r in inside["request_id"]}
    manifest = json.loads((result.path / "manifest.json").read_text())  # type: ignore[operator]
    assert (manifest["since"], manifest["until"]) == (since.isoformat(), until.isoformat())


def test_an_empty_window_selects_nothing_and_no_log_is_a_data_error(workspace: Path) -> None:
    with pytest.raises(DataError, match="request log of model 'm'"):
        run(workspace, only(random=5))
    write_log(workspace, make_log(n=10))
    result = Capture().run(workspace, make_reference(), since=NOW + timedelta(hours=1), now=NOW)
    assert (result.total, result.rows_scanned, result.path) == (0, 0, None)
    assert result.notes == ["no logged rows in the window"]
    assert not (workspace / "review").exists()


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({"drfit": 3}, "expected a reason among misprediction, .* found 'drfit'"),
        ({"random": -1}, "random: expected a whole number >= 0, found -1"),
    ],
)
def test_a_bad_budget_is_a_config_error(
    workspace: Path, budget: dict[str, int], message: str
) -> None:
    write_log(workspace, make_log(n=10))
    with pytest.raises(ConfigError, match=message):
        run(workspace, budget)


def test_rows_of_one_request_get_their_position_in_it(workspace: Path) -> None:
    log = make_log(n=7)
    log["request_id"] = ["r1"] * 3 + ["r2"] * 4
    log["ts"] = log["ts"].iloc[0]
    write_log(workspace, log)
    traffic = read_traffic(workspace, "m", with_row=True)
    assert sorted(zip(traffic["request_id"], traffic["row"], strict=True)) == [
        ("r1", 0),
        ("r1", 1),
        ("r1", 2),
        ("r2", 0),
        ("r2", 1),
        ("r2", 2),
        ("r2", 3),
    ]
    assert "row" not in read_traffic(workspace, "m").columns
    result = run(workspace, only(random=7))
    assert set(examples(workspace, result)["example_id"]) == {
        "r1:0",
        "r1:1",
        "r1:2",
        "r2:0",
        "r2:1",
        "r2:2",
        "r2:3",
    }


def test_the_review_set_files_hold_the_examples_and_the_manifest(workspace: Path) -> None:
    log = make_log(n=50)
    write_log(workspace, log)
    result = run(workspace, {**only(random=4), "low_confidence": 2})
    assert result.path is not None and result.path.name == result.set_id
    csv = pd.read_csv(result.path / "examples.csv")
    assert list(csv.columns) == [*LEAD_COLUMNS, *FEATURES, *TAIL_COLUMNS]
    assert len(csv) == 6 and csv["label"].isna().all()
    jsonl = [json.loads(line) for line in (result.path / "examples.jsonl").read_text().splitlines()]
    assert [row["example_id"] for row in jsonl] == csv["example_id"].tolist()
    first = jsonl[0]
    row = log.set_index("request_id").loc[first["request_id"]]
    assert (first["model"], first["version"], first["label"]) == ("m", 1, None)
    assert first["x1"] == pytest.approx(row["x1"]) and first["prediction"] == row["prediction"]
    assert pd.Timestamp(first["ts"]) == row["ts"]
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["counts"] == {**dict.fromkeys(REASONS, 0), "low_confidence": 2, "random": 4}
    assert manifest["features"] == FEATURES and manifest["classes"] == ["a", "b"]
    assert manifest["details"]["rows_scanned"] == 50 and manifest["details"]["seed"] == 3
    readme = (result.path / "README.md").read_text()
    assert "- low_confidence: 2" in readme and "readyml review import" in readme


# -- through a trained project and the command line ------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Registry, pd.DataFrame]:
    """The iris project trained and promoted, 60 of its rows replayed as traffic."""
    project = Project.load(write_project(tmp_path_factory.mktemp("iris")))
    registry = open_project_registry(project)
    result = run_project(project, registry=registry, reporter=SilentReporter())
    assert result.error is None
    registry.promote("iris:1", who="test", reason="test")
    log = replay_offline(project, registry, iris_frame().sample(60, random_state=0))
    return project, registry, log


def test_capture_reads_the_champion_reference_of_a_project(
    served: tuple[Project, Registry, pd.DataFrame],
) -> None:
    project, registry, log = served
    result = capture(project, registry, budget=only(random=5, low_confidence=5), seed=1)
    assert (result.model, result.reference_version, result.rows_scanned) == ("iris", 1, len(log))
    assert result.counts["random"] == 5 and result.path is not None
    with pytest.raises(ConfigError, match="capture budget"):
        capture(project, registry, budget={"everything": 1})


def test_cli_capture_writes_a_set_and_reports_bad_options_on_one_line(
    served: tuple[Project, Registry, pd.DataFrame],
) -> None:
    project, _, _ = served
    root = str(project.root)
    runner = CliRunner()
    cli = readyml_app
    result = runner.invoke(
        cli, ["capture", "-p", root, "--budget", "random=3", "--last", "30d", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["counts"]["random"] == 3 and Path(data["path"]).exists()
    result = runner.invoke(cli, ["capture", "-p", root, "--budget", "random=2"])
    assert result.exit_code == 0, result.output
    assert "random" in result.stdout and "wrote" in result.stdout
    for bad in (["--budget", "drift"], ["--budget", "drfit=2"], ["--budget", "random=-1"]):
        result = runner.invoke(cli, ["capture", "-p", root, *bad])
        assert result.exit_code == 2
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "budget" in lines[0]


def test_cli_rare_share_option_is_used_and_checked(
    served: tuple[Project, Registry, pd.DataFrame],
) -> None:
    project, _, _ = served
    base = ["capture", "-p", str(project.root), "--budget", "random=1", "--format", "json"]
    runner = CliRunner()
    result = runner.invoke(readyml_app, [*base, "--rare-share", "0.5"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((Path(json.loads(result.stdout)["path"]) / "manifest.json").read_text())
    assert manifest["details"]["rare_share"] == 0.5
    result = runner.invoke(readyml_app, [*base, "--rare-share", "1.5"])
    assert result.exit_code == 2
    assert "capture rare_share: expected a share in [0, 1], found 1.5" in result.stderr


# -- column names, failed writes, damaged sets --------------------------------------------------

CLASHING = {"x1": "reason", "x2": "confidence", "city": "review_set"}


def test_features_named_like_the_loops_columns_keep_their_values_to_training(
    workspace: Path,
) -> None:
    log = make_log(n=30).rename(columns=CLASHING)
    write_log(workspace, log)
    features = list(CLASHING.values())
    reference = make_reference(features=features, dtypes={n: "float64" for n in features})
    result = run(workspace, only(random=5), reference)
    assert result.path is not None
    csv = pd.read_csv(result.path / "examples.csv")
    renamed = ["feature:reason", "feature:confidence", "feature:review_set"]
    assert list(csv.columns) == [*LEAD_COLUMNS, *renamed, *TAIL_COLUMNS]
    assert (csv["reason"] == "random").all()
    served = log.set_index("request_id").loc[csv["request_id"]]
    assert csv["feature:reason"].tolist() == pytest.approx(served["reason"].tolist())
    assert (
        "| feature:reason | the feature `reason` (renamed"
        in (result.path / "README.md").read_text()
    )

    csv.assign(label="a").to_csv(workspace / "filled.csv", index=False)
    source = training_frame(20).rename(columns=CLASHING)
    source.to_csv(workspace.parent / "train.csv", index=False)
    spec = {
        "name": "m",
        "data": {"source": "train.csv", "production": {"weight": 1.0}},
        "label": "y",
        "model": {"flavor": "sklearn", "estimator": "sklearn.linear_model.LogisticRegression"},
    }
    (workspace.parent / "readyml.yaml").write_text(json.dumps(spec))
    project = Project.load(workspace.parent)
    assert import_review(workspace, workspace / "filled.csv", label="y").kept == 5
    blended, _ = blend_production(source, project)
    added = blended.iloc[len(source) :].reset_index(drop=True)
    assert added["reason"].tolist() == pytest.approx(served["reason"].tolist())
    assert added["review_set"].tolist() == served["review_set"].tolist()
    assert added["y"].tolist() == ["a"] * 5


def test_a_failed_write_leaves_no_partial_folder(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_log(workspace, make_log(n=30))

    def full(*_: object, **__: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_json", full)
    with pytest.raises(OSError, match="No space left"):
        run(workspace, only(random=5))
    assert list(review_root(workspace).iterdir()) == []
    monkeypatch.undo()
    first = run(workspace, only(random=5))
    filled = examples(workspace, first).assign(label="a")
    filled.to_csv(workspace / "filled.csv", index=False)
    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    with pytest.raises(OSError, match="No space left"):
        import_review(workspace, workspace / "filled.csv", label="y")
    assert list((workspace / "production").iterdir()) == []


def test_a_malformed_line_in_a_sets_examples_does_not_block_the_next_capture(
    workspace: Path,
) -> None:
    write_log(workspace, make_log(n=30))
    first = run(workspace, only(random=10))
    assert first.path is not None
    (first.path / "examples.jsonl").write_text('{"example_id": "x", "label": \n')
    second = run(workspace, only(random=50))
    assert second.total == 20 and second.already_captured == 10


def test_a_set_whose_captured_copy_is_gone_does_not_block_the_next_capture(
    workspace: Path,
) -> None:
    write_log(workspace, make_log(n=30))
    first = run(workspace, only(random=10))
    assert first.path is not None
    (first.path / "captured.parquet").unlink()
    second = run(workspace, only(random=50))  # that set's examples count as not captured
    assert second.total == 30 and second.already_captured == 0
