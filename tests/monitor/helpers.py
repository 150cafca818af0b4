"""Synthetic served traffic and a training reference, built without a server or a registry."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from readyml.config import MonitoringSpec
from readyml.data import Schema, infer_schema, profile_frame
from readyml.monitor import MonitorInputs, Reference, write_log

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FEATURES = ["x1", "x2", "city"]


def training_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Two numeric features and a city; label ``a`` when x1 + x2 > 0."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0.0, 1.0, n)
    x2 = rng.normal(0.0, 1.0, n)
    city = rng.choice(["oslo", "rome"], n)
    y = np.where(x1 + x2 > 0, "a", "b")
    return pd.DataFrame({"x1": x1, "x2": x2, "city": city, "y": y})


def predict(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The 'model': a logistic rule on x1 + x2; returns labels and P(a), P(b)."""
    score = 1.0 / (1.0 + np.exp(-3.0 * (frame["x1"] + frame["x2"]).to_numpy()))
    proba = np.column_stack([score, 1.0 - score])
    return np.where(score > 0.5, "a", "b"), proba


def make_log(
    n: int = 400,
    *,
    seed: int = 1,
    shift: float = 0.0,
    version: int = 1,
    start: datetime = NOW - timedelta(hours=2),
    latency_ms: float = 5.0,
    rss_mb: float | Callable[[np.ndarray], np.ndarray] = 200.0,
    status: int = 200,
) -> pd.DataFrame:
    """Log rows as the server writes them (its column contract)."""
    frame = training_frame(n, seed)
    frame["x1"] = frame["x1"] + shift
    labels, proba = predict(frame)
    step = timedelta(hours=1) / n
    stamps = pd.DatetimeIndex([start + step * i for i in range(n)]).as_unit("us")
    rng = np.random.default_rng(seed + 100)
    hours = np.arange(n) / n
    memory = rss_mb(hours) if callable(rss_mb) else np.full(n, rss_mb)
    log = pd.DataFrame(
        {
            "request_id": [uuid.uuid4().hex for _ in range(n)],
            "ts": stamps,
            "model": "m",
            "version": np.int64(version),
            "x1": frame["x1"],
            "x2": frame["x2"],
            "city": frame["city"],
            "prediction": labels,
            "proba_a": proba[:, 0],
            "proba_b": proba[:, 1],
            "latency_ms": latency_ms * rng.uniform(0.8, 1.2, n),
            "status": np.int32(status),
            "rss_mb": memory,
        }
    )
    log.attrs["truth"] = frame["y"].to_numpy()
    return log


def make_reference(**overrides: object) -> Reference:
    """The reference of version 1 of model ``m``, trained on :func:`training_frame`."""
    train = training_frame()
    valid = training_frame(300, seed=7)
    pred, proba = predict(valid)
    reference = Reference(
        model="m",
        version=1,
        created_at=NOW - timedelta(days=3),
        task="classification",
        features=list(FEATURES),
        dtypes={"x1": "float64", "x2": "float64", "city": "string"},
        label="y",
        classes=["a", "b"],
        profile=profile_frame(train),
        schema=_reviewed_schema(train),
        metrics={"accuracy": float(np.mean(pred == valid["y"].to_numpy()))},
        primary="accuracy",
        packages={"numpy": np.__version__},
        stage_success={"train": NOW - timedelta(days=3)},
        valid=valid,
        valid_pred=pred,
        valid_proba=proba,
    )
    for key, value in overrides.items():
        setattr(reference, key, value)
    return reference


def _reviewed_schema(train: pd.DataFrame) -> Schema:
    """The inferred schema with the numeric ranges widened, as a reviewer would."""
    schema = infer_schema(train, label="y")
    for feature in schema.features:
        if feature.type == "float":
            feature.min, feature.max = -10.0, 10.0
    return schema


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty ``.readyml`` folder inside a project folder."""
    path = tmp_path / ".readyml"
    path.mkdir()
    return path


def inputs_for(
    workspace: Path, *, spec: MonitoringSpec | None = None, **reference: object
) -> MonitorInputs:
    """Monitor inputs over whatever is logged in ``workspace``."""
    return MonitorInputs(
        workspace=workspace,
        project="demo",
        spec=spec or MonitoringSpec(windows=3),
        reference=make_reference(**reference),
        now=NOW,
        root=workspace.parent,
    )


def log_traffic(workspace: Path, log: pd.DataFrame) -> pd.DataFrame:
    """Write ``log`` as the server would and return it."""
    write_log(workspace, log)
    return log
