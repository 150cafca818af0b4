"""The server's mounted routes: feedback labels and the monitoring and score pages."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from .conftest import ROW, TOKEN, serve_process, train_iris

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_feedback_then_report_pages(tmp_path: Path) -> None:
    root = train_iris(tmp_path / "iris")
    with serve_process(root) as server, server.client() as client:
        answer = client.post("/predict", json=[ROW], headers={"X-Request-Id": "req-1"})
        assert answer.status_code == 200

        labels = [
            {"request_id": "req-1", "label": "setosa"},
            {"request_id": "nope", "label": "virginica"},
            {"request_id": "req-1", "label": "rose"},  # not a class of the served model
        ]
        # Labels are the ground truth monitoring trusts: a server with a token wants it.
        refused = client.post("/v2/feedback", json=labels)
        assert refused.status_code == 401, refused.text
        fed = client.post("/v2/feedback", json=labels, headers=AUTH)
        assert fed.status_code == 200, fed.text
        counts = fed.json()
        assert "path" not in counts  # the server's files are not the client's business
        # req-1 may not be in the request log's files yet: "unknown" counts it until it is.
        assert (counts["new"], counts["relabelled"], counts["duplicates_ignored"]) == (2, 0, 0)
        assert counts["rejected"] == 1 and counts["unknown"] >= 1
        assert counts["errors"] == [
            "row 3: label: expected one of setosa, versicolor, virginica, found 'rose'"
        ]

        missing = client.get("/ui/monitoring")
        assert missing.status_code == 404
        assert "readyml monitor --report" in missing.json()["error"]

        reports = root / ".readyml" / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        (reports / "monitoring-20260101T000000Z.html").write_text("<html>old</html>")
        (reports / "monitoring-20260102T000000Z.html").write_text("<html>newest</html>")
        page = client.get("/ui/monitoring")
        assert page.status_code == 200 and "newest" in page.text
        assert page.headers["content-type"].startswith("text/html")

        score = client.get("/ui/score")
        assert score.status_code == 200 and "ML Test Score" in score.text
        assert client.post("/ui/score").status_code == 405

    stored = list((root / ".readyml" / "feedback").rglob("*.parquet"))
    assert stored
    with duckdb.connect() as con:
        files = [str(p) for p in stored]
        ids = {
            row[0]
            for row in con.execute("select request_id from read_parquet(?)", [files]).fetchall()
        }
    assert "req-1" in ids
    shutil.rmtree(root, ignore_errors=True)
