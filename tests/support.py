"""Helpers shared by tests: small real projects written to a temporary folder, and the owner
record of a process that has ended."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sklearn.datasets import load_iris

from readyml.registry import RunOwner
from readyml.registry._owner import process_owner

IRIS_SPEC: dict[str, Any] = {
    "name": "iris",
    "seed": 7,
    "data": {"source": "data/iris.csv"},
    "label": "species",
    "split": {"method": "random", "test_size": 0.3},
    "model": {
        "flavor": "sklearn",
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"max_iter": 500},
    },
    "gates": {"rules": [{"metric": "accuracy", "min": 0.8}]},
}


def iris_frame() -> pd.DataFrame:
    """Iris with readable column names and string labels."""
    bunch = load_iris(as_frame=True)
    frame: pd.DataFrame = bunch.frame.rename(
        columns=lambda c: c.replace(" (cm)", "").replace(" ", "_")
    )
    frame["species"] = [str(bunch.target_names[t]) for t in frame.pop("target")]
    return frame


def write_project(
    root: Path, spec: dict[str, Any] | None = None, frame: pd.DataFrame | None = None
) -> Path:
    """Write a project (spec + CSV data) under ``root`` and return its directory."""
    spec = dict(IRIS_SPEC if spec is None else spec)
    (root / "data").mkdir(parents=True, exist_ok=True)
    (iris_frame() if frame is None else frame).to_csv(root / "data" / "iris.csv", index=False)
    (root / "readyml.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return root


def ended_process_owner() -> RunOwner:
    """The owner record of a process of this host that has ended (started, read, reaped)."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        return process_owner(child.pid)
    finally:
        child.communicate()  # closes its stdin: the child ends and is reaped
