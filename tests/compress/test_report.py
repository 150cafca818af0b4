"""The compression table: the worst slice by the metric's direction; label agreement where
labels exist."""

from __future__ import annotations

from typing import Any

import pytest

from readyml.compress import CompressionReport, Row


def _row(task: str, primary: str, slices: list[tuple[str, float]]) -> Row:
    quality: dict[str, Any] = {
        "task": task,
        "primary": primary,
        "valid": {primary: 0.5},
        "slices": [
            {"name": name, "size": 40, "judged": True, "metrics": {primary: value}}
            for name, value in slices
        ],
    }
    parity = {"max_abs_diff": 0.01, "identical": 0.0}
    return Row("m:2", "onnx", "onnx", 1024, None, {"1": 0.1, "64": 0.2}, "m:1", quality, parity)


def _cells(row: Row) -> dict[str, Any]:
    header, body = CompressionReport(parent="m:1", rows=[row]).table()
    return dict(zip(header, body, strict=True))


@pytest.mark.parametrize(
    ("task", "primary", "worst"),
    [
        ("classification", "accuracy", "a: 0.2000"),
        ("regression", "rmse", "b: 0.9000"),
        ("regression", "r2", "a: 0.2000"),
    ],
)
def test_the_worst_slice_follows_the_metric_s_direction(
    task: str, primary: str, worst: str
) -> None:
    row = _row(task, primary, [("a", 0.2), ("b", 0.9), ("c", 0.5)])
    assert _cells(row)["worst slice"] == worst


def test_a_slice_without_the_metric_is_not_the_worst() -> None:
    row = _row("regression", "rmse", [("a", 0.2)])
    row.quality["slices"].append({"name": "b", "size": 40, "judged": True, "metrics": {}})
    assert _cells(row)["worst slice"] == "a: 0.2000"


@pytest.mark.parametrize(("task", "same"), [("regression", "n/a"), ("classification", "0.00%")])
def test_label_agreement_shows_only_where_labels_exist(task: str, same: str) -> None:
    assert _cells(_row(task, "rmse", []))["same labels"] == same
