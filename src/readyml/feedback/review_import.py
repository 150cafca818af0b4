"""``readyml review import``: read a filled review file, keep its good rows as a dataset.

The file is a review set's ``examples.csv`` or ``examples.jsonl`` with the ``label`` column
filled in (other columns may be dropped: only ``example_id`` and ``label`` are read). Each row
is checked on its own: an ``example_id`` no review set holds, a duplicate, a blank label, a
label that is not one of the model's classes (classification; numeric classes compare as
numbers, boolean ones accept true/false/1/0) or not a finite number (regression), or an
example whose review set's ``captured.parquet`` changed since capture is reported with its
row number and skipped; the good rows are stored as the next production dataset version
(:mod:`readyml.feedback.production`), each label as the manifest writes its class. A file
that only repeats labels already stored writes no version. Features and provenance come from
the review set as captured, never from the edited file, so a reviewer cannot change what the
model saw by accident.
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
from readyml.feedback._columns import PROVENANCE, TAIL_COLUMNS, stored_label
from readyml.feedback._records import read_json_lines
from readyml.feedback.production import ProductionDataset, latest_labels, write_dataset
from readyml.feedback.review_sets import (
    ReviewSetManifest,
    captured_ids_by_set,
    list_review_sets,
    read_examples,
)
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
    unchanged: int = 0
    note: str = ""

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
            "unchanged": self.unchanged,
            "note": self.note,
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
    if path.suffix.lower() != ".json" or not text.lstrip().startswith("["):
        return read_json_lines(
            path,
            what=f"review file {path.name}",
            expected="a JSON object with example_id and label",
        )
    records: list[Any] = json.loads(text)
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataError(
                f"review file {path.name}: item {number}: expected a JSON object with "
                f"example_id and label, found {type(record).__name__}"
            )
    return records


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _finite_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _match_class(value: Any, classes: list[str]) -> str | None:
    """The class ``value`` names, as the manifest writes it, or ``None``.

    The same text; for boolean classes ``true``/``false`` in any case or ``1``/``0``; for
    numeric classes the same number (``"1"``, ``"1.0"`` and ``1.0`` all name the class ``1.0``).
    """
    text = str(value).strip()
    if text in classes:
        return text
    number = _finite_number(text)
    if set(classes) <= {"False", "True"}:
        word = text.casefold()
        truth = word == "true" or number == 1.0
        named = truth or word == "false" or number == 0.0
        return str(truth) if named and str(truth) in classes else None
    if number is None:
        return None
    same = [c for c in classes if _finite_number(c) == number]
    return same[0] if len(same) == 1 else None


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
    classes = manifest.classes or []
    if not classes:
        return str(value).strip(), None
    matched = _match_class(value, classes)
    if matched is None:
        shown = ", ".join(classes[:10]) + (" …" if len(classes) > 10 else "")
        return None, f"label: expected one of {shown}, found {value!r}"
    return matched, None


def import_review(workspace: Path, path: Path, *, label: str) -> ImportResult:
    """Check a filled review file row by row and store the good rows as a new dataset.

    A file that only repeats labels already stored (each example's newest) stores nothing.

    Args:
        workspace: The project's ``.readyml`` folder (review sets, production datasets).
        path: The filled ``examples.csv`` or ``examples.jsonl``.
        label: The spec's label column name (the stored dataset's label column).

    Returns:
        Counts, the problems per row, and the stored dataset (``None`` when no row was kept
        or nothing was new).

    Raises:
        DataError: the file cannot be read, or the workspace has no review sets.
    """
    filled = read_review_file(path)
    manifests = {m.id: m for m in list_review_sets(workspace)}
    if not manifests:
        raise DataError(f"review import: expected review sets in {workspace}, found none")
    owner = {eid: set_id for set_id, ids in captured_ids_by_set(workspace).items() for eid in ids}
    result = ImportResult(file=str(path), rows=len(filled))
    captured = _CapturedSets(workspace)
    kept: dict[str, tuple[str, Any]] = {}
    first_row: dict[str, int] = {}
    for position, (raw_id, raw_label) in enumerate(
        zip(filled["example_id"], filled["label"], strict=True)
    ):
        row = position + 1
        example = "" if _blank(raw_id) else str(raw_id).strip()
        problem = _id_problem(example, owner, first_row)
        if problem is None and _blank(raw_label):
            result.blank += 1
            first_row[example] = row
            continue
        value = None
        if problem is None:
            value, problem = _check_label(raw_label, manifests[owner[example]])
        if problem is None:
            problem = captured.problem(owner[example])
        if problem is not None:
            result.rejected += 1
            if len(result.problems) < MAX_LISTED:
                result.problems.append(f"row {row}: {problem}")
            continue
        first_row[example] = row
        kept[example] = (owner[example], value)
    result.kept = len(kept)
    _store(workspace, result, captured, kept, label=label, source=path.name)
    return result


def _id_problem(example: str, owner: dict[str, str], first_row: dict[str, int]) -> str | None:
    if not example:
        return "example_id: expected an id from a review set, found nothing"
    if example not in owner:
        return f"example_id: expected an id from a review set, found {example!r}"
    if example in first_row:
        return f"example_id {example!r}: duplicate of row {first_row[example]}"
    return None


class _CapturedSets:
    """The review sets' examples as captured, read (and checked) once each, when needed."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.frames: dict[str, pd.DataFrame] = {}
        self.errors: dict[str, str] = {}

    def problem(self, set_id: str) -> str | None:
        """Why the examples of ``set_id`` cannot be used (``None``: they can)."""
        if set_id not in self.frames and set_id not in self.errors:
            try:
                frame = read_examples(self.workspace, set_id)
                self.frames[set_id] = frame.set_index("example_id", drop=False)
            except DataError as exc:
                self.errors[set_id] = str(exc)
        return self.errors.get(set_id)


def _store(
    workspace: Path,
    result: ImportResult,
    captured: _CapturedSets,
    kept: dict[str, tuple[str, Any]],
    *,
    label: str,
    source: str,
) -> None:
    """Store the kept rows as the next dataset, unless every label is stored already."""
    if not kept:
        return
    stored = latest_labels(workspace)
    result.unchanged = sum(
        eid in stored and _same_label(stored[eid], value) for eid, (_, value) in kept.items()
    )
    if result.unchanged == len(kept):
        result.note = (
            f"nothing new: every kept label is stored already ({len(kept)} examples); "
            "no dataset version written"
        )
        return
    result.dataset = write_dataset(
        workspace,
        _dataset_rows(captured.frames, kept, label),
        label=label,
        review_sets=sorted({set_id for set_id, _ in kept.values()}),
        source=source,
    )


def _same_label(stored: Any, value: Any) -> bool:
    if isinstance(value, float):
        try:
            return float(stored) == value
        except (TypeError, ValueError):
            return False
    return str(stored) == str(value)


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
            if column not in ("detail", *TAIL_COLUMNS)
        }
        row[stored_label(label)] = value
        row["review_set"] = set_id
        row["labelled_at"] = labelled_at
        rows.append(row)
    frame = pd.DataFrame.from_records(rows)
    lead = [c for c in PROVENANCE if c in frame.columns]
    return frame[[*lead, *(c for c in frame.columns if c not in lead)]]
