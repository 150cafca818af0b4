"""``readyml review import``: read a filled review file, keep its good rows as a dataset.

The file is a review set's ``examples.csv`` or ``examples.jsonl`` with the ``label`` column
filled in (other columns may be dropped: only ``example_id`` and ``label`` are read). Each row
is checked on its own: an ``example_id`` no review set holds, a duplicate, a blank label, or
a label that is not one of the model's classes (classification) or not a finite number
(regression) is reported with its row number and skipped; the good rows are stored as the
next production dataset version (:mod:`readyml.feedback.production`). Features and
provenance come from the review set as captured, never from the edited file, so a reviewer
cannot change what the model saw by accident.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd

from readyml.errors import DataError
from readyml.feedback.production import PROVENANCE, ProductionDataset, write_dataset
from readyml.feedback.review_sets import ReviewSetManifest, list_review_sets, read_examples
from readyml.types import JSON

# Row problems listed in a result (the count is complete).
MAX_LISTED: Final = 50


@dataclass
class ImportResult:
    """What an import kept and what it reported."""

    file: str
    rows: int = 0
    kept: int = 0
    blank: int = 0
    problems: list[str] = field(default_factory=list)
    rejected: int = 0
    dataset: ProductionDataset | None = None

    def to_dict(self) -> JSON:
        """A JSON-ready dict."""
        return {
            "file": self.file,
            "rows": self.rows,
            "kept": self.kept,
            "blank": self.blank,
            "rejected": self.rejected,
            "problems": list(self.problems),
            "dataset": self.dataset.to_dict() if self.dataset is not None else None,
        }


def read_review_file(path: Path) -> pd.DataFrame:
    """The rows of a filled review file (CSV, JSON lines, a JSON array, or Parquet), every
    value as read.

    Raises:
        DataError: the file is missing, of another kind, unreadable, or lacks the id or label.
    """
    if not path.is_file():
        raise DataError(f"review file: expected a file, found nothing at {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif suffix in (".jsonl", ".json"):
            frame = pd.DataFrame.from_records(_json_records(path))
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            raise DataError(
                f"review file: expected .csv, .jsonl, .json or .parquet, found "
                f"{suffix or 'no suffix'}"
            )
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise DataError(
            f"review file {path.name}: expected CSV, JSON lines or Parquet ({exc})"
        ) from exc
    missing = [c for c in ("example_id", "label") if c not in frame.columns]
    if missing:
        raise DataError(
            f"review file {path.name}: expected columns example_id and label, "
            f"found {list(frame.columns)[:12]}"
        )
    return frame


def _json_records(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file, or of a ``.json`` file holding one array of them."""
    text = path.read_text("utf-8")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        records: list[Any] = json.loads(text)
        where = "item"
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
        where = "line"
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataError(
                f"review file {path.name}: {where} {number}: expected a JSON object with "
                f"example_id and label, found {type(record).__name__}"
            )
    return records


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _number_text(value: Any) -> str:
    """Text of a label; ``1.0`` and ``1`` read the same for integer classes."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() and "." in text else text


def _check_label(value: Any, manifest: ReviewSetManifest) -> tuple[Any, str | None]:
    """The label to store, or a problem."""
    if manifest.task == "regression":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None, f"label: expected a number, found {value!r}"
        if not math.isfinite(number):
            return None, f"label: expected a finite number, found {value!r}"
        return number, None
    text = _number_text(value)
    classes = manifest.classes or []
    if classes and text not in classes:
        shown = ", ".join(classes[:10]) + (" …" if len(classes) > 10 else "")
        return None, f"label: expected one of {shown}, found {value!r}"
    return text, None


def import_review(workspace: Path, path: Path, *, label: str) -> ImportResult:
    """Check a filled review file row by row and store the good rows as a new dataset.

    Args:
        workspace: The project's ``.readyml`` folder (review sets, production datasets).
        path: The filled ``examples.csv`` or ``examples.jsonl``.
        label: The spec's label column name (the stored dataset's label column).

    Returns:
        Counts, the problems per row, and the stored dataset (``None`` when no row was kept).

    Raises:
        DataError: the file cannot be read, or the workspace has no review sets.
    """
    filled = read_review_file(path)
    manifests = {m.id: m for m in list_review_sets(workspace)}
    if not manifests:
        raise DataError(f"review import: expected review sets in {workspace}, found none")
    captured = {
        set_id: read_examples(workspace, set_id).set_index("example_id", drop=False)
        for set_id in manifests
    }
    owner = {eid: set_id for set_id, frame in captured.items() for eid in frame.index}
    result = ImportResult(file=str(path), rows=len(filled))
    kept: dict[str, tuple[str, Any]] = {}
    first_row: dict[str, int] = {}
    for position, (raw_id, raw_label) in enumerate(
        zip(filled["example_id"], filled["label"], strict=True)
    ):
        row = position + 1
        problem: str | None = None
        example = "" if _blank(raw_id) else str(raw_id).strip()
        if not example:
            problem = "example_id: expected an id from a review set, found nothing"
        elif example not in owner:
            problem = f"example_id: expected an id from a review set, found {example!r}"
        elif example in first_row:
            problem = f"example_id {example!r}: duplicate of row {first_row[example]}"
        if problem is None and _blank(raw_label):
            result.blank += 1
            first_row[example] = row
            continue
        value = None
        if problem is None:
            value, problem = _check_label(raw_label, manifests[owner[example]])
        if problem is not None:
            result.rejected += 1
            if len(result.problems) < MAX_LISTED:
                result.problems.append(f"row {row}: {problem}")
            continue
        first_row[example] = row
        kept[example] = (owner[example], value)
    result.kept = len(kept)
    if kept:
        examples = _dataset_rows(captured, kept, label)
        result.dataset = write_dataset(
            workspace,
            examples,
            label=label,
            review_sets=sorted({set_id for set_id, _ in kept.values()}),
            source=path.name,
        )
    return result


def _dataset_rows(
    captured: dict[str, pd.DataFrame], kept: dict[str, tuple[str, Any]], label: str
) -> pd.DataFrame:
    labelled_at = datetime.now(UTC).isoformat()
    rows = []
    for example, (set_id, value) in kept.items():
        original = captured[set_id].loc[example]
        row = {
            column: original[column]
            for column in original.index
            if column not in ("label", "prediction", "confidence", "detail")
        }
        row[label] = value
        row["review_set"] = set_id
        row["labelled_at"] = labelled_at
        rows.append(row)
    frame = pd.DataFrame.from_records(rows)
    lead = [c for c in PROVENANCE if c in frame.columns]
    return frame[[*lead, *(c for c in frame.columns if c not in lead)]]
