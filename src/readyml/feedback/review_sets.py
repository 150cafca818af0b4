"""Review sets: production examples selected for a person (or a labelling tool) to label.

One folder per set under ``{workspace}/review/{set_id}/``, written to a temporary folder and
renamed so a set is whole or absent:

- ``examples.csv`` and ``examples.jsonl``: one row per example, columns :data:`LEAD_COLUMNS`,
  then the model's features, then :data:`TAIL_COLUMNS` (``label`` is blank, to fill in);
- ``README.md``: what each column means and how to import the filled file;
- ``manifest.json``: the set's id, model, time window, budget, counts per reason, label
  column, task and classes.

``example_id`` is ``{request_id}:{row}`` (the row's position in its request), unique across
every set of a workspace: an example is never selected twice.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pandas as pd

from readyml.errors import DataError
from readyml.feedback._records import read_record
from readyml.types import JSON

REVIEW_DIR: Final = "review"
LEAD_COLUMNS: Final = ("example_id", "reason", "detail", "request_id", "model", "version", "ts")
TAIL_COLUMNS: Final = ("prediction", "confidence", "label")
REASONS: Final = (
    "misprediction",
    "low_confidence",
    "drift",
    "rare_slice",
    "schema_violation",
    "random",
)


@dataclass
class ReviewSetManifest:
    """What a review set holds and where it came from."""

    id: str
    created: str
    model: str
    since: str | None
    until: str | None
    budget: dict[str, int]
    counts: dict[str, int]
    features: list[str]
    label: str
    task: str
    classes: list[str] | None = None
    details: JSON = field(default_factory=dict)

    def to_dict(self) -> JSON:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, document: JSON) -> ReviewSetManifest:
        """Read what :meth:`to_dict` wrote."""
        return cls(**document)


def review_root(workspace: Path) -> Path:
    """The folder holding every review set of a workspace."""
    return workspace / REVIEW_DIR


def example_id(request_id: str, row: int) -> str:
    """The id of row ``row`` of request ``request_id``.

    Example:
        >>> example_id("7f3a", 0)
        '7f3a:0'
    """
    return f"{request_id}:{row}"


def new_set_id(now: datetime | None = None) -> str:
    """A sortable, unique review-set id (``rs-YYYYmmddTHHMMSS-xxxxxx``)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return f"rs-{stamp}-{uuid.uuid4().hex[:6]}"


def write_review_set(workspace: Path, manifest: ReviewSetManifest, examples: pd.DataFrame) -> Path:
    """Write ``examples`` (lead columns, features, tail columns) as review set ``manifest.id``.

    Raises:
        DataError: a column of :data:`LEAD_COLUMNS` or :data:`TAIL_COLUMNS` is missing.
    """
    missing = [c for c in (*LEAD_COLUMNS, *TAIL_COLUMNS) if c not in examples.columns]
    if missing:
        raise DataError(f"review set: expected columns {missing}, found {list(examples.columns)}")
    columns = [*LEAD_COLUMNS, *manifest.features, *TAIL_COLUMNS]
    frame = examples[columns].copy()
    frame["label"] = None
    root = review_root(workspace)
    root.mkdir(parents=True, exist_ok=True)
    final = root / manifest.id
    partial = root / f".{manifest.id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    frame.to_csv(partial / "examples.csv", index=False)
    frame.to_json(partial / "examples.jsonl", orient="records", lines=True, date_format="iso")
    (partial / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    (partial / "README.md").write_text(readme(manifest))
    os.replace(partial, final)
    return final


def readme(manifest: ReviewSetManifest) -> str:
    """The README written next to a review set's examples."""
    classes = f"one of {', '.join(manifest.classes)}" if manifest.classes else "a number"
    counts = "\n".join(f"- {reason}: {n}" for reason, n in manifest.counts.items() if n)
    return f"""# Review set {manifest.id}

Production examples of model `{manifest.model}` chosen for review
({manifest.since or "start"} to {manifest.until or "now"}).

{counts}

Fill in the `label` column (the true `{manifest.label}`: {classes}) in `examples.csv` or
`examples.jsonl`, leave rows you cannot judge blank, then run

    readyml review import examples.csv -p PROJECT

| column | meaning |
|---|---|
| example_id | `request_id:row`; keep it as it is |
| reason | why the example was chosen: {", ".join(REASONS)} |
| detail | the numbers behind the reason |
| request_id, model, version, ts | where the example came from (the server's request log) |
| {", ".join(manifest.features)} | the features the model saw |
| prediction | the model's answer |
| confidence | the model's probability for its answer (blank for regression) |
| label | to fill in |
"""


def list_review_sets(workspace: Path) -> list[ReviewSetManifest]:
    """Every review set of a workspace, oldest first."""
    root = review_root(workspace)
    manifests = sorted(root.glob("rs-*/manifest.json")) if root.exists() else []
    return [_read_manifest(p) for p in manifests]


def _read_manifest(path: Path) -> ReviewSetManifest:
    """One review set's manifest, or a one-line :class:`DataError` saying what is wrong."""
    return read_record(
        path,
        ReviewSetManifest.from_dict,
        what=f"review set {path.parent.name}",
        expected="a manifest.json as capture wrote it",
    )


def read_examples(workspace: Path, set_id: str) -> pd.DataFrame:
    """The examples of one review set, as written (``label`` blank)."""
    path = review_root(workspace) / set_id / "examples.jsonl"
    if not path.exists():
        raise DataError(f"review set {set_id!r}: expected {path}, found no such file")
    lines = path.read_text("utf-8").splitlines()
    return pd.DataFrame.from_records([json.loads(line) for line in lines if line])


def captured_ids(workspace: Path) -> set[str]:
    """Every ``example_id`` already selected into a review set of the workspace."""
    ids: set[str] = set()
    for manifest in list_review_sets(workspace):
        examples = read_examples(workspace, manifest.id)
        if "example_id" in examples.columns:
            ids.update(examples["example_id"].astype(str))
    return ids
