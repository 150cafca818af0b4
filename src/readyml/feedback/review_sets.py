"""Review sets: production examples selected for a person (or a labelling tool) to label.

One folder per set under ``{workspace}/review/{set_id}/``, written to a temporary folder and
renamed so a set is whole or absent:

- ``examples.csv`` and ``examples.jsonl``: one row per example, columns :data:`LEAD_COLUMNS`,
  then the model's features, then :data:`TAIL_COLUMNS` (``label`` is blank, to fill in); a
  feature named like one of those is the column ``feature:NAME``
  (:func:`~readyml.feedback._columns.stored_name`);
- ``captured.parquet``: the same rows as captured, the copy ``review import`` reads features
  and provenance from (the reviewer edits the other two), checked against its SHA-256;
- ``README.md``: what each column means and how to import the filled file;
- ``manifest.json``: the set's id, model, time window, budget, counts per reason, label
  column, task, classes and the fingerprint of ``captured.parquet``.

``example_id`` is ``{request_id}:{row}`` (the row's position in its request), unique across
every set of a workspace: an example is never selected twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pandas as pd

from readyml.errors import DataError
from readyml.feedback._columns import LEAD_COLUMNS as LEAD_COLUMNS
from readyml.feedback._columns import TAIL_COLUMNS as TAIL_COLUMNS
from readyml.feedback._columns import stored_name
from readyml.feedback._records import read_json_lines, read_record
from readyml.types import JSON

_LOG = logging.getLogger(__name__)

REVIEW_DIR: Final = "review"
CAPTURED_FILE: Final = "captured.parquet"
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
    captured_sha256: str | None = None  # None: a set written before captured.parquet existed

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

    Features are named as :func:`~readyml.feedback._columns.stored_name` says. Sets
    ``manifest.captured_sha256``. A failed write leaves no folder behind.

    Raises:
        DataError: a lead, feature or tail column is missing.
    """
    columns = [*LEAD_COLUMNS, *(stored_name(f) for f in manifest.features), *TAIL_COLUMNS]
    missing = [c for c in columns if c not in examples.columns]
    if missing:
        raise DataError(f"review set: expected columns {missing}, found {list(examples.columns)}")
    frame = examples[columns].copy()
    frame["label"] = None
    root = review_root(workspace)
    with _partial_folder(root, manifest.id) as partial:
        _write_files(partial, manifest, frame)
    return root / manifest.id


@contextmanager
def _partial_folder(root: Path, name: str) -> Iterator[Path]:
    """A temporary folder renamed to ``root / name`` when the block ends well, removed when
    it raises (interrupted included)."""
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        yield partial
        os.replace(partial, root / name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _write_files(folder: Path, manifest: ReviewSetManifest, frame: pd.DataFrame) -> None:
    captured = folder / CAPTURED_FILE
    frame.to_parquet(captured, index=False)
    manifest.captured_sha256 = _sha256(captured)
    frame.to_csv(folder / "examples.csv", index=False)
    frame.to_json(folder / "examples.jsonl", orient="records", lines=True, date_format="iso")
    (folder / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    (folder / "README.md").write_text(readme(manifest))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def readme(manifest: ReviewSetManifest) -> str:
    """The README written next to a review set's examples."""
    classes = f"one of {', '.join(manifest.classes)}" if manifest.classes else "a number"
    counts = "\n".join(f"- {reason}: {n}" for reason, n in manifest.counts.items() if n)
    features = ", ".join(stored_name(f) for f in manifest.features)
    renamed = "".join(
        f"\n| {stored_name(f)} | the feature `{f}` (renamed: a column of this file has its name) |"
        for f in manifest.features
        if stored_name(f) != f
    )
    return f"""# Review set {manifest.id}

Production examples of model `{manifest.model}` chosen for review
({manifest.since or "start"} to {manifest.until or "now"}).

{counts}

Fill in the `label` column (the true `{manifest.label}`: {classes}) in `examples.csv` or
`examples.jsonl`, leave rows you cannot judge blank, then run

    readyml review import examples.csv -p PROJECT

Only `example_id` and `label` are read from the filled file. The features and provenance
stored come from `{CAPTURED_FILE}`, the examples as captured: leave it as it is (it is
checked against the fingerprint in `manifest.json`).

| column | meaning |
|---|---|
| example_id | `request_id:row`; keep it as it is |
| reason | why the example was chosen: {", ".join(REASONS)} |
| detail | the numbers behind the reason |
| request_id, model, version, ts | where the example came from (the server's request log) |
| {features} | the features the model saw |{renamed}
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
    """The examples of one review set as captured (``label`` blank).

    They come from ``captured.parquet``, checked against the manifest's fingerprint, or,
    for a set written before that file existed, from ``examples.jsonl``.

    Raises:
        DataError: the file is missing, unreadable, or changed since capture.
    """
    folder = review_root(workspace) / set_id
    manifest = _read_manifest(folder / "manifest.json")
    if manifest.captured_sha256 is None:
        return pd.DataFrame.from_records(
            read_json_lines(folder / "examples.jsonl", what=f"review set {set_id}: examples.jsonl")
        )
    path = folder / CAPTURED_FILE
    digest = _sha256(path) if path.exists() else None
    if digest != manifest.captured_sha256:
        found = f"sha256 {digest[:12]}… (changed after capture)" if digest else "no such file"
        raise DataError(
            f"review set {set_id}: expected {CAPTURED_FILE} with sha256 "
            f"{manifest.captured_sha256[:12]}…, found {found}"
        )
    return _read_parquet(path, set_id)


def _read_parquet(path: Path, set_id: str, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        return pd.read_parquet(path, columns=columns)
    except (ValueError, OSError) as exc:
        lines = str(exc).strip().splitlines()
        found = lines[0] if lines else type(exc).__name__
        raise DataError(
            f"review set {set_id}: expected {path.name} as capture wrote it, found {found}"
        ) from None


def captured_ids(workspace: Path) -> set[str]:
    """Every ``example_id`` already selected into a review set of the workspace."""
    return {eid for ids in captured_ids_by_set(workspace).values() for eid in ids}


def captured_ids_by_set(workspace: Path) -> dict[str, list[str]]:
    """The ``example_id`` of each review set's examples, by set id.

    Read without the fingerprint check (only the ids count), so a changed
    ``captured.parquet`` blocks no other set; one that cannot be read at all is logged and
    counts as holding none (its rows are refused when imported).

    Raises:
        DataError: a set's manifest cannot be read.
    """
    ids: dict[str, list[str]] = {}
    for manifest in list_review_sets(workspace):
        path = review_root(workspace) / manifest.id / CAPTURED_FILE
        try:
            if manifest.captured_sha256 is None:
                examples = read_examples(workspace, manifest.id)
            else:
                examples = _read_parquet(path, manifest.id, columns=["example_id"])
        except DataError as exc:
            _LOG.warning("%s; its examples are not counted as captured", exc)
            ids[manifest.id] = []
            continue
        found = "example_id" in examples.columns
        ids[manifest.id] = examples["example_id"].astype(str).tolist() if found else []
    return ids
