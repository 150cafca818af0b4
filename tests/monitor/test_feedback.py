"""Feedback labels: recorded by request id, joined last-write-wins, never lost to a bad record."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from readyml.monitor import FeedbackResult, feedback_app, read_traffic, record_feedback

from .helpers import NOW, inputs_for, log_traffic, make_log


def test_unknown_and_relabelled_ids_are_counted_and_the_rest_recorded(workspace: Path) -> None:
    log = log_traffic(workspace, make_log(n=50))
    ids = log["request_id"].tolist()
    result = record_feedback(
        workspace,
        [
            {"request_id": ids[0], "label": "a"},
            {"request_id": ids[1], "label": "b"},
            {"request_id": ids[1], "label": "a"},  # relabelled in the batch: the last wins
            {"request_id": "never-served", "label": "a"},
            {"request_id": "", "label": "a"},
            {"label": "a"},
            {"request_id": ids[2]},
            {"request_id": ids[3], "label": "b", "ts": "not a time"},
        ],
        now=NOW,
    )
    assert (result.received, result.new, result.relabelled, result.rejected) == (8, 3, 1, 4)
    assert result.duplicates_ignored == 0
    assert result.unknown == 1 and result.unknown_ids == ["never-served"]
    assert len(result.errors) == 4
    frame = read_traffic(workspace, "m", version=1).set_index("request_id")
    assert frame.loc[ids[0], "label"] == "a"
    assert frame.loc[ids[1], "label"] == "a"
    assert frame["label"].notna().sum() == 2


def test_a_time_is_iso_text_or_unix_seconds_and_never_far_off(workspace: Path) -> None:
    log = log_traffic(workspace, make_log(n=10))
    ids = log["request_id"].tolist()
    seconds = NOW.timestamp() - 3600
    result = record_feedback(
        workspace,
        [
            {"request_id": ids[0], "label": "a", "ts": seconds},  # Unix seconds, not ns
            {"request_id": ids[1], "label": "a", "ts": "2026-05-31T08:00:00+02:00"},
            {"request_id": ids[2], "label": "a", "ts": -1e18},
            {"request_id": ids[3], "label": "a", "ts": seconds * 1000},  # milliseconds
            {"request_id": ids[4], "label": "a", "ts": "1900-01-01"},
            {"request_id": ids[5], "label": "a", "ts": (NOW + timedelta(days=2)).isoformat()},
            {"request_id": ids[6], "label": "a", "ts": True},
        ],
        now=NOW,
    )
    assert (result.new, result.rejected) == (2, 5)
    assert [e.split(":")[0] for e in result.errors] == [f"row {n}" for n in (3, 4, 5, 6, 7)]
    assert all("ts: expected" in e for e in result.errors)
    assert result.path is not None
    stored = pd.read_parquet(result.path).set_index("request_id")["ts"]
    assert stored[ids[0]] == pd.Timestamp(NOW - timedelta(hours=1))
    assert stored[ids[1]] == pd.Timestamp("2026-05-31T06:00:00Z")


def test_a_later_label_for_the_same_id_wins(workspace: Path) -> None:
    log = log_traffic(workspace, make_log(n=20))
    rid = log["request_id"].iloc[0]
    record_feedback(workspace, [{"request_id": rid, "label": "a"}], now=NOW)
    again = record_feedback(workspace, [{"request_id": rid, "label": "b"}], now=NOW + timedelta(1))
    assert (again.new, again.relabelled, again.duplicates_ignored) == (0, 1, 0)
    frame = read_traffic(workspace, "m").set_index("request_id")
    assert frame.loc[rid, "label"] == "b"


def _partition(result: FeedbackResult) -> tuple[int, int, int, int]:
    counts = (result.new, result.relabelled, result.duplicates_ignored, result.rejected)
    assert sum(counts) == result.received  # each record is counted once
    return counts


def test_each_record_is_counted_once_new_relabelled_duplicate_or_rejected(
    workspace: Path,
) -> None:
    log = log_traffic(workspace, make_log(n=10))
    ids = log["request_id"].tolist()
    stamp = "2026-05-31T08:00:00Z"
    first = record_feedback(
        workspace,
        [{"request_id": ids[0], "label": "a", "ts": stamp}, {"request_id": ids[1], "label": "a"}],
        now=NOW,
    )
    assert _partition(first) == (2, 0, 0, 0)
    later = NOW + timedelta(hours=1)
    result = record_feedback(
        workspace,
        [
            {"request_id": ids[0], "label": "a"},  # the label in effect again: ignored
            {"request_id": ids[0], "label": "a", "ts": "2026-05-31T10:00:00+02:00"},  # same ts
            {"request_id": ids[1], "label": "b"},  # replaces the label recorded before
            {"request_id": ids[1], "label": "a"},  # replaces the one just given
            {"request_id": ids[2], "label": "a"},  # first label of its id
            {"request_id": ids[2], "label": "a"},  # twice in the batch: ignored
            {"request_id": ids[3], "label": "b"},
            {"request_id": ids[0], "label": "a", "ts": NOW.isoformat()},  # a new time: replaces
            {"label": "a"},
        ],
        now=later,
    )
    assert (result.received, _partition(result)) == (9, (2, 3, 3, 1))
    assert result.unknown == 0
    assert result.path is not None
    written = pd.read_parquet(result.path).set_index("request_id")
    assert sorted(written.index) == sorted(ids[:4])
    assert written.loc[ids[1], "label"] == "a" and written.loc[ids[1], "seq"] == 3
    frame = read_traffic(workspace, "m").set_index("request_id")
    assert frame.loc[ids[:4], "label"].tolist() == ["a", "a", "a", "b"]

    again = record_feedback(workspace, [{"request_id": ids[3], "label": "b"}], now=later)
    assert _partition(again) == (0, 0, 1, 0)
    assert again.path is None  # nothing new: nothing written


def test_labels_join_into_monitor_inputs(workspace: Path) -> None:
    log = log_traffic(workspace, make_log(n=30))
    record_feedback(workspace, [{"request_id": r, "label": "a"} for r in log["request_id"][:10]])
    traffic = inputs_for(workspace).traffic()
    assert traffic["label"].notna().sum() == 10
    assert len(traffic) == 30


def _call(app: Any, method: str, body: bytes) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    asyncio.run(app({"type": "http", "method": method, "path": "/v2/feedback"}, receive, send))
    return int(sent[0]["status"]), json.loads(sent[1]["body"])


def test_feedback_endpoint_records_and_answers_counts(workspace: Path) -> None:
    log = log_traffic(workspace, make_log(n=10))
    app = feedback_app(workspace)
    body = json.dumps(
        {
            "records": [
                {"request_id": log["request_id"][0], "label": "a"},
                {"request_id": "x", "label": "b"},
            ]
        }
    ).encode()
    status, payload = _call(app, "POST", body)
    assert status == 200
    assert (payload["received"], payload["new"], payload["unknown"]) == (2, 2, 1)
    assert payload["recorded"] == 2  # what answers before the partition called it
    status, payload = _call(app, "POST", body)
    assert status == 200
    counts = [payload[k] for k in ("new", "relabelled", "duplicates_ignored", "rejected")]
    assert counts == [0, 0, 2, 0] and sum(counts) == payload["received"]
    assert _call(app, "POST", b"{not json")[0] == 400
    assert _call(app, "GET", b"")[0] == 405


@pytest.mark.parametrize(
    ("body", "field", "found"),
    [
        (b"{not json", "body", "invalid text"),
        (b"null", "body", "null"),
        (b"5", "body", "number 5"),
        (b'{"records": 5}', "records", "number 5"),
    ],
)
def test_feedback_endpoint_names_field_expected_and_found(
    workspace: Path, body: bytes, field: str, found: str
) -> None:
    status, payload = _call(feedback_app(workspace), "POST", body)
    assert status == 400
    assert (payload["field"], payload["found"]) == (field, found)
    assert payload["expected"] and payload["error"].startswith("feedback body: ")


def test_a_record_that_is_not_an_object_is_named_in_json_terms(workspace: Path) -> None:
    status, payload = _call(feedback_app(workspace), "POST", b"[5]")
    assert status == 200 and payload["errors"] == ["row 1: expected an object, found number 5"]
