"""Scale-out on Ray (issue 10): Ray Serve beside one process and ``--workers 2``; batch
prediction of 10 million rows in-process beside Ray Data.

Serving uses ``bench_serve.py``'s workload and load generator: 30 numeric features, one row
per request on ``/predict``, wrk at concurrency 1, 16 and 64, logistic regression and a
200-tree gradient boosting model. In one run: (a) one process; (b) ``--workers 2``; (c)
``--engine ray --replicas 2`` on a local Ray cluster (half a CPU each), with the HAProxy
ingress readyml turns on, and (d) the same with Ray Serve's default Python proxy. The server side is
pinned to core 0 (taskset, inherited by every Ray process) and wrk to core 1, as in
``bench_serve.py``: the comparison is at an equal CPU budget, so it measures what each
design costs, not what more cores would bring.

Batch: ``ROWS`` rows × 30 float64 features in one Parquet file (row groups of 500,000),
scored by ``BatchPrediction`` with each model, in-process and on Ray Data (2 actors, the
cluster started once and timed apart); every process may use both cores. The outputs of
the two engines are compared for equality.

Ray runs inside its own network and PID namespace (``unshare``): its services listen on
every address even when told to use loopback. Everything else runs there too, so that the
three servers and both batch engines see the same conditions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

ROWS = int(os.environ.get("READYML_BENCH_RAY_ROWS", "10000000"))
ROW_GROUP_ROWS = 500_000
RAY_ACTORS = 2
REPLICAS = 2
# A replica on the server's one core: Ray would otherwise count the machine's two CPUs.
REPLICA_CPUS = 0.5
# Seconds a Ray server may take to answer /v2/health/ready on one busy core.
RAY_START_TIMEOUT_S = 300.0
NAMESPACE = ["unshare", "--net", "--pid", "--fork", "--mount-proc"]
# Ray Serve's own default ingress, for comparison with the HAProxy one readyml asks for.
PYTHON_PROXY_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "0", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"}
HERE = Path(__file__).resolve().parent


def write_input(path: Path, rows: int, features: int) -> None:
    """``rows`` rows of standard-normal features, written a row group at a time."""
    rng = np.random.default_rng(1)
    names = [f"f{i}" for i in range(features)]
    schema = pa.schema([(name, pa.float64()) for name in names])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, ROW_GROUP_ROWS):
            block = rng.normal(size=(min(ROW_GROUP_ROWS, rows - start), features))
            writer.write_table(pa.table(dict(zip(names, block.T, strict=True)), schema=schema))


# -- inside the namespace -------------------------------------------------------------------


def serving(root: Path, row: dict[str, Any]) -> dict[str, Any]:
    """Every server at every concurrency, with the Ray server's start-up time."""
    import bench_serve

    bench_serve.START_TIMEOUT_S = RAY_START_TIMEOUT_S
    body = json.dumps([row])
    on_ray = ("--engine", "ray", "--replicas", str(REPLICAS))
    # label: (flags, environment); Ray's Python proxy is what Ray Serve uses by default.
    setups: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
        "one process": ((), {}),
        "--workers 2": (("--workers", "2"), {}),
        f"Ray Serve, {REPLICAS} replicas (HAProxy)": (on_ray, {}),
        f"Ray Serve, {REPLICAS} replicas (Python proxy)": (on_ray, PYTHON_PROXY_ENV),
    }
    table: list[dict[str, Any]] = []
    starts: dict[str, float] = {}
    for name in bench_serve.MODELS:
        for label, (flags, environment) in setups.items():
            port = bench_serve._free_port()
            command = bench_serve.readyml_command(root, port, name, *flags)
            saved = dict(os.environ)
            os.environ.update(environment)
            started = time.monotonic()
            try:
                with bench_serve.server(command, port, root, "/v2/health/ready"):
                    starts[f"{name} · {label}"] = time.monotonic() - started
                    url = f"http://127.0.0.1:{port}/predict"
                    for c in bench_serve.CONCURRENCY:
                        result = bench_serve.wrk(url, body, c, root)
                        table.append({"model": name, "server": label, "c": c, **result})
            finally:
                os.environ.clear()
                os.environ.update(saved)
    return {"serving": table, "starts": starts}


def batch(root: Path, source: Path, workdir: Path) -> dict[str, Any]:
    """Each model in-process, then on Ray Data; wall times, and whether the outputs match."""
    import bench_serve
    import ray

    from readyml.config import Project
    from readyml.predict.batch import BatchPrediction

    project = Project.load(root)
    results: list[dict[str, Any]] = []
    outputs: dict[tuple[str, str], Path] = {}
    for name in bench_serve.MODELS:
        out = workdir / f"{name}-local.parquet"
        done = BatchPrediction(engine="local").run(project, f"{name}@champion", source, out)
        results.append({"model": name, "engine": "in-process", "seconds": done.seconds})
        outputs[(name, "local")] = out
    started = time.monotonic()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
    ray_start_s = time.monotonic() - started
    try:
        for name in bench_serve.MODELS:
            out = workdir / f"{name}-ray.parquet"
            job = BatchPrediction(engine="ray", actors=RAY_ACTORS)
            done = job.run(project, f"{name}@champion", source, out)
            label = f"Ray Data, {RAY_ACTORS} actors"
            results.append({"model": name, "engine": label, "seconds": done.seconds})
            outputs[(name, "ray")] = out
    finally:
        ray.shutdown()
    same = {
        name: pq.read_table(outputs[(name, "local")]).equals(pq.read_table(outputs[(name, "ray")]))
        for name in bench_serve.MODELS
    }
    return {"batch": results, "ray_start_s": ray_start_s, "same_output": same}


def inner(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    root, workdir = Path(spec["root"]), Path(spec["workdir"])
    results: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    results |= serving(root, spec["row"])
    results |= batch(root, Path(spec["source"]), workdir)
    results["load_after"] = os.getloadavg()[0]
    Path(spec["results"]).write_text(json.dumps(results), encoding="utf-8")
    return 0


# -- the report ---------------------------------------------------------------------------


def report(results: dict[str, Any], rows: int, wall_s: float) -> str:
    serving_rows = results["serving"]
    lines = [
        "### Scale-out on Ray (issue 10)",
        "",
        "Serving: bench_serve's workload (30 numeric features, one row per request, /predict, "
        "wrk -t1 after a warm-up), server side pinned to core 0 (every Ray process "
        "included), wrk on core 1; Ray Serve: local cluster, "
        f"{REPLICAS} replicas of {REPLICA_CPUS} CPU, readyml's adaptive batcher in each.",
        "",
        "| model | server | c | req/s | p50 ms | p99 ms | req/s vs one process |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    base = {(r["model"], r["c"]): r["rps"] for r in serving_rows if r["server"] == "one process"}
    for r in serving_rows:
        ratio = r["rps"] / base[(r["model"], r["c"])]
        lines.append(
            f"| {r['model']} | {r['server']} | {r['c']} | {r['rps']:,.0f} | {r['p50']:.2f} | "
            f"{r['p99']:.2f} | {ratio:.2f}× |"
        )
    starts = ", ".join(f"{k} {v:.1f} s" for k, v in results["starts"].items())
    lines += ["", f"Time to ready: {starts}.", ""]
    lines += [
        f"Batch prediction: {rows:,} rows × 30 float64 features, one Parquet file "
        f"({ROW_GROUP_ROWS:,}-row groups), 65,536-row batches, both cores for every engine; "
        "wall time includes loading the model (and, on Ray, starting the actors), not the "
        f"Ray cluster itself ({results['ray_start_s']:.1f} s to start, once).",
        "",
        "| model | engine | wall s | rows/s | vs in-process | same output |",
        "|---|---|---:|---:|---:|---|",
    ]
    local = {r["model"]: r["seconds"] for r in results["batch"] if r["engine"] == "in-process"}
    for r in results["batch"]:
        same = "-" if r["engine"] == "in-process" else str(results["same_output"][r["model"]])
        lines.append(
            f"| {r['model']} | {r['engine']} | {r['seconds']:.1f} | "
            f"{rows / r['seconds']:,.0f} | {local[r['model']] / r['seconds']:.2f}× | {same} |"
        )
    lines += [
        "",
        f"Load average (1 min) {results['load_before']:.1f} before, {results['load_after']:.1f} "
        f"after, on the 2 cores. Wall time of this benchmark: {wall_s:.0f} s.",
    ]
    return "\n".join(lines)


def main() -> str:
    """Run the benchmark in a network namespace and return its markdown section."""
    title = "### Scale-out on Ray (issue 10)\n\nSkipped: "
    missing = [tool for tool in ("wrk", "taskset", "unshare", "ip") if shutil.which(tool) is None]
    if missing:
        return title + f"{', '.join(missing)} not installed."
    try:
        import ray  # noqa: F401
    except ImportError:
        return title + "Ray is not installed (pip install 'readyml[ray]')."
    sys.path.insert(0, str(HERE))
    import bench_serve

    from readyml._ray import private_environment

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="readyml-bench-ray-") as tmp:
        root = Path(tmp)
        row = bench_serve.make_project(root)
        spec_file = root / "readyml.yaml"
        project_spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
        project_spec["serving"]["ray"] = {"replica_cpus": REPLICA_CPUS}
        spec_file.write_text(yaml.safe_dump(project_spec), encoding="utf-8")
        source = root / "rows.parquet"
        write_input(source, ROWS, bench_serve.FEATURES)
        spec = {
            "root": str(root),
            "row": row,
            "source": str(source),
            "workdir": str(root),
            "results": str(root / "results.json"),
        }
        (root / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        ray_tmp = tempfile.mkdtemp(prefix="rml-ray-")
        env = os.environ | private_environment(ray_tmp)
        script = f"ip link set lo up && exec {sys.executable} {__file__} --inner {root}/spec.json"
        try:
            done = subprocess.run(
                [*NAMESPACE, "sh", "-c", script], env=env, capture_output=True, text=True
            )
        finally:
            shutil.rmtree(ray_tmp, ignore_errors=True)
        if done.returncode != 0 or not (root / "results.json").exists():
            raise RuntimeError(f"bench_ray inner run failed:\n{done.stderr[-5000:]}")
        results = json.loads((root / "results.json").read_text(encoding="utf-8"))
    return report(results, ROWS, time.monotonic() - started)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--inner":
        sys.path.insert(0, str(HERE))
        raise SystemExit(inner(sys.argv[2]))
    print(main())
