"""The demo's feedback loop on iris, and ``readyml demo`` itself end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from readyml.config import Project
from readyml.demo import run_demo
from readyml.feedback.demo import feedback_demo
from readyml.monitor import replay_offline
from readyml.score import score_project
from readyml.train import open_project_registry, run_project
from readyml.train.progress import SilentReporter
from support import iris_frame

from .test_retrain import alert, trained


def test_feedback_demo_captures_labels_retrains_and_canaries(tmp_path: Path) -> None:
    on_alert = {"checks": ["skew"], "rollout": {"max_divergence": 0.5}}
    project: Project = trained(tmp_path, on_alert)
    registry = open_project_registry(project)
    frame = iris_frame()
    log = replay_offline(project, registry, frame)
    labels = dict(zip(log["request_id"], frame["species"], strict=True))
    rows = [
        {str(k): v for k, v in row.items()}
        for row in frame.drop(columns=["species"]).head(20).to_dict(orient="records")
    ]

    outcome = feedback_demo(
        project,
        registry,
        [alert("skew")],
        labels=labels,
        traffic_rows=rows,
        runner=run_project,
        reporter=SilentReporter(),
    )

    assert outcome["capture"]["counts"]["random"] == 20
    assert outcome["import"]["kept"] == outcome["capture"]["counts"]["random"] + sum(
        n for reason, n in outcome["capture"]["counts"].items() if reason != "random"
    )
    assert outcome["retrain"]["state"] == "canary"
    assert outcome["rollout"]["state"] in ("promoted", "rolled_back")
    assert outcome["rollout"]["decisions"][0]["action"] == "start"


@pytest.mark.slow
def test_make_demo_runs_the_loop_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_demo(tmp_path / "demo", with_torch=False) == 0
    output = capsys.readouterr().out
    assert "feedback loop" in output and "standing in for a reviewer" in output
    assert "rolling out by canary" in output and "newest production window" in output
    assert "ML Test Score" in output
    # Whatever the demo's data makes fail, the score says why, not only that it failed.
    project = Project.load(tmp_path / "demo")
    score = score_project(project, open_project_registry(project))
    failing = [t for t in score.tests if t.status == "failing"]
    assert all(t.reason.startswith("the latest automated run failed: ") for t in failing), [
        (t.test.id, t.reason) for t in failing
    ]
