"""Labelled production examples in the training pipeline (``data.production`` in the spec).

The load step appends the examples of the stored production datasets
(:mod:`readyml.feedback.production`) to the source data, with three reserved columns that
are never features: :data:`WEIGHT_COLUMN` (the spec's weight; 1 for source rows),
:data:`SOURCE_COLUMN` (the review set an example came from; null for source rows) and
:data:`TS_COLUMN` (when its request was served). The rest of the pipeline sees one frame:
profile and validation read it without the reserved columns, training passes the weights as
sample weights, evaluation reports the newest production window apart (candidate against
champion on the same rows), and the registered version's lineage names the datasets and
review sets it learnt from.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from readyml.config import Project, duration_seconds
from readyml.data.schema import Schema
from readyml.errors import DataError, ReadymlError
from readyml.feedback.production import (
    check_dataset,
    load_production,
    select_datasets,
    stored_label,
    stored_name,
)
from readyml.train.features import RESERVED_PREFIX
from readyml.types import JSON

if TYPE_CHECKING:
    from readyml.flavors._base import Task

WEIGHT_COLUMN: Final = "_readyml_weight"
SOURCE_COLUMN: Final = "_readyml_source"
TS_COLUMN: Final = "_readyml_ts"


def without_reserved(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the reserved columns (the same object when it has none)."""
    reserved = [c for c in frame.columns if str(c).startswith(RESERVED_PREFIX)]
    return frame.drop(columns=reserved) if reserved else frame


def production_mask(frame: pd.DataFrame) -> np.ndarray:
    """Which rows of ``frame`` are production examples."""
    if SOURCE_COLUMN not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame[SOURCE_COLUMN].notna().to_numpy()


def sample_weights(frame: pd.DataFrame) -> np.ndarray | None:
    """The rows' training weights, ``None`` when every row counts once."""
    if WEIGHT_COLUMN not in frame.columns:
        return None
    weights = frame[WEIGHT_COLUMN].to_numpy(dtype=np.float64)
    return None if np.all(weights == 1.0) else weights


def production_params(project: Project, now: datetime | None = None) -> JSON | None:
    """What the load step's cache key needs: the datasets' fingerprints and the settings."""
    spec = project.spec.data.production
    if spec is None or not spec.enabled:
        return None
    datasets = select_datasets(project.workspace, spec.datasets)
    for dataset in datasets:  # a changed file must fail the run, not hit the load cache
        check_dataset(project.workspace, dataset)
    params: JSON = {
        "spec": spec.model_dump(mode="json"),
        "datasets": {d.ref: d.fingerprint for d in datasets},
    }
    if spec.max_age is not None:  # the age cut moves with time: refresh daily
        params["day"] = (now or datetime.now(UTC)).date().isoformat()
    return params


def blend_production(
    frame: pd.DataFrame, project: Project, now: datetime | None = None
) -> tuple[pd.DataFrame, JSON]:
    """Append the production examples the spec asks for to ``frame``.

    Returns the blended frame and a summary (datasets, review sets, rows, weight) for
    lineage; ``frame`` itself when the spec has no production source.

    Raises:
        DataError: a dataset lacks a feature column of the source, or a value cannot take
            the source column's type.
    """
    spec = project.spec.data.production
    if spec is None or not spec.enabled:
        return frame, {}
    datasets = select_datasets(project.workspace, spec.datasets)
    max_age = timedelta(seconds=duration_seconds(spec.max_age)) if spec.max_age else None
    examples = load_production(project.workspace, datasets, max_age=max_age, now=now)
    summary: JSON = {
        "datasets": [{"ref": d.ref, "fingerprint": d.fingerprint} for d in datasets],
        "weight": spec.weight,
        "rows": len(examples),
        "review_sets": sorted(examples["review_set"].unique().tolist()) if len(examples) else [],
    }
    source = frame.copy()
    source[WEIGHT_COLUMN] = 1.0
    source[SOURCE_COLUMN] = pd.Series([None] * len(source), dtype=object, index=source.index)
    source[TS_COLUMN] = pd.Series(pd.NaT, index=source.index, dtype="datetime64[us, UTC]")
    if examples.empty:
        return source, summary
    label = project.spec.label
    if stored_label(label) not in examples.columns:
        raise DataError(f"production data: expected the label column '{label}', found none")
    added = pd.DataFrame(index=range(len(examples)))
    for column in frame.columns:
        # A column named like a provenance one is prefixed (the label only beside those).
        stored = stored_label(label) if column == label else stored_name(column)
        if stored in examples.columns:
            added[column] = _as_type(examples[stored], frame[column], column)
        else:  # a column the server never saw (e.g. an excluded date): unknown here
            added[column] = pd.Series([None] * len(examples), dtype=object).astype(
                frame[column].dtype if frame[column].dtype.kind in "fOUM" else object
            )
    added[WEIGHT_COLUMN] = spec.weight
    added[SOURCE_COLUMN] = examples["review_set"].astype(str).to_numpy()
    added[TS_COLUMN] = pd.to_datetime(examples["ts"], utc=True, format="ISO8601").astype(
        "datetime64[us, UTC]"
    )
    blended = pd.concat([source, added], ignore_index=True)
    return blended, summary


def _as_type(values: pd.Series, like: pd.Series, column: str) -> pd.Series:
    """``values`` in the dtype of the source column ``like``."""
    try:
        if pd.api.types.is_datetime64_any_dtype(like):
            return pd.to_datetime(values).astype(like.dtype)
        if pd.api.types.is_bool_dtype(like):
            # A value served as null stays missing (pandas' nullable boolean), as in the log.
            read = [pd.NA if pd.isna(v) else _as_bool(v, column) for v in values]
            missing = any(v is pd.NA for v in read)
            return pd.Series(read, dtype="boolean" if missing else like.dtype)
        return values.astype(like.dtype)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"production data: column '{column}' expected {like.dtype}, found values "
            f"such as {values.iloc[0]!r} ({exc})"
        ) from exc


def _as_bool(value: Any, column: str) -> bool:
    """A stored boolean: a bool, ``true``/``false`` in any case, or the number 1 or 0.

    (``bool("False")`` is ``True``: text must be read, never cast.)
    """
    if isinstance(value, bool | np.bool_):
        return bool(value)
    text = str(value).strip().casefold()
    if text in ("true", "false"):
        return text == "true"
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if number in (0.0, 1.0):
        return number == 1.0
    raise DataError(
        f"production data: column '{column}' expected true, false, 1 or 0, found {value!r}"
    )


def production_schema(schema: Schema, frame: pd.DataFrame) -> Schema:
    """``schema`` restricted to the columns production examples carry (features, label)."""
    present = [f for f in schema.features if f.name in frame.columns]
    return replace(schema, features=present)


def window_rows(valid: pd.DataFrame, window: str) -> np.ndarray:
    """Validation rows that are production examples within ``window`` of the newest one."""
    mask = production_mask(valid)
    if not mask.any():
        return mask
    stamps = pd.to_datetime(valid[TS_COLUMN], utc=True)
    newest = stamps[mask].max()
    start = newest - timedelta(seconds=duration_seconds(window, key="data.production.window"))
    return mask & (stamps >= start).to_numpy()


def production_window(
    *,
    valid: pd.DataFrame,
    window: str,
    label: str,
    task: Task,
    features: list[str],
    candidate: Any,
    champion: Any | None,
    champion_version: int | None,
) -> JSON:
    """Candidate and champion metrics on the newest production window of the validation split.

    ``candidate`` and ``champion`` are fitted models (``predict``, ``predict_proba``); the
    champion may be ``None`` (no champion yet, or it cannot be loaded).
    """
    from readyml.evaluate import compute_metrics, predict

    rows = window_rows(valid, window)
    report: JSON = {"window": window, "rows": int(rows.sum())}
    if not rows.any():
        report["reason"] = "no production examples in the validation split"
        return report
    part = valid[rows]
    stamps = pd.to_datetime(part[TS_COLUMN], utc=True)
    report["from"], report["to"] = stamps.min().isoformat(), stamps.max().isoformat()
    y = part[label].to_numpy()
    for name, model in (("candidate", candidate), ("champion", champion)):
        if model is None:
            continue
        try:
            pred, proba, classes = predict(model, part[features])
            report[name] = _finite(compute_metrics(task, y, pred, proba, classes))
        except (ReadymlError, ValueError, KeyError) as exc:
            report[f"{name}_error"] = str(exc)
    if champion_version is not None:
        report["champion_version"] = champion_version
    return report


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in metrics.items() if v == v}
