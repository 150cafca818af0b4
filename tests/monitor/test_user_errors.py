"""User errors of ``readyml monitor`` and ``readyml feedback``: one line naming what was wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from readyml.cli.monitor import app
from readyml.config import Project
from readyml.errors import DataError
from readyml.monitor import Alert, DeliveryError, WebhookSink, record_feedback
from readyml.monitor.alerts import deliver
from readyml.monitor.checks import QualityCheck
from readyml.train import SilentReporter, open_project_registry, run_project
from support import IRIS_SPEC, iris_frame, write_project

from .helpers import NOW, inputs_for, log_traffic, make_log

CLASSES = "setosa, versicolor, virginica"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """An iris project trained, promoted, and 90 of its rows served (logged)."""
    from readyml.monitor import replay_offline

    root = write_project(tmp_path_factory.mktemp("iris"))
    project = Project.load(root)
    registry = open_project_registry(project)
    result = run_project(project, registry=registry, reporter=SilentReporter())
    assert result.error is None
    registry.promote("iris:1", who="test", reason="test")
    rows = iris_frame().sample(90, random_state=0).reset_index(drop=True)
    log = replay_offline(project, registry, rows)
    log["truth"] = rows["species"]
    return root, log


@contextmanager
def monitoring(root: Path, section: dict[str, Any]) -> Iterator[None]:
    """The project's spec with this ``monitoring`` section, restored afterwards."""
    path = root / "readyml.yaml"
    path.write_text(yaml.safe_dump({**IRIS_SPEC, "monitoring": section}), encoding="utf-8")
    try:
        yield
    finally:
        path.write_text(yaml.safe_dump(IRIS_SPEC), encoding="utf-8")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def one_error_line(stderr: str) -> str:
    """The only line on stderr, an ``error:`` line (no traceback)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# -- feedback ------------------------------------------------------------------------------


def test_feedback_rejects_labels_not_among_the_classes_and_exits_1(
    served: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    root, log = served
    ids = log["request_id"].tolist()
    csv = tmp_path / "labels.csv"
    pd.DataFrame(
        {"request_id": ids[:4], "label": ["setosa", "merlot", "virginica", "Setosa"]}
    ).to_csv(csv, index=False)
    code, out, _ = invoke("feedback", str(csv), "-p", str(root), "--format", "json")
    assert code == 1, out
    data = json.loads(out)
    assert (data["new"], data["rejected"]) == (2, 2)
    assert data["errors"] == [
        f"row 2: label: expected one of {CLASSES}, found 'merlot'",
        f"row 4: label: expected one of {CLASSES}, found 'Setosa'",
    ]
    code, _, err = invoke("feedback", str(csv), "-p", str(root))
    assert code == 1
    assert f"rejected row 2: label: expected one of {CLASSES}, found 'merlot'" in err


def test_feedback_with_only_good_records_exits_0(
    served: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    root, log = served
    jsonl = tmp_path / "labels.jsonl"
    jsonl.write_text(
        "\n".join(
            json.dumps({"request_id": r, "label": y})
            for r, y in zip(log["request_id"][10:13], log["truth"][10:13], strict=True)
        )
    )
    code, out, _ = invoke("feedback", str(jsonl), "-p", str(root), "--format", "json")
    assert code == 0, out
    assert json.loads(out)["new"] == 3
    # The same file again: every row repeats the label in effect, and the text says so.
    code, out, _ = invoke("feedback", str(jsonl), "-p", str(root))
    assert code == 0, out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "received 3 (= new + relabelled + duplicates + rejected)" in lines
    assert "new 0 (the first label of their id)" in lines
    assert "duplicates 3 (the label already in effect; ignored)" in lines


def test_record_feedback_numbers_rows_from_1_and_checks_numbers(workspace: Path) -> None:
    result = record_feedback(
        workspace,
        [{"request_id": "r1", "label": 1.0}, {"request_id": "r2", "label": "x"}, {"label": 1}],
        classes=["0", "1"],
    )
    assert result.new == 1  # 1.0 is the class 1
    assert result.errors == [
        "row 2: label: expected one of 0, 1, found 'x'",
        "row 3: request_id: expected a non-empty string, found null",
    ]
    numbers = record_feedback(
        workspace,
        [{"request_id": "r3", "label": "2.5"}, {"request_id": "r4", "label": "?"}],
        numeric=True,
    )
    assert numbers.errors == ["row 2: label: expected a number, found '?'"]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "feedback file empty.csv: expected records with request_id and label"),
        ("broken.parquet", b"not parquet", "feedback file broken.parquet: expected Parquet"),
        ("broken.jsonl", b"\xff\xfe", "broken.jsonl: expected UTF-8 JSON lines"),
    ],
)
def test_feedback_on_an_unreadable_file_is_one_line_and_exit_2(
    served: tuple[Path, pd.DataFrame], tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    root, _ = served
    path = tmp_path / name
    path.write_bytes(content)
    code, _, err = invoke("feedback", str(path), "-p", str(root))
    assert code == 2
    assert expected in one_error_line(err)


# -- monitor: labels already stored --------------------------------------------------------


@pytest.mark.parametrize("metric", ["balanced_accuracy", "f1_macro", "roc_auc", "log_loss"])
def test_monitor_leaves_out_stored_labels_not_among_the_classes(
    served: tuple[Path, pd.DataFrame], metric: str
) -> None:
    root, log = served
    labels = log["truth"].tolist()
    labels[5] = "merlot"
    record_feedback(
        root / ".readyml",
        [{"request_id": r, "label": y} for r, y in zip(log["request_id"], labels, strict=True)],
    )  # no classes given: the label is stored as a server's endpoint would
    with monitoring(root, {"quality": {"metric": metric, "min_labels": 10}}):
        code, out, err = invoke("monitor", "-p", str(root), "--format", "json")
    assert code in (0, 1), err
    quality = next(c for c in json.loads(out)["checks"] if c["check"] == "quality")
    assert quality["details"]["unknown_labels"] == {"rows": 1, "values": ["merlot"]}
    assert quality["details"]["labelled"] == len(log) - 1
    assert isinstance(quality["details"]["measured"], float)
    assert "1 labelled row(s) left out" in quality["summary"]


# -- monitor: configuration checked at start -----------------------------------------------


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            {"alerts": {"webhook_url": "not-a-url"}},
            "monitoring.alerts.webhook_url: expected an http(s) URL, found 'not-a-url'",
        ),
        (
            {"alerts": {"alertmanager_url": "ftp://host"}},
            "monitoring.alerts.alertmanager_url: expected an http(s) URL, found 'ftp://host'",
        ),
        (
            {"alerts": {"alertmanager_url": "htp://admin:s3cretPW@host:9093"}},
            "monitoring.alerts.alertmanager_url: expected an http(s) URL, "
            "found 'htp://admin:***@host:9093'",
        ),
        (
            {"skew": {"offline_features": "nomod:nofn"}},
            "monitoring.skew.offline_features: expected an importable module:function, "
            "found 'nomod:nofn'",
        ),
        (
            {"skew": {"offline_features": "data/nosuch.parquet"}},
            "monitoring.skew.offline_features: data file",
        ),
        (
            {"skew": {"drift_method": "magic"}},
            "monitoring.skew.drift_method: expected auto or one of ks,",
        ),
        (
            {"skew": {"drift_thresholds": {"magic": 0.1}}},
            "monitoring.skew.drift_thresholds: expected keys among ks,",
        ),
        (
            {"quality": {"metric": "nosuchmetric"}},
            "monitoring.quality.metric: expected a classification metric among accuracy,",
        ),
        (
            {"quality": {"slice_columns": ["nosuchcol"]}},
            "monitoring.quality.slice_columns: expected input features of iris:1",
        ),
        (
            {"quality": {"max_drop": 2}},
            "monitoring.quality.max_drop: expected a drop of accuracy between 0 and 1, found 2",
        ),
        (
            {"skew": {"drift_thresholds": {"ks": -1}}},
            "monitoring.skew.drift_thresholds.ks: expected a p-value level between 0 and 1, "
            "found -1",
        ),
        (
            {"skew": {"drift_thresholds": {"jensenshannon": 0}}},
            "monitoring.skew.drift_thresholds.jensenshannon: expected a distance above 0, found 0",
        ),
        (
            {"performance": {"rule_for": "banana"}},
            "monitoring.performance.rule_for: expected a duration such as 90s, 5m, 1h, 7d",
        ),
        (
            {"performance": {"rule_for": "1.5h"}},
            "monitoring.performance.rule_for: expected a duration such as 90s, 5m, 1h, 7d, "
            "found '1.5h' (whole numbers",
        ),
        (
            {"staleness": {"max_stage_age": {"trian": "1d"}}},
            "monitoring.staleness.max_stage_age: expected pipeline steps among ['load', ",
        ),
    ],
)
def test_a_wrong_monitoring_value_is_one_line_naming_its_key_before_any_work(
    served: tuple[Path, pd.DataFrame], tmp_path: Path, section: dict[str, Any], expected: str
) -> None:
    root, _ = served
    rules = tmp_path / "rules.yml"
    with monitoring(root, section):
        code, out, err = invoke("monitor", "-p", str(root), "--prometheus-rules", str(rules))
    assert code == 2, out
    line = one_error_line(err)
    assert expected in line, line
    assert not rules.exists()  # nothing was done


def test_prometheus_rules_into_a_folder_is_one_line(
    served: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    root, _ = served
    code, _, err = invoke("monitor", "-p", str(root), "--prometheus-rules", str(tmp_path))
    assert code == 2
    assert "--prometheus-rules: expected a file name, found a folder" in one_error_line(err)


def test_offline_features_function_missing_from_its_module(
    served: tuple[Path, pd.DataFrame],
) -> None:
    root, _ = served
    (root / "offline.py").write_text("def features(frame):\n    return frame\n")
    with monitoring(root, {"skew": {"offline_features": "offline:nothing"}}):
        code, _, err = invoke("monitor", "-p", str(root))
    assert code == 2
    assert one_error_line(err) == (
        "error: monitoring.skew.offline_features: expected a function 'nothing' in module "
        "'offline', found nothing"
    )


def test_an_error_in_the_offline_function_is_one_line_and_exit_2(
    served: tuple[Path, pd.DataFrame],
) -> None:
    root, _ = served
    (root / "offline_raises.py").write_text("def features(rows):\n    return 1 / 0\n")
    section = {"skew": {"offline_features": "offline_raises:features"}, "alerts": {"log": False}}
    with monitoring(root, section):
        code, out, err = invoke("monitor", "-p", str(root))
    assert code == 2, out
    assert one_error_line(err) == (
        "error: check skew: monitoring.skew.offline_features: expected offline_raises:features "
        "to recompute the logged rows' features, found ZeroDivisionError at "
        "offline_raises.py:2: division by zero"
    )


def flaky_runs(monkeypatch: pytest.MonkeyPatch, failing: set[int]) -> list[float | None]:
    """``run_monitor`` failing at the runs numbered in ``failing`` (from 1); returns the
    ``period_s`` each run was given."""
    import readyml.monitor

    real = readyml.monitor.run_monitor
    periods: list[float | None] = []

    def run(*args: Any, **kwargs: Any) -> Any:
        periods.append(kwargs.get("period_s"))
        if len(periods) in failing:
            raise DataError("request log query failed: a broken file")
        return real(*args, **kwargs)

    monkeypatch.setattr(readyml.monitor, "run_monitor", run)
    return periods


def test_a_failed_run_of_a_repeating_monitor_is_one_line_and_the_loop_goes_on(
    served: tuple[Path, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = served
    periods = flaky_runs(monkeypatch, failing={1})
    with monitoring(root, {"alerts": {"log": False}}):
        code, out, err = invoke(
            "monitor", "-p", str(root), "--every", "10ms", "--count", "3", "--format", "json"
        )
    assert code in (0, 1), err  # the last run's: it did not fail
    assert (
        one_error_line(err)
        == "error: monitoring run failed: request log query failed: a broken file"
    )
    assert len(out.splitlines()) == 2
    assert periods == [0.01, 0.01, 0.01]  # Alertmanager's endsAt follows --every


def test_a_repeating_monitor_exits_2_when_its_last_run_failed(
    served: tuple[Path, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = served
    flaky_runs(monkeypatch, failing={2})
    with monitoring(root, {"alerts": {"log": False}}):
        code, out, err = invoke(
            "monitor", "-p", str(root), "--every", "10ms", "--count", "2", "--format", "json"
        )
    assert code == 2, err
    assert len(out.splitlines()) == 1


def test_a_generous_max_drop_is_fine_for_an_unbounded_metric(
    served: tuple[Path, pd.DataFrame],
) -> None:
    root, _ = served
    with monitoring(root, {"quality": {"metric": "log_loss", "max_drop": 2}}):
        code, _, err = invoke("monitor", "-p", str(root), "--format", "json")
    assert code in (0, 1), err


@pytest.mark.parametrize("count", ["0", "-2"])
def test_count_below_1_is_one_line_and_exit_2(
    served: tuple[Path, pd.DataFrame], count: str
) -> None:
    root, _ = served
    code, _, err = invoke("monitor", "-p", str(root), "--every", "1s", "--count", count)
    assert code == 2
    assert one_error_line(err) == (
        f"error: --count: expected a number of runs of at least 1, found {count}"
    )


def test_repeated_json_runs_print_json_lines(served: tuple[Path, pd.DataFrame]) -> None:
    root, _ = served
    code, out, _ = invoke(
        "monitor", "-p", str(root), "--every", "1s", "--count", "2", "--format", "json"
    )
    assert code in (0, 1)
    runs = [json.loads(line) for line in out.splitlines()]
    assert len(runs) == 2 and all(run["checks"] for run in runs)


def test_a_malformed_sink_url_is_a_failed_delivery_not_a_crash() -> None:
    alert = Alert(
        labels={"alertname": "readyml_skew"}, annotations={}, status="firing", starts_at=NOW
    )
    sink = WebhookSink(url="not-a-url", retries=3, sleep=lambda _: None)
    with pytest.raises(DeliveryError, match="invalid URL"):
        sink.send([alert])
    assert sink.attempts_ == 1  # retrying cannot mend a URL
    outcomes = deliver([WebhookSink(url="not-a-url")], [alert])
    assert outcomes[0]["delivered"] is False


def test_quality_check_counts_stray_labels_in_its_details(workspace: Path) -> None:
    log = log_traffic(workspace, make_log(n=60))
    labels = list(log.attrs["truth"])
    labels[0] = "zebra"
    record_feedback(
        workspace,
        [{"request_id": r, "label": y} for r, y in zip(log["request_id"], labels, strict=True)],
    )
    result = QualityCheck(metric="f1_macro", min_labels=10).run(inputs_for(workspace))
    assert result.details["unknown_labels"] == {"rows": 1, "values": ["zebra"]}
    assert result.details["labelled"] == 59


def test_a_broken_request_log_file_is_one_line(tmp_path: Path) -> None:
    from readyml.errors import DataError
    from readyml.monitor.inputs import query

    broken = tmp_path / "part-1.parquet"
    broken.write_bytes(b"")
    with pytest.raises(DataError) as info:
        query("select * from read_parquet(?)", [str(broken)])
    assert str(info.value).startswith("request log query failed: ")
    assert "\n" not in str(info.value)


def test_a_damaged_staleness_row_is_skipped_and_other_projects_rows_ignored(
    served: tuple[Path, pd.DataFrame],
) -> None:
    import dataclasses

    from sqlalchemy import text

    from readyml.monitor.inputs import load_reference
    from readyml.types import Evidence

    root, _ = served
    project = Project.load(root)
    registry = open_project_registry(project)
    # Without a staleness curve of its own, the version's limit comes from model-4 evidence.
    served_version = registry.get("iris@champion")
    metrics = {k: v for k, v in (served_version.metrics or {}).items() if k != "staleness"}
    version = dataclasses.replace(served_version, metrics=metrics)

    def staleness(project_name: str, days: float) -> int:
        return registry.add_evidence(
            Evidence(
                test_id="model-4",
                passed=True,
                automated=True,
                project=project_name,
                details={"retrain_every_days": days},
            )
        )

    staleness(project.spec.name, 5.0)
    damaged = staleness(project.spec.name, 9.0)
    with registry.store.engine.begin() as connection:
        connection.execute(
            text("UPDATE evidence SET details = '{oops' WHERE id = :id"), {"id": damaged}
        )
    staleness("another-project", 1.0)
    reference = load_reference(project, registry, version)
    assert reference.retrain_every_days == 5.0
