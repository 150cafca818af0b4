"""Monitoring cost: 1 M logged predictions with 20 features, readyml versus Evidently.

The workload: a 3-class classifier's request log (1,000,000 rows, 16 numeric and 4
categorical features, ``proba_<class>`` columns, latency, status) in hourly Parquet partitions
as the server writes them, labels for every row fed back, and a 100,000-row training
reference. readyml runs all seven checks over one window (reading the log and labels with
DuckDB, validating, profiling, drift, skew-free distribution distance, stability,
performance, quality with labels and CBPE). Evidently 0.7 runs ``DataDriftPreset`` +
``ClassificationPreset`` on the same current data (the joined log, read from Parquet) and the
same reference. Each side runs in its own process (Evidently in its own virtual environment
under ``.cache/peers/evidently-monitor``: it needs pandas < 3); wall time includes reading
the data; peak memory is the process's maximum resident set. Target: readyml ≥ 10× faster,
under 2 GB.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import venv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
PEER = HERE.parent / ".cache" / "peers" / "evidently-monitor"
EVIDENTLY = "evidently==0.7.23"
ROWS = int(os.environ.get("READYML_BENCH_MONITOR_ROWS", "1000000"))
REFERENCE_ROWS = 100_000
NUMERIC = [f"n{i}" for i in range(16)]
CATEGORICAL = [f"c{i}" for i in range(4)]
CLASSES = ["a", "b", "c"]
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _frame(n: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {n_: rng.normal(shift, 1.0, n) for n_ in NUMERIC}
    for k, name in enumerate(CATEGORICAL):
        data[name] = rng.choice([f"v{j}" for j in range(5 + k)], n)
    frame = pd.DataFrame(data)
    score = frame[NUMERIC[:3]].to_numpy()
    logits = score + rng.normal(0, 0.5, score.shape)
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frame["target"] = np.array(CLASSES)[np.argmax(score + rng.normal(0, 1.0, score.shape), axis=1)]
    frame["prediction"] = np.array(CLASSES)[proba.argmax(axis=1)]
    for k, cls in enumerate(CLASSES):
        frame[f"proba_{cls}"] = proba[:, k]
    return frame


def prepare(folder: Path) -> None:
    """Write the log partitions, the labels and the reference into ``folder``."""
    from readyml.monitor import write_log

    reference = _frame(REFERENCE_ROWS, 0, 0.0)
    reference.to_parquet(folder / "reference.parquet")
    current = _frame(ROWS, 1, 0.1)
    log = current.drop(columns=["target"]).copy()
    log.insert(0, "request_id", [f"r{i}" for i in range(ROWS)])
    start = NOW - timedelta(hours=24)
    log.insert(1, "ts", pd.date_range(start, NOW, periods=ROWS, tz="UTC").as_unit("us"))
    log.insert(2, "model", "bench")
    log.insert(3, "version", np.int64(1))
    log["latency_ms"] = np.random.default_rng(2).gamma(2.0, 2.0, ROWS)
    log["status"] = np.int32(200)
    write_log(folder / ".readyml", log)
    (folder / ".readyml" / "feedback").mkdir()
    pq.write_table(
        pa.table(
            {
                "request_id": log["request_id"],
                "label": current["target"],
                "ts": pa.array([NOW] * ROWS, pa.timestamp("us", tz="UTC")),
                "received": pa.array([NOW] * ROWS, pa.timestamp("us", tz="UTC")),
                "seq": np.arange(ROWS),
            }
        ),
        folder / ".readyml" / "feedback" / "part-0.parquet",
    )


def run_readyml(folder: Path) -> dict[str, float]:
    """All seven checks over one window (in this process)."""
    from readyml.config import MonitoringSpec
    from readyml.data import infer_schema, profile_frame
    from readyml.monitor import Monitor, MonitorInputs, Reference

    started = time.perf_counter()
    reference_frame = pd.read_parquet(folder / "reference.parquet")
    features = [*NUMERIC, *CATEGORICAL]
    reference = Reference(
        model="bench",
        version=1,
        created_at=NOW - timedelta(days=1),
        task="classification",
        features=features,
        dtypes={f: "float64" for f in NUMERIC} | {c: "string" for c in CATEGORICAL},
        label="target",
        classes=CLASSES,
        profile=profile_frame(reference_frame[[*features, "target"]]),
        schema=infer_schema(reference_frame[features]),
        metrics={
            "accuracy": float((reference_frame["prediction"] == reference_frame["target"]).mean())
        },
        primary="accuracy",
        valid=reference_frame,
        valid_pred=reference_frame["prediction"].to_numpy(),
        valid_proba=reference_frame[[f"proba_{c}" for c in CLASSES]].to_numpy(),
    )
    inputs = MonitorInputs(
        workspace=folder / ".readyml",
        project="bench",
        spec=MonitoringSpec(lookback="2d", windows=1),
        reference=reference,
        now=NOW + timedelta(seconds=1),
        root=folder,
    )
    report = Monitor(sinks=[]).run(inputs)
    seconds = time.perf_counter() - started
    assert report.rows == ROWS, report.rows
    return {"seconds": seconds, "checks": float(len(report.checks))}


EVIDENTLY_SCRIPT = """
import glob, json, sys, time
started = time.perf_counter()
import pandas as pd
from evidently import DataDefinition, Dataset, MulticlassClassification, Report
from evidently.presets import ClassificationPreset, DataDriftPreset
folder = sys.argv[1]
numeric = [f"n{i}" for i in range(16)]
categorical = [f"c{i}" for i in range(4)]
classes = ["a", "b", "c"]
reference = pd.read_parquet(f"{folder}/reference.parquet")
files = sorted(glob.glob(f"{folder}/.readyml/logs/**/*.parquet", recursive=True))
log = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
labels = pd.read_parquet(f"{folder}/.readyml/feedback")[["request_id", "label"]]
current = log.merge(labels, on="request_id").rename(columns={"label": "target"})
definition = DataDefinition(
    numerical_columns=numeric,
    categorical_columns=categorical,
    classification=[MulticlassClassification(target="target", prediction_labels="prediction",
        prediction_probas=classes)],
)
keep = [*numeric, *categorical, "target", "prediction", *classes]
# Evidently names each probability column after its class.
probas = {f"proba_{c}": c for c in classes}
ref = Dataset.from_pandas(reference.rename(columns=probas)[keep], data_definition=definition)
cur = Dataset.from_pandas(current.rename(columns=probas)[keep], data_definition=definition)
snapshot = Report([DataDriftPreset(), ClassificationPreset()]).run(cur, ref)
snapshot.dict()
print(json.dumps({"seconds": time.perf_counter() - started, "rows": len(current)}))
"""


def _peer_python() -> Path:
    python = PEER / "bin" / "python"
    if not python.exists():
        venv.create(PEER, with_pip=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", EVIDENTLY, "pandas<3", "pyarrow"],
            check=True,
        )
    return python


def _measured(command: list[str]) -> tuple[dict[str, float], float]:
    """Run ``command`` (which prints JSON last); its result and peak RSS in MB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {done.stderr[-2000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: measure each side in a fresh order.
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result, max(peak_kb, before) / 1024


def main() -> str:
    with tempfile.TemporaryDirectory(prefix="readyml-bench-monitor-") as tmp:
        folder = Path(tmp)
        prepare(folder)
        ours, our_mb = _measured([sys.executable, __file__, "--readyml", str(folder)])
        script = folder / "evidently_run.py"
        script.write_text(EVIDENTLY_SCRIPT)
        theirs, their_mb = _measured([str(_peer_python()), str(script), str(folder)])
    speedup = theirs["seconds"] / ours["seconds"]
    return "\n".join(
        [
            f"### Monitoring {ROWS:,} logged predictions × 20 features (one window)",
            "",
            "| tool | what | wall time | peak memory |",
            "|---|---|---|---|",
            f"| readyml | all 7 checks (inputs, labels join, drift, quality, CBPE, …) | "
            f"{ours['seconds']:.2f} s | {our_mb:,.0f} MB |",
            f"| Evidently 0.7.23 | DataDriftPreset + ClassificationPreset | "
            f"{theirs['seconds']:.2f} s | {their_mb:,.0f} MB (max of both runs) |",
            "",
            f"readyml is **{speedup:.1f}×** faster (target ≥ 10×, under 2 GB).",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--readyml":
        print(json.dumps(run_readyml(Path(sys.argv[2]))))
    else:
        print(main())
