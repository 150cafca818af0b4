"""Data profiling, validation and drift at 10 M rows × 20 columns, against pandera, Great
Expectations and Evidently, in the same run (issue 3).

The data: 16 numeric columns (12 float64, three of them with 1 % NaN; 4 int64) and 4
categorical ones (3 to 50 categories), written to Parquet in a temporary folder, plus a
shifted "current" copy. Every tool reads the Parquet file and checks the same expectations
(type, nulls allowed or not, numeric range, allowed categories); readyml also profiles every
column in the same call (counts, moments, quantile, distinct-count and frequency sketches).

readyml checks the file with ``validate_file``, which reads a column at a time (two threads,
each reading, profiling and dropping one column); two more rows read the whole file first, as
an Arrow table (``read_arrow`` + ``validate_frame``, checked in place) or as a pandas frame
(``read_table``). Three floors, each followed by one numpy reduction per column: the file read
as pandas (``pd.read_parquet``, as the peers do), read whole as Arrow, and read a column at a
time on two threads (as ``validate_file`` reads).

Each measurement runs in a fresh process (``_data_tasks.py``), so its peak resident memory is
its own. CPU seconds (user + system) are reported beside wall time: the machine is shared, and
reading is dominated by the kernel faulting in fresh memory, which swings with the load. Peers
run in their own virtual environments under ``.cache/peers/`` (created here on first use):
pandera and Great Expectations with this environment's pandas, Evidently with pandas < 3,
which it needs. Evidently's DataDriftPreset runs on a 1 M-row pair because it
does not finish at 10 M (over 15 min and 19 GB here); readyml's drift runs on the same 1 M
pair and on the 10 M pair. ``READYML_BENCH_DATA_ROWS`` shrinks the data for a quick check.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

HERE = Path(__file__).resolve().parent
PEERS = HERE.parent / ".cache" / "peers"
TASKS = HERE / "_data_tasks.py"
ROWS = int(os.environ.get("READYML_BENCH_DATA_ROWS", "10000000"))
DRIFT_ROWS = min(ROWS, 1_000_000)  # Evidently's limit here (see the module docstring)
REPEATS = int(os.environ.get("READYML_BENCH_DATA_REPEATS", "3"))
TASK_TIMEOUT_S = 1800  # one peer run, at most
CATEGORIES = [
    ["a", "b", "c"],
    [f"city{j}" for j in range(20)],
    [f"k{j}" for j in range(50)],
    ["yes", "no"],
]
BATCH_SIZES = (1, 8, 64)  # rows per request in the serving-validation latency check
BATCH_CALLS = 2000  # validate_frame calls per batch size


def make_frame(n: int, *, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """The benchmark frame: 12 float, 4 int and 4 categorical columns."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(12):
        values = rng.normal(shift + i, 1 + i / 4, n)
        if i % 4 == 0:
            values[rng.random(n) < 0.01] = np.nan
        columns[f"f{i}"] = values
    for i in range(4):
        columns[f"i{i}"] = rng.integers(0, 1000 * (i + 1), n)
    for i, names in enumerate(CATEGORIES):
        codes = rng.integers(0, len(names), n)
        columns[f"c{i}"] = pd.Categorical.from_codes(codes, categories=names)
    return pd.DataFrame(columns)


def expectations() -> dict[str, Any]:
    """The checks every tool runs, as a readyml schema dict (peers translate it)."""
    features: list[dict[str, Any]] = []
    for i in range(12):
        features.append(
            {"name": f"f{i}", "type": "float", "nullable": i % 4 == 0, "min": -1e3, "max": 1e3}
        )
    for i in range(4):
        features.append(
            {"name": f"i{i}", "type": "int", "nullable": False, "min": 0, "max": 1000 * (i + 1)}
        )
    for i, names in enumerate(CATEGORIES):
        features.append(
            {"name": f"c{i}", "type": "category", "nullable": False, "categories": names}
        )
    return {"format_version": 1, "label": None, "features": features}


def ensure_peers() -> dict[str, Path]:
    """The peers' Python interpreters, creating their virtual environments on first use."""
    pins = [f"pandas=={pd.__version__}", f"numpy=={np.__version__}", f"pyarrow=={pa.__version__}"]
    wanted = {
        "validators": [*pins, "pandera", "great_expectations"],
        "evidently": ["evidently==0.7.*", "pandas<3", "pyarrow"],
    }
    pythons = {}
    for name, packages in wanted.items():
        python = PEERS / name / "bin" / "python"
        if not python.exists():
            print(f"creating {python.parent.parent} …", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(python.parent.parent)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
        pythons[name] = python
    return pythons


def run_task(python: Path, task: str, spec: Path, repeats: int) -> dict[str, Any]:
    """Run one task ``repeats`` times, each in a fresh process; medians and the largest peak."""
    runs = []
    for _ in range(repeats):
        done = subprocess.run(
            [str(python), str(TASKS), task, str(spec)],
            capture_output=True,
            text=True,
            timeout=TASK_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{task} failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    read = statistics.median(r["times"]["read"] for r in runs)
    work = statistics.median(r["times"]["work"] for r in runs)
    total = statistics.median(r["times"]["read"] + r["times"]["work"] for r in runs)
    cpu = statistics.median(r["cpu"]["read"] + r["cpu"]["work"] for r in runs)
    return {
        "read": read,
        "work": work,
        "total": total,
        "cpu": cpu,
        "peak_mib": max(r["peak_mib"] for r in runs),
        "baseline_mib": min(r["baseline_mib"] for r in runs),
        "runs": len(runs),
        "extra": {k: v for k, v in runs[0].items() if k not in ("times", "cpu", "peak_mib")},
    }


def batch_latency() -> dict[int, float]:
    """Median microseconds per validate_frame call on small request batches (5 columns)."""
    from readyml.data import infer_schema, validate_frame

    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {
            "temp": rng.normal(15, 5, 1000),
            "count": rng.integers(0, 100, 1000),
            "city": rng.choice(["Oslo", "Rome", "Lima"], 1000),
            "share": rng.random(1000),
            "kind": rng.choice(["a", "b"], 1000),
        }
    )
    schema = infer_schema(train)
    out = {}
    for size in BATCH_SIZES:
        batch = train.iloc[:size].reset_index(drop=True)
        for _ in range(50):
            validate_frame(batch, schema=schema)
        times = []
        for _ in range(BATCH_CALLS):
            started = time.perf_counter()
            validate_frame(batch, schema=schema)
            times.append(time.perf_counter() - started)
        out[size] = statistics.median(times) * 1e6
    return out


def main() -> str:
    """Run the benchmark and return its markdown section."""
    pythons = ensure_peers()
    here = Path(sys.executable)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = {k: folder / f"{k}.parquet" for k in ("ref", "cur", "ref_1m", "cur_1m")}
        for side, seed, shift in (("ref", 0, 0.0), ("cur", 1, 0.05)):
            frame = make_frame(ROWS, seed=seed, shift=shift)
            frame.to_parquet(paths[side])
            frame.iloc[:DRIFT_ROWS].to_parquet(paths[f"{side}_1m"])
            del frame
        specs = {
            "check": {"data": str(paths["ref"]), "schema": expectations()},
            "drift": {"reference": str(paths["ref"]), "current": str(paths["cur"])},
            "drift_1m": {"reference": str(paths["ref_1m"]), "current": str(paths["cur_1m"])},
        }
        spec_files = {}
        for name, spec in specs.items():
            spec_files[name] = folder / f"{name}.json"
            spec_files[name].write_text(json.dumps(spec), encoding="utf-8")
        once = 1 if ROWS >= 1_000_000 else REPEATS  # Evidently: ~73 s a run
        plan = [
            ("numpy", here, "numpy", "check", REPEATS),
            ("arrow", here, "arrow", "check", REPEATS),
            ("arrow_columns", here, "arrow_columns", "check", REPEATS),
            ("readyml", here, "readyml", "check", REPEATS),
            ("readyml_table", here, "readyml_table", "check", REPEATS),
            ("readyml_pandas", here, "readyml_pandas", "check", REPEATS),
            ("pandera", pythons["validators"], "pandera", "check", REPEATS),
            ("gx", pythons["validators"], "gx", "check", REPEATS),
            ("readyml_drift_1m", here, "readyml_drift", "drift_1m", REPEATS),
            ("readyml_drift_exact_1m", here, "readyml_drift_exact", "drift_1m", REPEATS),
            ("readyml_drift", here, "readyml_drift", "drift", REPEATS),
            ("evidently_1m", pythons["evidently"], "evidently", "drift_1m", once),
        ]
        results = {}
        for key, python, task, spec_name, repeats in plan:
            print(f"  {key} …", file=sys.stderr, flush=True)
            results[key] = run_task(python, task, spec_files[spec_name], repeats)
    return render(results, batch_latency())


def render(results: dict[str, dict[str, Any]], latency: dict[int, float]) -> str:
    """The markdown section."""
    frame_mib = float(results["numpy"]["extra"]["frame_mib"])
    mine = results["readyml"]
    drift = results["readyml_drift_1m"]
    rows_m = f"{ROWS / 1e6:g} M"
    drift_m = f"{DRIFT_ROWS / 1e6:g} M"

    def line(label: str, key: str, rows: str, versus: str | None) -> str:
        r = results[key]
        ratio = f"{r['total'] / results[versus]['total']:.1f}×" if versus else ""
        used = r["peak_mib"] - r["baseline_mib"]
        return (
            f"| {label} | {rows} | {r['read']:.2f} | {r['work']:.2f} | {r['total']:.2f} | "
            f"{r['cpu']:.2f} | {ratio} | {r['peak_mib']:.0f} | {used / frame_mib:.2f}× | "
            f"{r['runs']} |"
        )

    numpy_work = results["numpy"]["work"]
    floor = results["arrow_columns"]
    in_memory = results["readyml_table"]
    pandera = results["pandera"]
    used = (mine["peak_mib"] - mine["baseline_mib"]) / frame_mib
    lines = [
        "### Data: profile + validate, drift (issue 3)",
        "",
        f"{rows_m} rows × 20 columns (12 float64 with 1 % NaN in three, 4 int64, 4 categorical "
        f"with 3–50 categories); in memory {frame_mib:.0f} MiB. Every row reads the Parquet "
        "file in a fresh process and checks the same expectations (type, nullability, range, "
        "allowed categories); readyml also profiles every column (moments, "
        "KLL quantiles, HyperLogLog, frequent items) in the same call. Times are medians in "
        "seconds; *CPU* is the median user + system CPU seconds of read + check (all threads); "
        "*ratio* is the row's total over readyml's total for the same job; *peak* is "
        "the process's peak RSS, *data+work* is (peak − RSS before reading) / frame size. "
        "readyml's `validate_file` reads the file a column at a time, on one thread per core "
        "(at most two), each reading, profiling and dropping one column, so its *read* is part "
        "of *check*; the rows *whole table* read it first (`read_arrow`, checked in place, or "
        "`read_table` as pandas) and then run `validate_frame`. "
        f"Machine: {os.cpu_count()} cores shared with other jobs during the run, so times are "
        "noisy (±20 % between runs is usual).",
        "",
        "| tool | rows | read | check / drift | total | CPU | ratio to readyml | peak MiB "
        "| data+work | runs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        line(
            "floor: Parquet read a column at a time + one numpy pass",
            "arrow_columns",
            rows_m,
            "readyml",
        ),
        line("Arrow read whole + one numpy pass per column", "arrow", rows_m, "readyml"),
        line("pandas read + one numpy pass per column", "numpy", rows_m, "readyml"),
        line("**readyml** profile + validate the file", "readyml", rows_m, None),
        line("readyml, whole table as Arrow, then checked", "readyml_table", rows_m, "readyml"),
        line("readyml, whole table as pandas, then checked", "readyml_pandas", rows_m, "readyml"),
        line("pandera 0.35 (lazy)", "pandera", rows_m, "readyml"),
        line("Great Expectations 1.24", "gx", rows_m, "readyml"),
        line(f"**readyml** drift, profiles, {drift_m} pair", "readyml_drift_1m", drift_m, None),
        line(
            f"readyml drift, exact on frames, {drift_m} pair",
            "readyml_drift_exact_1m",
            drift_m,
            "readyml_drift_1m",
        ),
        line(
            f"Evidently 0.7 DataDriftPreset, {drift_m} pair",
            "evidently_1m",
            drift_m,
            "readyml_drift_1m",
        ),
        line(f"**readyml** drift, profiles, {rows_m} pair", "readyml_drift", rows_m, None),
        "",
        "Targets:",
        "",
        f"* vs pandera: readyml total {mine['total']:.2f} s vs {pandera['total']:.2f} s "
        f"(**{pandera['total'] / mine['total']:.2f}×** faster; CPU {mine['cpu']:.2f} s vs "
        f"{pandera['cpu']:.2f} s, **{pandera['cpu'] / mine['cpu']:.2f}×**). 10× is below the "
        f"floor: reading the file a column at a time and one numpy pass over it take "
        f"{floor['total']:.2f} s "
        f"({floor['cpu']:.2f} s CPU), so no tool that reads the file can finish in a tenth "
        f"of pandera's {pandera['total']:.2f} s; readyml's total is "
        f"{mine['total'] / floor['total']:.2f}× the floor ({mine['cpu'] / floor['cpu']:.2f}× "
        "in CPU).",
        f"* vs Great Expectations: **{results['gx']['total'] / mine['total']:.1f}×** faster.",
        f"* vs Evidently drift ({drift_m} pair, reading included): "
        f"**{results['evidently_1m']['total'] / drift['total']:.1f}×** faster.",
        f"* profiling throughput: readyml's check of the table in memory "
        f"{in_memory['work']:.2f} s vs one numpy pass {numpy_work:.3f} s "
        f"(**{in_memory['work'] / numpy_work:.1f}×**); with reading, "
        f"{mine['total']:.2f} s vs {floor['total']:.2f} s "
        f"(**{mine['total'] / floor['total']:.2f}×**).",
        f"* peak memory: data + work = **{used:.2f}×** the frame "
        f"({mine['peak_mib']:.0f} MiB peak RSS incl. {mine['baseline_mib']:.0f} MiB of "
        "interpreter and libraries).",
        "",
        "Serving-side validation (`validate_frame` on a request batch, 5-column schema, median "
        f"of {BATCH_CALLS} calls): "
        + ", ".join(f"{size} rows {us:.0f} µs" for size, us in latency.items())
        + ".",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
