"""Production datasets: labelled production examples, versioned and fingerprinted.

Each ``readyml review import`` that keeps at least one row writes version N as
``{workspace}/production/v{N:04d}/`` (a temporary folder renamed into place):
``examples.parquet`` (the features as served, the label under the spec's label name, and
:data:`PROVENANCE` columns; a feature or label named like one of those is stored as
``feature:NAME``, see :func:`~readyml.feedback._columns.stored_name`) and ``manifest.json``
(version, SHA-256 fingerprint of the Parquet file, rows, the review sets it came from, when).
Versions are never rewritten; a relabelled example appears again in a later version, and the
newest label wins when the training pipeline reads them (:func:`load_production`). An import
that adds no new label writes no version (:func:`latest_labels`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pandas as pd

from readyml.errors import DataError
from readyml.feedback._columns import PROVENANCE as PROVENANCE
from readyml.feedback._columns import stored_label as stored_label
from readyml.feedback._columns import stored_name as stored_name
from readyml.feedback._records import read_record
from readyml.types import JSON

PRODUCTION_DIR: Final = "production"
EXAMPLES_FILE: Final = "examples.parquet"


@dataclass(frozen=True)
class ProductionDataset:
    """One stored version of labelled production examples."""

    version: int
    fingerprint: str
    rows: int
    review_sets: list[str]
    created: str
    label: str
    source_file: str

    @property
    def ref(self) -> str:
        """``production:v3``, as lineage names it."""
        return f"production:v{self.version}"

    def to_dict(self) -> JSON:
        """A JSON-ready dict."""
        return asdict(self)


def production_root(workspace: Path) -> Path:
    """The folder holding every production dataset version."""
    return workspace / PRODUCTION_DIR


def list_datasets(workspace: Path) -> list[ProductionDataset]:
    """Every stored version, oldest first."""
    root = production_root(workspace)
    if not root.exists():
        return []
    found = []
    for manifest in sorted(root.glob("v*/manifest.json")):
        found.append(
            read_record(
                manifest,
                lambda data: ProductionDataset(**data),
                what=f"production dataset {manifest.parent.name}",
                expected="a manifest.json as review import wrote it",
            )
        )
    return found


def write_dataset(
    workspace: Path, examples: pd.DataFrame, *, label: str, review_sets: list[str], source: str
) -> ProductionDataset:
    """Store ``examples`` as the next version; return its manifest. A failed write leaves no
    folder behind.

    Raises:
        DataError: ``examples`` is empty or lacks the label or a provenance column.
    """
    missing = [c for c in (stored_label(label), *PROVENANCE) if c not in examples.columns]
    if missing or examples.empty:
        found = "no rows" if examples.empty else f"columns {list(examples.columns)}"
        raise DataError(f"production dataset: expected rows with {missing or label}, found {found}")
    root = production_root(workspace)
    root.mkdir(parents=True, exist_ok=True)
    existing = list_datasets(workspace)
    version = existing[-1].version + 1 if existing else 1
    final = root / f"v{version:04d}"
    if final.exists():
        raise DataError(f"production dataset v{version}: expected a new version, found it exists")
    partial = root / f".v{version:04d}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        dataset = _write_version(partial, examples, version, label, review_sets, source)
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return dataset


def _write_version(
    folder: Path,
    examples: pd.DataFrame,
    version: int,
    label: str,
    review_sets: list[str],
    source: str,
) -> ProductionDataset:
    path = folder / EXAMPLES_FILE
    examples.reset_index(drop=True).to_parquet(path, index=False)
    dataset = ProductionDataset(
        version=version,
        fingerprint=hashlib.sha256(path.read_bytes()).hexdigest(),
        rows=len(examples),
        review_sets=sorted(review_sets),
        created=datetime.now(UTC).isoformat(),
        label=label,
        source_file=source,
    )
    (folder / "manifest.json").write_text(json.dumps(dataset.to_dict(), indent=2) + "\n")
    return dataset


def check_dataset(workspace: Path, dataset: ProductionDataset) -> Path:
    """The examples file of one version, checked against its fingerprint.

    Raises:
        DataError: the file is missing or its content changed since it was written.
    """
    path = production_root(workspace) / f"v{dataset.version:04d}" / EXAMPLES_FILE
    if not path.exists():
        raise DataError(f"{dataset.ref}: expected {path}, found no such file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != dataset.fingerprint:
        raise DataError(
            f"{dataset.ref}: expected sha256 {dataset.fingerprint[:12]}…, found "
            f"{digest[:12]}… (the file changed after it was stored)"
        )
    return path


def read_dataset(workspace: Path, dataset: ProductionDataset) -> pd.DataFrame:
    """The examples of one version, checked against its fingerprint.

    Raises:
        DataError: the file is missing or its content changed since it was written.
    """
    return pd.read_parquet(check_dataset(workspace, dataset))


def labelled_ids(workspace: Path) -> set[str]:
    """Every ``example_id`` stored in a production dataset of the workspace (labelled
    already, so never to be captured again, even when its review set was deleted)."""
    return set(latest_labels(workspace))


def latest_labels(workspace: Path) -> dict[str, Any]:
    """The newest stored label of every labelled ``example_id`` of the workspace."""
    latest: dict[str, Any] = {}
    for dataset in list_datasets(workspace):
        path = production_root(workspace) / f"v{dataset.version:04d}" / EXAMPLES_FILE
        column = stored_label(dataset.label)
        if not path.exists():
            continue
        frame = pd.read_parquet(path, columns=["example_id", column])
        latest.update(zip(frame["example_id"].astype(str), frame[column], strict=True))
    return latest


def select_datasets(workspace: Path, versions: list[int] | None = None) -> list[ProductionDataset]:
    """The stored versions named by ``versions`` (all when ``None``).

    Raises:
        DataError: a named version does not exist.
    """
    stored = list_datasets(workspace)
    if versions is None:
        return stored
    by_version = {d.version: d for d in stored}
    unknown = [v for v in versions if v not in by_version]
    if unknown:
        raise DataError(
            f"data.production.datasets: expected stored versions {sorted(by_version)}, "
            f"found {unknown}"
        )
    return [by_version[v] for v in sorted(versions)]


def load_production(
    workspace: Path,
    datasets: list[ProductionDataset],
    *,
    max_age: timedelta | None = None,
    now: datetime | None = None,
) -> pd.DataFrame:
    """The examples of ``datasets``, one row per example (the newest label wins).

    Examples whose request is older than ``max_age`` before ``now`` are left out.
    """
    frames = [read_dataset(workspace, d) for d in datasets]
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.drop_duplicates("example_id", keep="last")
    if max_age is not None:
        stamps = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
        frame = frame[stamps >= pd.Timestamp(now or datetime.now(UTC)) - max_age]
    return frame.reset_index(drop=True)
