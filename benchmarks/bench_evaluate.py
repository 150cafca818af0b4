"""Evaluation cost at scale: metrics, slices, baselines and bootstrap on 1 million rows.

The demo's data (Seattle weather) is resampled with noise to ``ROWS`` rows; the demo's model
(RandomForestClassifier, the demo's parameters) is fitted on 75% of them, then the evaluation
the gate needs (metrics, bootstrap interval, declared and automatic slices, dummy and linear
baselines; not importance or latency) runs on the other 25%. Target: the evaluation takes at
most 5× the fit. ``READYML_BENCH_ROWS`` reduces the size on a busy machine.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from readyml.config import parse_spec
from readyml.demo import DEMO_SPEC, seattle_weather
from readyml.evaluate import evaluate_model
from readyml.flavors import build_model

ROWS = int(os.environ.get("READYML_BENCH_ROWS", "1000000"))
FEATURES = ["precipitation", "temp_max", "temp_min", "wind", "month"]
TARGET_RATIO = 5.0


def big_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """The demo's rows, resampled to ``rows`` with small noise on the measurements."""
    base = seattle_weather()
    base["month"] = base["date"].dt.month  # as the demo project's features.py derives it
    rng = np.random.default_rng(seed)
    frame = base.iloc[rng.integers(0, len(base), size=rows)].reset_index(drop=True)
    for column in ("precipitation", "temp_max", "temp_min", "wind"):
        frame[column] = frame[column] + rng.normal(0, 0.3, size=rows)
    return frame


def main() -> str:
    """Run the benchmark and return its markdown section."""
    frame = big_frame(ROWS)
    train, valid = train_test_split(frame, test_size=0.25, random_state=42)
    spec_raw: dict[str, Any] = {**DEMO_SPEC, "data": {"source": "unused.csv"}}
    spec = parse_spec(spec_raw)
    model = build_model(
        flavor="sklearn",
        estimator=str(DEMO_SPEC["model"]["estimator"]),
        params=dict(DEMO_SPEC["model"]["params"]),
        entry_point=None,
        task="classification",
        categorical=[],
        numeric=FEATURES,
        seed=42,
    )
    started = time.perf_counter()
    model.fit(train[FEATURES], train["weather"].to_numpy())
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    evaluation = evaluate_model(
        model, train.reset_index(drop=True), valid.reset_index(drop=True), spec=spec, extras=False
    )
    eval_s = time.perf_counter() - started
    ratio = eval_s / fit_s
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in evaluation["timings_s"].items())
    return "\n".join(
        [
            "### Evaluation at scale (issue 4)",
            "",
            f"{ROWS:,} rows (demo data resampled with noise), demo RandomForestClassifier; "
            f"evaluation on {len(valid):,} validation rows: metrics, {spec.metrics.bootstrap} "
            f"bootstrap resamples, {len(evaluation['slices'])} slices, dummy and linear "
            "baselines (fitted on the training rows, linear on at most 200,000).",
            "",
            "| | wall time | ratio to fit |",
            "|---|---:|---:|",
            f"| fit the demo's model | {fit_s:.1f} s | 1.00× |",
            f"| evaluate (metrics, slices, baselines, bootstrap) | {eval_s:.1f} s | {ratio:.2f}× |",
            "",
            f"Parts: {parts}. Target: at most {TARGET_RATIO:g}× the fit: **{verdict}**.",
        ]
    )


if __name__ == "__main__":
    print(main())
