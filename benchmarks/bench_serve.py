"""Serving throughput and latency: readyml versus a naive endpoint and a bare ASGI floor.

Two models on 30 numeric features (logistic regression; gradient boosting, 200 trees), one
row per request, at concurrency 1, 16 and 64. Each server runs pinned to core 0 (taskset),
wrk to core 1, for ``DURATION_S`` seconds after a warm-up. Measured in the same run:

(a) readyml with adaptive batching (request log on), and with the request log off (c64);
(b) readyml without batching (``--no-batching``); (c) a naive FastAPI endpoint calling
``predict_proba`` on a one-row DataFrame per request; (d) a bare ASGI hello-world;
(e) the in-process ``predict_proba`` ceiling, rows per second on 10,000-row batches.

The c64 targets (share of the hello-world, request-log cost, p99) come from a side-by-side
measurement (:func:`measure_paired`): the three servers run at once and wrk alternates
between them in short slices, so the machine's drift cancels in the per-cycle ratios.

MLServer and BentoML (f, g) run from ``make bench-peers`` (``benchmarks/peers_serve.py``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from readyml.flavors.sklearn import SklearnModel
from readyml.registry import open_registry

DURATION_S = int(os.environ.get("READYML_BENCH_DURATION_S", "6"))
# This machine's speed drifts by a third from minute to minute: configurations are measured in
# interleaved rounds and the medians reported.
ROUNDS = int(os.environ.get("READYML_BENCH_ROUNDS", "1"))
# The c64 targets are measured side by side: CYCLES slices of SLICE_S seconds per server.
CYCLES = int(os.environ.get("READYML_BENCH_CYCLES", "11"))
SLICE_S = 3
HELLO = "bare ASGI hello-world"
WITH_LOG = "readyml (batching)"
NO_LOG = "readyml (batching, no request log)"
PAIRED: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    (HELLO, None),
    (WITH_LOG, ()),
    (NO_LOG, ("--no-request-log",)),
)
WARMUP_S = 2
CONCURRENCY = (1, 16, 64)
FEATURES = 30
SERVER_CORE = "0"
CLIENT_CORE = "1"
START_TIMEOUT_S = 90.0
MODELS = {
    "logreg": lambda: LogisticRegression(max_iter=1000),
    "gbm200": lambda: GradientBoostingClassifier(n_estimators=200, random_state=0),
}

NAIVE_APP = """
import pandas as pd
from fastapi import FastAPI
from readyml.flavors import load_model

model = load_model(MODEL_DIR)
app = FastAPI()


@app.post("/predict")
def predict(records: list[dict[str, float]]) -> dict:
    frame = pd.DataFrame(records)
    proba = model.predict_proba(frame)
    return {"predictions": model.classes_[proba.argmax(axis=1)].tolist(),
            "probabilities": proba.tolist()}
"""

# The hello-world runs with the settings ``readyml serve`` uses (no Server header, no proxy
# header rewriting), so that it stays the ceiling of the same stack.
UVICORN_BARE = (
    sys.executable,
    "-m",
    "uvicorn",
    "--log-level",
    "warning",
    "--no-access-log",
    "--no-server-header",
    "--no-proxy-headers",
)
HELLO_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"19")]})
    await send({"type": "http.response.body", "body": b'{"predictions":[1]}'})
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_project(root: Path) -> dict[str, Any]:
    """Register both models (version 1, champion) in a project at ``root``; return a row."""
    X, y = make_classification(
        n_samples=5000, n_features=FEATURES, n_informative=12, random_state=0
    )
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(FEATURES)])
    labels = np.where(y == 1, "yes", "no")
    serving = {"access_log": False, "request_log": {"flush_interval_s": 1.0}}
    spec = {
        "name": "logreg",
        "data": {"source": "data.csv"},
        "label": "y",
        "model": {"flavor": "sklearn", "estimator": "sklearn.linear_model.LogisticRegression"},
        "serving": serving,
    }
    (root / "readyml.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    registry = open_registry(root / ".readyml")
    for name, make in MODELS.items():
        model = SklearnModel(estimator=make()).fit(frame, labels)
        with tempfile.TemporaryDirectory() as tmp:
            written = model.save(Path(tmp))
            registry.register(
                name,
                files={p.name: p for p in written},
                model_fingerprint=name,
                signature=model.signature(),
                input_example=[frame.iloc[0].to_dict()],
                status="blessed",
            )
            registry.promote(f"{name}:1", who="bench", reason="bench")
            model.save(root / "models" / name)
    row: dict[str, Any] = frame.iloc[0].to_dict()
    return row


@contextlib.contextmanager
def server(
    command: list[str], port: int, cwd: Path, ready_path: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` pinned to the server core until ``ready_path`` answers."""
    import urllib.request

    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, *command],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}{ready_path}")
                with urllib.request.urlopen(request, timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {command}") from None
                time.sleep(0.2)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wrk(
    url: str,
    body: str,
    concurrency: int,
    lua_dir: Path,
    *,
    warmup_s: int = WARMUP_S,
    duration_s: int = DURATION_S,
) -> dict[str, float]:
    """Requests/s and p50/p99 latency (ms) from one pinned wrk run (after a warm-up run).

    Raises:
        RuntimeError: Some answers were not 2xx (their speed is not the server's).
    """
    # One script per call: two wrk runs at once must not read each other's half-written file
    # (an empty script makes wrk send GETs, answered 405 at hello-world speed).
    handle, name = tempfile.mkstemp(prefix="wrk-", suffix=".lua", dir=lua_dir)
    os.close(handle)
    script = Path(name)
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{body}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n',
        encoding="utf-8",
    )
    base = ["taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{concurrency}", "-s", str(script)]
    if warmup_s:
        subprocess.run([*base, f"-d{warmup_s}s", url], capture_output=True, check=True)
    output = subprocess.run(
        [*base, f"-d{duration_s}s", "--latency", url], capture_output=True, text=True, check=True
    ).stdout
    script.unlink()
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if bad is not None:
        raise RuntimeError(f"wrk {url}: {bad.group(1)} answers were not 2xx")
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        "errors": float("Non-2xx" in output or "Socket errors" in output),
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def ceiling(root: Path, name: str) -> float:
    """In-process ``predict_proba`` rows per second on 10,000-row batches."""
    from readyml.flavors import load_model

    model = load_model(root / "models" / name)
    frame = pd.DataFrame(
        np.random.default_rng(0).normal(size=(10_000, FEATURES)),
        columns=[f"f{i}" for i in range(FEATURES)],
    )
    model.predict_proba(frame)
    started = time.perf_counter()
    for _ in range(5):
        model.predict_proba(frame)
    return 50_000 / (time.perf_counter() - started)


def readyml_command(root: Path, port: int, name: str, *flags: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from readyml.cli.serve import app; app()",
        "--project",
        str(root),
        "--port",
        str(port),
        "--model",
        f"{name}@champion",
        "--no-access-log",
        *flags,
    ]


Results = dict[tuple[str, str, int], list[dict[str, float]]]


def measure_round(root: Path, row: dict[str, Any], results: Results) -> None:
    """Every configuration at every concurrency, once; appended to ``results``."""
    import json

    body = json.dumps([row])
    (root / "naive").mkdir(exist_ok=True)
    (root / "hello.py").write_text(HELLO_APP, encoding="utf-8")
    uvicorn = [*UVICORN_BARE]

    def run(
        key: tuple[str, str],
        command: list[str],
        port: int,
        ready: str,
        path: str,
        concurrency: tuple[int, ...] = CONCURRENCY,
    ) -> None:
        with server(command, port, root, ready):
            for c in concurrency:
                result = wrk(f"http://127.0.0.1:{port}{path}", body, c, root)
                results.setdefault((*key, c), []).append(result)

    port = _free_port()
    hello = [*uvicorn, "--app-dir", str(root), "hello:app", "--port", str(port)]
    run(("-", "bare ASGI hello-world"), hello, port, "/", "/")
    for name in MODELS:
        (root / "naive" / f"naive_{name}.py").write_text(
            NAIVE_APP.replace("MODEL_DIR", repr(str(root / "models" / name))), encoding="utf-8"
        )
        # With and without the request log back to back: their ratio is the log's cost.
        for label, flags, concurrency in (
            ("readyml (batching)", (), CONCURRENCY),
            ("readyml (batching, no request log)", ("--no-request-log",), (64,)),
            ("readyml (no batching)", ("--no-batching",), CONCURRENCY),
        ):
            port = _free_port()
            command = readyml_command(root, port, name, *flags)
            run((name, label), command, port, "/v2/health/ready", "/predict", concurrency)
        port = _free_port()
        naive = [*uvicorn, "--app-dir", str(root / "naive"), f"naive_{name}:app", "--port"]
        run((name, "naive FastAPI"), [*naive, str(port)], port, "/docs", "/predict")


Paired = dict[str, dict[str, list[dict[str, float]]]]


def measure_paired(root: Path, row: dict[str, Any]) -> Paired:
    """c64 side by side: per model, the hello-world and readyml with and without the log.

    The three servers run at once (pinned to the same core, idle when not loaded) and wrk
    alternates between them in short slices, order rotated every cycle; the per-cycle ratios
    cancel the machine's drift, which is slower than a cycle.
    """
    import json

    body = json.dumps([row])
    (root / "hello.py").write_text(HELLO_APP, encoding="utf-8")
    uvicorn = [*UVICORN_BARE]
    paired: Paired = {}
    for name in MODELS:
        with contextlib.ExitStack() as stack:
            urls: dict[str, str] = {}
            pids: dict[str, int] = {}
            for label, flags in PAIRED:
                port = _free_port()
                if flags is None:
                    command = [*uvicorn, "--app-dir", str(root), "hello:app", "--port", str(port)]
                    stack.enter_context(server(command, port, root, "/"))
                    urls[label] = f"http://127.0.0.1:{port}/"
                else:
                    command = readyml_command(root, port, name, *flags)
                    process = stack.enter_context(server(command, port, root, "/v2/health/ready"))
                    pids[label] = process.pid
                    urls[label] = f"http://127.0.0.1:{port}/predict"
            for url in urls.values():
                wrk(url, body, 64, root, warmup_s=0, duration_s=WARMUP_S)
            samples: dict[str, list[dict[str, float]]] = {label: [] for label in urls}
            labels = list(urls)
            for cycle in range(CYCLES):
                for label in labels[cycle % 3 :] + labels[: cycle % 3]:
                    before = _cpu(pids.get(label), urls[label])
                    result = wrk(urls[label], body, 64, root, warmup_s=0, duration_s=SLICE_S)
                    after = _cpu(pids.get(label), urls[label])
                    if label in pids:
                        served = result["rps"] * SLICE_S
                        result["cpu_us"] = (after[0] - before[0]) / served * 1e6
                    if label == WITH_LOG:
                        result["log_cpu_share"] = (after[1] - before[1]) / (after[0] - before[0])
                    samples[label].append(result)
            paired[name] = samples
    return paired


def _cpu(pid: int | None, url: str) -> tuple[float, float]:
    """(process CPU seconds, request-log writer CPU seconds) of a readyml server."""
    if pid is None:
        return (0.0, 0.0)
    import urllib.request

    from _machine import stat_cpu_seconds

    process_s = stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
    metrics_url = url.rsplit("/", 1)[0] + "/metrics"
    with urllib.request.urlopen(metrics_url, timeout=10) as answer:
        text = answer.read().decode()
    found = re.search(r"^readyml_request_log_cpu_seconds_total ([\d.e+-]+)$", text, re.M)
    return (process_s, float(found.group(1)) if found else 0.0)


def paired_ratio(samples: dict[str, list[dict[str, float]]], top: str, bottom: str) -> float:
    """The median over cycles of top's throughput over bottom's."""
    return float(np.median(cycle_ratios(samples, top, bottom)))


def cycle_ratios(samples: dict[str, list[dict[str, float]]], top: str, bottom: str) -> np.ndarray:
    """Top's throughput over bottom's in each cycle."""
    pairs = zip(samples[top], samples[bottom], strict=True)
    return np.array([a["rps"] / b["rps"] for a, b in pairs])


def median(results: Results, key: tuple[str, str, int], metric: str) -> float:
    """The median of one metric over the rounds."""
    return float(np.median([r[metric] for r in results[key]]))


def round_ratios(
    results: Results, top: tuple[str, str, int], bottom: tuple[str, str, int]
) -> list[float]:
    """Throughput ratio top / bottom in each round."""
    return [a["rps"] / b["rps"] for a, b in zip(results[top], results[bottom], strict=True)]


def main() -> str:
    """Run the benchmark and return its markdown section."""
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        return "### Serving (issue 5)\n\nSkipped: wrk and taskset are needed (apt-get install wrk)."
    started = time.monotonic()
    results: Results = {}
    with tempfile.TemporaryDirectory(prefix="readyml-bench-serve-") as tmp:
        root = Path(tmp)
        row = make_project(root)
        ceilings = {name: ceiling(root, name) for name in MODELS}
        paired = measure_paired(root, row)
        for _ in range(ROUNDS):
            measure_round(root, row, results)
    lines = [
        "### Serving (issue 5)",
        "",
        f"30 numeric features, one row per request; server on core {SERVER_CORE}, wrk "
        f"(-t1) on core {CLIENT_CORE} (taskset). Endpoint /predict (JSON records) for readyml "
        "and the naive server.",
        "",
        f"**c64 side by side** (the targets): per model, the hello-world and readyml with and "
        f"without the request log run at once, idle when not loaded; wrk alternates between "
        f"them in {SLICE_S} s slices, {CYCLES} cycles, order rotated each cycle. Medians over "
        "cycles; ratios are medians of the per-cycle ratios (the machine's speed drifts by a "
        "third over minutes, slower than one cycle).",
        "",
        "| model | server | req/s | p50 ms | p99 ms | req/s per cycle |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, samples in paired.items():
        for label, runs in samples.items():
            rps = np.median([r["rps"] for r in runs])
            p50 = np.median([r["p50"] for r in runs])
            p99 = np.median([r["p99"] for r in runs])
            per_cycle = ", ".join(f"{r['rps']:,.0f}" for r in runs)
            lines.append(f"| {name} | {label} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {per_cycle} |")
    lines += [
        "",
        f"**All configurations** ({ROUNDS} round(s) of every configuration, wrk for "
        f"{DURATION_S} s after a {WARMUP_S} s warm-up; medians over rounds):",
        "",
        "| model | server | c | req/s | p50 ms | p99 ms | req/s per round |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for key in sorted(results, key=lambda k: (k[0] == "-", k[0], k[1], k[2])):
        name, label, c = key
        per_round = ", ".join(f"{r['rps']:,.0f}" for r in results[key])
        lines.append(
            f"| {name} | {label} | {c} | {median(results, key, 'rps'):,.0f} "
            f"| {median(results, key, 'p50'):.2f} | {median(results, key, 'p99'):.2f} "
            f"| {per_round} |"
        )
    lines += ["", "In-process predict_proba ceiling (10,000-row batches):", ""]
    lines += [f"- {name}: {rows:,.0f} rows/s" for name, rows in ceilings.items()]
    lines += ["", "Targets at c64 (readyml with batching and the request log):", ""]
    for name in MODELS:
        samples = paired[name]
        ours = (name, WITH_LOG, 64)
        naive = (name, "naive FastAPI", 64)
        of_naive = float(np.median(round_ratios(results, ours, naive)))
        p99 = float(np.median([r["p99"] for r in samples[WITH_LOG]]))
        c1 = median(results, (name, WITH_LOG, 1), "p50")
        naive_c1 = median(results, (name, "naive FastAPI", 1), "p50")
        log_share = float(np.median([r["log_cpu_share"] for r in samples[WITH_LOG]]))
        log_costs = 1 - cycle_ratios(samples, WITH_LOG, NO_LOG)
        low, high = np.percentile(log_costs, [25, 75])
        cpu_with = float(np.median([r["cpu_us"] for r in samples[WITH_LOG]]))
        cpu_without = float(np.median([r["cpu_us"] for r in samples[NO_LOG]]))
        lines.append(
            f"- {name}: {paired_ratio(samples, WITH_LOG, HELLO):.0%} of hello-world (target ≥ "
            f"40%), p99 {p99:.1f} ms (target < 20 ms), request-log cost "
            f"{float(np.median(log_costs)):.1%} in throughput (target < 5%; quartiles over "
            f"cycles {low:.1%} to {high:.1%}; server CPU per request {cpu_with:.1f} µs with "
            f"the log, {cpu_without:.1f} µs without ({cpu_with / cpu_without - 1:+.1%}); the "
            f"log's own share of the server's CPU: {log_share:.1%}); "
            f"{of_naive:.1f}× naive FastAPI (target ≥ 5× the best peer; MLServer and BentoML: "
            f"`make bench-peers`); c1 p50 {c1:.2f} ms vs naive {naive_c1:.2f} ms."
        )
    lines += ["", f"Wall time of this benchmark: {time.monotonic() - started:.0f} s."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
