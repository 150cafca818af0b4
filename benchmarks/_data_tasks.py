"""One timed task of ``bench_data``, run in a fresh process (in its own virtual environment).

Usage: ``python _data_tasks.py TASK SPEC.json`` prints one JSON line with the phase times in
seconds (setup: imports and expectations, not counted; read; work), the CPU seconds (user +
system, all threads) of each phase, the peak resident memory of the process (MiB) and the
memory after setup, before any data was read. The spec names
the Parquet files and the expectations every tool checks: per column a type, whether nulls
are allowed, a range for numbers and the allowed values of categories. Only the standard
library is imported at the top, because peers run this file in virtual environments without
readyml.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any


def rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux's ``VmHWM`` belongs to this program's address space; ``ru_maxrss`` survives
    ``exec`` and so can report the parent's peak instead.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_pandas(path: str) -> Any:
    import pandas as pd

    return pd.read_parquet(path)


def cpu_s() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    times = os.times()
    return times.user + times.system


def numpy_pass(spec: dict[str, Any], clock: Callable[[str], None]) -> dict[str, Any]:
    """The ceiling: one reduction per column (sum of numbers, bincount of category codes)."""
    import numpy as np
    import pandas  # noqa: F401  (imported during setup, as the other tasks do)

    clock("setup")
    frame = read_pandas(spec["data"])
    clock("read")
    for column in frame.columns:
        series = frame[column]
        if series.dtype == "category":
            np.bincount(series.cat.codes.to_numpy().astype(np.intp) + 1)
        else:
            np.add.reduce(series.to_numpy())
    clock("work")
    return {"frame_mib": float(frame.memory_usage(deep=True).sum()) / 2**20}


def arrow_pass(spec: dict[str, Any], clock: Callable[[str], None]) -> dict[str, Any]:
    """The floor for any tool: read the file as readyml does, one reduction per column."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.dataset  # read_table loads it on first use: setup, not reading
    import pyarrow.parquet as pq

    clock("setup")
    table = pq.read_table(spec["data"], pre_buffer=False)
    clock("read")
    for column in table.columns:
        for chunk in column.chunks:
            if pa.types.is_dictionary(chunk.type):
                np.bincount(chunk.indices.to_numpy(zero_copy_only=False).astype(np.intp))
            else:
                np.add.reduce(chunk.to_numpy(zero_copy_only=False))
    clock("work")
    return {"table_mib": table.nbytes / 2**20}


def arrow_columns_pass(spec: dict[str, Any], clock: Callable[[str], None]) -> dict[str, Any]:
    """The floor for reading a column at a time: each of two threads reads a column, reduces
    it once (as ``arrow_pass``) and lets it go, as readyml's ``validate_file`` reads."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import pandas  # noqa: F401  (pyarrow loads it to read a file's pandas metadata)
    import pyarrow as pa
    import pyarrow.parquet as pq

    footer = pq.read_metadata(spec["data"])
    names = [n for n in footer.schema.names if not n.startswith("__index_level_")]
    clock("setup")

    def reduce(name: str) -> None:
        handle = pq.ParquetFile(spec["data"], metadata=footer, pre_buffer=False)
        column = handle.read(columns=[name], use_threads=False).column(0)
        for chunk in column.chunks:
            if pa.types.is_dictionary(chunk.type):
                np.bincount(chunk.indices.to_numpy(zero_copy_only=False).astype(np.intp))
            else:
                np.add.reduce(chunk.to_numpy(zero_copy_only=False))

    clock("read")  # reading is part of the work, as for readyml
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(reduce, names))
    clock("work")
    return {}


def readyml_validate(spec: dict[str, Any], clock: Callable[[str], None]) -> dict[str, Any]:
    """readyml: profile and validate the file, read a column at a time (``validate_file``)."""
    from readyml.data import Schema, validate_file

    schema = Schema.from_dict(spec["schema"])
    clock("setup")
    clock("read")  # reading is part of the work: each column is read as it is profiled
    report = validate_file(spec["data"], schema=schema)
    clock("work")
    assert report.profile is not None and len(report.profile.columns) == report.n_columns
    return {"anomalies": len(report.anomalies)}


def readyml_validate_table(spec: dict[str, Any], clock: Callable[[str], None]) -> dict[str, Any]:
    """readyml: read the whole file as Arrow, then profile and validate it in place."""
    from readyml.data import Schema, read_arrow, validate_frame

    schema = Schema.from_dict(spec["schema"])
    clock("setup")
    table = read_arrow(spec["data"])
    clock("read")
    report = validate_frame(table, schema=schema)
    clock("work")
    assert report.profile is not None and len(report.profile.columns) == table.num_columns
    return {"anomalies": len(report.anomalies)}


def readyml_validate_pandas(spec: dict[str, Any], clock: Callable[[str], None]) -> dict[str, Any]:
    """readyml on a pandas frame (``read_table``), for comparison with the Arrow path."""
    from readyml.data import Schema, read_table, validate_frame

    schema = Schema.from_dict(spec["schema"])
    clock("setup")
    frame = read_table(spec["data"])
    clock("read")
    report = validate_frame(frame, schema=schema)
    clock("work")
    return {"anomalies": len(report.anomalies)}


def pandera_validate(spec: dict[str, Any], clock: Callable[[str], None]) -> dict[str, Any]:
    """pandera: the same expectations as a DataFrameSchema, validated lazily (all failures)."""
    import pandera.pandas as pa

    columns = {}
    for feature in spec["schema"]["features"]:
        checks = []
        if feature.get("categories") is not None:
            checks.append(pa.Check.isin(feature["categories"]))
            dtype: Any = "category"
        else:
            checks.append(pa.Check.in_range(feature["min"], feature["max"]))
            dtype = {"float": "float64", "int": "int64"}[feature["type"]]
        columns[feature["name"]] = pa.Column(dtype, checks=checks, nullable=feature["nullable"])
    schema = pa.DataFrameSchema(columns, strict=True)
    clock("setup")
    frame = read_pandas(spec["data"])
    clock("read")
    schema.validate(frame, lazy=True)
    clock("work")
    return {}


def gx_validate(spec: dict[str, Any], clock: Callable[[str], None]) -> dict[str, Any]:
    """Great Expectations: one suite with type, null, range and set expectations."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = gx.get_context(mode="ephemeral")
    batch_definition = (
        context.data_sources.add_pandas("bench")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("all")
    )
    suite = gx.ExpectationSuite(name="bench")
    for feature in spec["schema"]["features"]:
        name = feature["name"]
        if feature.get("categories") is not None:
            suite.add_expectation(
                gxe.ExpectColumnValuesToBeInSet(column=name, value_set=feature["categories"])
            )
            types = ["category", "CategoricalDtypeType"]
        else:
            suite.add_expectation(
                gxe.ExpectColumnValuesToBeBetween(
                    column=name, min_value=feature["min"], max_value=feature["max"]
                )
            )
            types = ["float64"] if feature["type"] == "float" else ["int64"]
        suite.add_expectation(gxe.ExpectColumnValuesToBeInTypeList(column=name, type_list=types))
        if not feature["nullable"]:
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=name))
    suite = context.suites.add(suite)
    clock("setup")
    frame = read_pandas(spec["data"])
    clock("read")
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
    clock("work")
    return {"success": bool(result.success)}


def evidently_drift(spec: dict[str, Any], clock: Callable[[str], None]) -> dict[str, Any]:
    """Evidently: DataDriftPreset on the reference/current pair."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    clock("setup")
    reference, current = read_pandas(spec["reference"]), read_pandas(spec["current"])
    clock("read")
    Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    clock("work")
    return {}


def readyml_drift(spec: dict[str, Any], clock: Callable[[str], None]) -> dict[str, Any]:
    """readyml: profile both files (mergeable sketches, a column at a time), test every column."""
    from readyml.data import detect_drift, profile_file

    clock("setup")
    clock("read")  # reading is part of profiling each column
    report = detect_drift(profile_file(spec["reference"]), profile_file(spec["current"]))
    clock("work")
    return {"drifted": report.n_drifted}


def readyml_drift_exact(spec: dict[str, Any], clock: Callable[[str], None]) -> dict[str, Any]:
    """readyml: exact tests on the raw frames (scipy's Wasserstein/KS on every value)."""
    from readyml.data import detect_drift, read_table

    clock("setup")
    reference, current = read_table(spec["reference"]), read_table(spec["current"])
    clock("read")
    report = detect_drift(reference, current)
    clock("work")
    return {"drifted": report.n_drifted}


TASKS: dict[str, Callable[[dict[str, Any], Callable[[str], None]], dict[str, Any]]] = {
    "numpy": numpy_pass,
    "arrow": arrow_pass,
    "arrow_columns": arrow_columns_pass,
    "readyml": readyml_validate,
    "readyml_table": readyml_validate_table,
    "readyml_pandas": readyml_validate_pandas,
    "pandera": pandera_validate,
    "gx": gx_validate,
    "evidently": evidently_drift,
    "readyml_drift": readyml_drift,
    "readyml_drift_exact": readyml_drift_exact,
}


def main(argv: list[str]) -> int:
    task, spec_path = argv
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}
    started = [time.perf_counter(), cpu_s()]
    baseline = [0.0]

    def clock(phase: str) -> None:
        """End a phase: setup (imports, expectations), read, work."""
        now, used = time.perf_counter(), cpu_s()
        times[phase], cpu[phase] = now - started[0], used - started[1]
        started[:] = [now, used]
        if phase == "setup":
            baseline[0] = rss_mib()

    extra = TASKS[task](spec, clock)
    peak = rss_mib()
    print(
        json.dumps(
            {"times": times, "cpu": cpu, "peak_mib": peak, "baseline_mib": baseline[0], **extra}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
