"""Pipeline overhead: a full readyml run of the demo versus the same fit in a bare script.

Both run in this process, alternating, on the demo's data and estimator. The readyml run is
forced (no cache) into a fresh workspace each time, so it pays for every step: load, profile,
schema validation, split, fit, evaluation, gate, registry writes (SQLite + local artifacts)
and export. The bare script reads the CSV, splits, fits and scores. Target: readyml adds
under 1 s plus 10% over the bare fit.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from readyml.config import Project
from readyml.demo import DEMO_SPEC, create_demo_project
from readyml.train import SilentReporter, open_project_registry, run_project

REPEATS = 5


def bare_fit(csv: Path) -> float:
    """What a user would write without readyml: read, split, fit, score."""
    frame = pd.read_csv(csv)
    label = DEMO_SPEC["label"]
    X = frame.drop(columns=[label, "date"])
    y = frame[label]
    X_train, X_valid, y_train, y_valid = train_test_split(
        X, y, test_size=0.25, random_state=42, stratify=y
    )
    model = RandomForestClassifier(random_state=42, **DEMO_SPEC["model"]["params"]).fit(
        X_train, y_train
    )
    return float(accuracy_score(y_valid, model.predict(X_valid)))


def readyml_run(template: Path, scratch: Path) -> float:
    """A full forced pipeline run in a fresh copy of the demo project."""
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(template, scratch, ignore=shutil.ignore_patterns(".readyml"))
    project = Project.load(scratch)
    result = run_project(
        project, registry=open_project_registry(project), reporter=SilentReporter(), force=True
    )
    if result.error is not None:
        raise result.error
    return float(result.value("metrics")["valid"]["accuracy"])


def main() -> str:
    """Run the benchmark and return its markdown section."""
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template"
        create_demo_project(template)
        csv = template / DEMO_SPEC["data"]["source"]
        bare_fit(csv)  # warm imports and caches for both sides
        readyml_run(template, Path(tmp) / "warm")
        bare_s, full_s = [], []
        accuracies: set[tuple[float, float]] = set()
        for i in range(REPEATS):
            started = time.perf_counter()
            bare_acc = bare_fit(csv)
            bare_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            full_acc = readyml_run(template, Path(tmp) / f"run{i}")
            full_s.append(time.perf_counter() - started)
            accuracies.add((round(bare_acc, 6), round(full_acc, 6)))
    bare, full = statistics.median(bare_s), statistics.median(full_s)
    overhead = full - bare
    budget = 1.0 + 0.10 * bare
    verdict = "met" if overhead <= budget else "NOT met"
    return "\n".join(
        [
            "### Pipeline overhead (issue 2)",
            "",
            "Demo data (Seattle weather 2012–2013, 731 rows), RandomForestClassifier(200 trees), "
            f"{REPEATS} alternating repeats, medians.",
            "",
            "| | median wall time | ratio to bare |",
            "|---|---:|---:|",
            f"| bare script: read CSV, split, fit, score | {bare:.3f} s | 1.00× |",
            f"| readyml run --force (all 9 steps, records, registry, export) | {full:.3f} s "
            f"| {full / bare:.2f}× |",
            "",
            f"Overhead {overhead:.3f} s against a budget of 1 s + 10% of the bare fit "
            f"= {budget:.3f} s: **{verdict}**. "
            f"Accuracy (bare, readyml): {sorted(accuracies)}.",
        ]
    )


if __name__ == "__main__":
    print(main())
