"""Review sets written directly (as ``readyml capture`` would) for import and training tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from readyml.feedback.review_sets import ReviewSetManifest, example_id, new_set_id, write_review_set
from support import iris_frame

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]


def write_iris_set(
    workspace: Path, rows: list[int], *, ts: datetime | None = None, task: str = "classification"
) -> tuple[ReviewSetManifest, pd.DataFrame]:
    """A review set of the iris rows ``rows`` (request ids ``req-{row}``), label blank."""
    frame = iris_frame().iloc[rows].reset_index(drop=True)
    stamp = ts or datetime.now(UTC)
    examples = frame[FEATURES].copy()
    examples.insert(0, "example_id", [example_id(f"req-{r}", 0) for r in rows])
    examples.insert(1, "reason", "random")
    examples.insert(2, "detail", "control sample")
    examples.insert(3, "request_id", [f"req-{r}" for r in rows])
    examples.insert(4, "model", "iris")
    examples.insert(5, "version", 1)
    examples.insert(6, "ts", stamp.isoformat())
    examples["prediction"] = "setosa"
    examples["confidence"] = 0.9
    examples["label"] = None
    manifest = ReviewSetManifest(
        id=new_set_id(),
        created=datetime.now(UTC).isoformat(),
        model="iris",
        since=None,
        until=None,
        budget={"random": len(rows)},
        counts={"random": len(rows)},
        features=FEATURES,
        label="species",
        task=task,
        classes=CLASSES if task == "classification" else None,
    )
    write_review_set(workspace, manifest, examples)
    return manifest, frame


def write_set(
    workspace: Path,
    frame: pd.DataFrame,
    *,
    label: str,
    classes: list[str] | None,
    task: str = "classification",
) -> ReviewSetManifest:
    """A review set of ``frame``'s rows (every column a feature, none named like a column of
    the set; request ids ``req-{i}``), label blank."""
    features = [str(c) for c in frame.columns]
    examples = pd.DataFrame(
        {
            "example_id": [example_id(f"req-{i}", 0) for i in range(len(frame))],
            "reason": "random",
            "detail": "control sample",
            "request_id": [f"req-{i}" for i in range(len(frame))],
            "model": "m",
            "version": 1,
            "ts": datetime.now(UTC).isoformat(),
        }
    )
    for name in features:
        examples[name] = frame[name].to_numpy()
    examples["prediction"] = classes[0] if classes else 0.0
    examples["confidence"] = 0.9 if classes else None
    examples["label"] = None
    manifest = ReviewSetManifest(
        id=new_set_id(),
        created=datetime.now(UTC).isoformat(),
        model="m",
        since=None,
        until=None,
        budget={"random": len(frame)},
        counts={"random": len(frame)},
        features=features,
        label=label,
        task=task,
        classes=classes,
    )
    write_review_set(workspace, manifest, examples)
    return manifest
