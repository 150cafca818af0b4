"""readyml's server against peer model servers (MLServer, BentoML) on the same models and load.

Run by ``make bench-peers`` (never in CI). Each peer gets its own virtual environment under
``.cache/peers/`` (created on first use; MLServer 1.7.1 needs uvloop 0.21.0 pinned, and both
get this environment's scikit-learn so the pickled models load). Two models on 30 numeric
features (logistic regression; gradient boosting, 200 trees) are served one row per request
with adaptive batching on in every server, pinned to core 0 (taskset); wrk on core 1 drives
concurrency 1, 16 and 64. The bare ASGI hello-world gives the floor of one Python process.

Because this machine's speed drifts by tens of percent from minute to minute, the
configurations run in interleaved rounds (every server once per round, the order rotated each
round) and the table reports the median over rounds. Before load, one request to each server
must answer 200 with the same probabilities as ``predict_proba`` in this process. Peers detach
workers into their own sessions, so each server is stopped by walking its process tree.

Environment: ``READYML_BENCH_DURATION_S`` (seconds per wrk run, default 8) and
``READYML_BENCH_ROUNDS`` (default 3). The section, with machine info, is appended to
``docs/benchmarks.md``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn

HERE = Path(__file__).resolve().parent
CACHE = HERE.parent / ".cache" / "peers"
RESULTS = HERE.parent / "docs" / "benchmarks.md"
sys.path.insert(0, str(HERE))

from _machine import machine_info  # noqa: E402
from bench_serve import (  # noqa: E402
    CLIENT_CORE,
    CONCURRENCY,
    DURATION_S,
    FEATURES,
    HELLO_APP,
    MODELS,
    SERVER_CORE,
    WARMUP_S,
    _free_port,
    _ms,
    make_project,
    readyml_command,
)

ROUNDS = int(os.environ.get("READYML_BENCH_ROUNDS", "3"))
BENTOML_VERSION = "1.4.40"  # newest release when this benchmark was written (2026-11)
PEERS = {
    "mlserver": [
        "mlserver==1.7.1",
        "mlserver-sklearn==1.7.1",
        "uvloop==0.21.0",
        f"scikit-learn=={sklearn.__version__}",
    ],
    "bentoml": [f"bentoml=={BENTOML_VERSION}", f"scikit-learn=={sklearn.__version__}"],
}
VERSIONS = {
    "mlserver": ["mlserver", "mlserver-sklearn", "uvloop", "scikit-learn", "numpy"],
    "bentoml": ["bentoml", "scikit-learn", "numpy"],
}
# Peers' batching: at most 64 rows per model call (wrk's highest concurrency). MLServer's
# batcher waits up to max_batch_time for a batch to fill whenever its queue runs empty, so
# this wait is a floor under its latency at c1. BentoML keeps its default max_latency_ms
# (60 s): it is a deadline past which queued requests are shed with 503, and a tight one made
# it shed a third of the requests at c64; its wait is tuned by its own optimizer.
MAX_BATCH = 64
MLSERVER_MAX_BATCH_TIME_S = 0.005
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 15.0
TOLERANCE = 1e-9

BENTO_SERVICE = """
import bentoml
import joblib
import numpy as np

MODEL = joblib.load(MODEL_PATH)
COLUMNS = COLUMN_LIST


@bentoml.service(workers=1)
class Classifier:
    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=MAX_BATCH)
    def predict(self, records: list[dict[str, float]]) -> list[list[float]]:
        rows = np.array([[r[c] for c in COLUMNS] for r in records], dtype=np.float64)
        return MODEL.predict_proba(rows).tolist()
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- peer environments ------------------------------------------------------------------


def venv(peer: str) -> Path:
    """The peer's virtual environment, created and filled on first use (or when its pins
    change); a failed install leaves no stamp, so the next run tries again."""
    folder = CACHE / peer
    python = folder / "bin" / "python"
    stamp = folder / ".readyml-installed"
    wanted = "\n".join(PEERS[peer])
    if stamp.exists() and stamp.read_text(encoding="utf-8") == wanted and python.exists():
        return folder
    log(f"installing {peer} into {folder} …")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    for command in (
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(python), "-m", "pip", "install", "--quiet", *PEERS[peer]],
    ):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if "is ignored:" not in line]
            raise RuntimeError(f"pip failed for {peer}: " + " / ".join(errors[-5:]))
    stamp.write_text(wanted, encoding="utf-8")
    return folder


def versions(peer: str) -> dict[str, str]:
    python = CACHE / peer / "bin" / "python"
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))"
    )
    out = subprocess.run(
        [str(python), "-c", code, *VERSIONS[peer]], capture_output=True, text=True, check=True
    )
    found: dict[str, str] = json.loads(out.stdout)
    return found


# --- processes --------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (to never signal a recycled PID), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _tree(root: int) -> dict[int, str]:
    """``root`` and all its descendants (also those in their own sessions), with start times."""
    table = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, check=True
    ).stdout
    children: dict[int, list[int]] = {}
    for line in table.splitlines():
        pid, ppid = (int(x) for x in line.split())
        children.setdefault(ppid, []).append(pid)
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        started = _start_time(pid)
        if started is not None:
            found[pid] = started
            todo += children.get(pid, [])
    return found


def _signal_all(processes: dict[int, str], sig: signal.Signals) -> None:
    for pid, started in processes.items():
        if _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Server:
    """One server configuration: how to start it, check it and load it."""

    command: list[str]
    cwd: Path
    port: int
    ready: str
    path: str
    body: str
    answer: Callable[[Any], list[float]]  # the probabilities of the one row in a response
    metrics: tuple[str, str, str] | None = None  # (url path, rows series, batches series)
    metrics_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def running(server: Server, logfile: Path) -> Iterator[None]:
    """Start ``server`` pinned to the server core; stop its whole process tree afterwards."""
    with logfile.open("ab") as out:
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *server.command],
            cwd=server.cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **server.env},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                url = f"http://127.0.0.1:{server.port}{server.ready}"
                if _get(url, timeout=1.0)[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                tail = logfile.read_text(encoding="utf-8", errors="replace")[-1500:]
                raise RuntimeError(f"did not start ({' '.join(server.command[:3])}): {tail}")
            time.sleep(0.3)
        yield
    finally:
        tree = _tree(process.pid)
        # The root first, so that arbiters (BentoML's circus, MLServer) stop their workers
        # and do not restart them; then whatever is left, detached workers included.
        _signal_all({process.pid: tree[process.pid]} if process.pid in tree else {}, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_S)
        time.sleep(0.5)
        _signal_all(tree, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        for _ in range(20):
            if not _listening(server.port):
                break
            time.sleep(0.25)
        else:
            raise RuntimeError(f"port {server.port} still answers after stopping the server")


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check(server: Server, expected: list[float] | None, show: bool) -> None:
    """One request with curl: status 200 and the expected probabilities, or raise."""
    out = subprocess.run(
        [
            "curl", "-sS", "--max-time", "30", "-H", "Content-Type: application/json",
            "-d", server.body, "-w", "\n%{http_code}",
            f"http://127.0.0.1:{server.port}{server.path}",
        ],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    body, status = out.rsplit("\n", 1)
    if show:
        log(f"  one request -> {status} {body[:300]}")
    if status != "200":
        raise RuntimeError(f"answered {status}: {body[:300]}")
    if expected is not None:
        got = server.answer(json.loads(body))
        if len(got) != len(expected) or not np.allclose(got, expected, rtol=0, atol=TOLERANCE):
            raise RuntimeError(f"wrong probabilities {got}, expected {expected}")


def _series(text: str, name: str) -> float:
    """The sum of every sample of one Prometheus series (all label sets)."""
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})?\s+(\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


def batch_counters(server: Server) -> tuple[float, float] | None:
    if server.metrics is None:
        return None
    path, rows, batches = server.metrics
    port = server.metrics_port or server.port
    try:
        status, text = _get(f"http://127.0.0.1:{port}{path}")
    except OSError:
        return None
    if status != 200:
        return None
    page = text.decode("utf-8", errors="replace")
    return _series(page, rows), _series(page, batches)


def wrk(server: Server, concurrency: int, lua_dir: Path) -> dict[str, float]:
    """Requests/s (answered 2xx), p50/p99 latency (ms), errors and rows per model call."""
    script = lua_dir / f"post_{server.port}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{server.body}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n',
        encoding="utf-8",
    )
    url = f"http://127.0.0.1:{server.port}{server.path}"
    base = ["taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{concurrency}", "-s", str(script)]
    subprocess.run([*base, f"-d{WARMUP_S}s", url], capture_output=True, check=True)
    before = batch_counters(server)
    output = subprocess.run(
        [*base, f"-d{DURATION_S}s", "--latency", url], capture_output=True, text=True, check=True
    ).stdout
    after = batch_counters(server)

    def number(pattern: str) -> float:
        found = re.search(pattern, output)
        return float(found.group(1)) if found else 0.0

    requests = number(r"(\d+) requests in")
    bad = number(r"Non-2xx or 3xx responses:\s+(\d+)")
    sockets = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    rps = number(r"Requests/sec:\s+([\d.]+)")
    rows = float("nan")
    if before is not None and after is not None and after[1] > before[1]:
        rows = (after[0] - before[0]) / (after[1] - before[1])
    return {
        "rps": rps * (1 - bad / requests) if requests else 0.0,
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        "errors": bad + sockets,
        "rows_per_batch": rows,
    }


# --- server configurations --------------------------------------------------------------


def _row_values(row: dict[str, float]) -> list[float]:
    return [float(row[f"f{i}"]) for i in range(FEATURES)]


def readyml_server(root: Path, name: str, row: dict[str, float]) -> Server:
    port = _free_port()
    return Server(
        command=readyml_command(root, port, name),
        cwd=root,
        port=port,
        ready="/v2/health/ready",
        path="/predict",
        body=json.dumps([row]),
        answer=lambda body: body["probabilities"][0],
        metrics=("/metrics", "readyml_batch_size_rows_sum", "readyml_batch_size_rows_count"),
    )


def mlserver_server(root: Path, name: str, row: dict[str, float]) -> Server:
    folder = root / f"mlserver-{name}"
    (folder / name).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / f"{name}.joblib", folder / name / "model.joblib")
    port, grpc_port, metrics_port = _free_port(), _free_port(), _free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
    }
    (folder / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    model_settings = {
        "name": name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "max_batch_size": MAX_BATCH,
        "max_batch_time": MLSERVER_MAX_BATCH_TIME_S,
        "parameters": {"uri": "./model.joblib"},
    }
    (folder / name / "model-settings.json").write_text(json.dumps(model_settings), encoding="utf-8")
    body = {
        "inputs": [
            {"name": "x", "shape": [1, FEATURES], "datatype": "FP64", "data": _row_values(row)}
        ],
        "outputs": [{"name": "predict_proba"}],
    }
    return Server(
        command=[str(CACHE / "mlserver" / "bin" / "mlserver"), "start", "."],
        cwd=folder,
        port=port,
        ready=f"/v2/models/{name}/ready",
        path=f"/v2/models/{name}/infer",
        body=json.dumps(body),
        answer=lambda body: body["outputs"][0]["data"],
        # Rows: answered inference requests; batches: calls dispatched to the model worker.
        metrics=("/metrics", "model_infer_request_success_total", "parallel_request_queue_count"),
        metrics_port=metrics_port,
    )


def bentoml_server(root: Path, name: str, row: dict[str, float]) -> Server:
    folder = root / f"bentoml-{name}"
    folder.mkdir(exist_ok=True)
    (folder / "service.py").write_text(
        BENTO_SERVICE.replace("MODEL_PATH", repr(str(root / f"{name}.joblib")))
        .replace("COLUMN_LIST", repr([f"f{i}" for i in range(FEATURES)]))
        .replace("MAX_BATCH", str(MAX_BATCH)),
        encoding="utf-8",
    )
    port = _free_port()
    command = [str(CACHE / "bentoml" / "bin" / "bentoml"), "serve", "service:Classifier"]
    return Server(
        command=[*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=folder,
        port=port,
        ready="/readyz",
        path="/predict",
        body=json.dumps({"records": [row]}),
        answer=lambda body: body[0],
        metrics=(
            "/metrics",
            "bentoml_service_adaptive_batch_size_sum",
            "bentoml_service_adaptive_batch_size_count",
        ),
        env={"BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": str(root / "bentoml-home")},
    )


def hello_server(root: Path, name: str, row: dict[str, float]) -> Server:
    (root / "hello.py").write_text(HELLO_APP, encoding="utf-8")
    port = _free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "--log-level", "warning", "--no-access-log"]
    return Server(
        command=[*uvicorn, "--app-dir", str(root), "hello:app", "--port", str(port)],
        cwd=root,
        port=port,
        ready="/",
        path="/",
        body=json.dumps([row]),
        answer=lambda body: [],
    )


READYML = "readyml (batching)"
HELLO = "bare ASGI hello-world"
SERVERS: dict[str, tuple[str | None, Callable[[Path, str, dict[str, float]], Server]]] = {
    # label: (peer environment, configuration)
    READYML: (None, readyml_server),
    "MLServer": ("mlserver", mlserver_server),
    "BentoML": ("bentoml", bentoml_server),
    HELLO: (None, hello_server),
}


# --- the run ----------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    clean = [v for v in values if v == v]  # drop NaN
    return statistics.median(clean) if clean else float("nan")


def main() -> str:
    """Run the comparison and return its markdown section (with machine info)."""
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        return "### Serving peers (issue 5)\n\nSkipped: wrk and taskset are needed."
    started = time.monotonic()
    failures: dict[str, str] = {}
    installed = {"readyml": importlib.metadata.version("readyml")}
    for label, (peer, _) in SERVERS.items():
        if peer is None:
            continue
        try:
            venv(peer)
            installed |= versions(peer)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            failures[label] = f"install: {exc}"
            log(f"{label}: {failures[label]}")
    samples: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="readyml-peers-") as tmp:
        root = Path(tmp)
        log("training the models …")
        row = make_project(root)
        expected: dict[str, list[float]] = {}
        from readyml.flavors import load_model

        for name in MODELS:
            adapter: Any = load_model(root / "models" / name)
            estimator = adapter.model_
            # The project's pipeline only passes the 30 numeric columns through, in order, so
            # the peers get the final estimator and a plain numpy row.
            final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
            joblib.dump(final, root / f"{name}.joblib")
            expected[name] = final.predict_proba(np.array([_row_values(row)]))[0].tolist()
        configs = [(name, label) for name in MODELS for label in SERVERS if label != HELLO] + [
            ("-", HELLO)
        ]
        for round_index in range(ROUNDS):
            shift = round_index % len(configs)
            for name, label in configs[shift:] + configs[:shift]:
                if label in failures:
                    continue
                model = name if name != "-" else next(iter(MODELS))
                server = SERVERS[label][1](root, model, row)
                log(f"round {round_index + 1}/{ROUNDS}: {name} {label} (port {server.port})")
                logfile = root / f"{label.split()[0]}-{name}.log"
                try:
                    with running(server, logfile):
                        check(server, expected[model] if name != "-" else None, round_index == 0)
                        for c in CONCURRENCY:
                            result = wrk(server, c, root)
                            samples.setdefault((name, label, c), []).append(result)
                            log(
                                f"  c{c}: {result['rps']:,.0f} req/s, p50 {result['p50']:.2f} "
                                f"ms, p99 {result['p99']:.2f} ms, errors {result['errors']:.0f}, "
                                f"rows/batch {result['rows_per_batch']:.1f}"
                            )
                except (RuntimeError, subprocess.CalledProcessError) as exc:
                    failures[label] = f"{name}, round {round_index + 1}: {exc}"
                    log(f"  FAILED: {failures[label]}")
    return report(samples, failures, installed, time.monotonic() - started)


def report(
    samples: dict[tuple[str, str, int], list[dict[str, float]]],
    failures: dict[str, str],
    installed: dict[str, str],
    wall_s: float,
) -> str:
    med = {
        key: {m: _median([r[m] for r in runs]) for m in runs[0]} for key, runs in samples.items()
    }
    spread = {
        key: (min(r["rps"] for r in runs), max(r["rps"] for r in runs))
        for key, runs in samples.items()
    }
    lines = [
        f"## Run of {machine_info()}",
        "",
        "### Serving peers (issue 5, `make bench-peers`)",
        "",
        f"30 numeric features, one row per request, wrk -t1 for {DURATION_S} s after a "
        f"{WARMUP_S} s warm-up; server on core {SERVER_CORE}, wrk on core {CLIENT_CORE} "
        f"(taskset). {ROUNDS} interleaved rounds (each server once per round, order rotated); "
        "medians over rounds, req/s counts 2xx answers only. Every server was checked to "
        "answer one request with 200 and the same probabilities as predict_proba here.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in installed.items()) + ".",
        "",
        f"Batching: readyml defaults (adaptive, AIMD); MLServer max_batch_size {MAX_BATCH}, "
        f"max_batch_time {MLSERVER_MAX_BATCH_TIME_S * 1000:g} ms (its batcher waits that long "
        f"whenever the queue is empty); BentoML batchable API, max_batch_size {MAX_BATCH}, "
        "default max_latency_ms (60 s; a tight value sheds requests with 503). Rows/batch: "
        "mean rows per model call during the measured run, from each server's own metrics.",
        "",
        "| model | server | c | req/s (median) | req/s (min–max) | p50 ms | p99 ms | errors "
        "| rows/batch |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = [*MODELS, "-"]
    for (name, label, c), r in sorted(
        med.items(), key=lambda kv: (order.index(kv[0][0]), list(SERVERS).index(kv[0][1]), kv[0][2])
    ):
        low, high = spread[(name, label, c)]
        rows = "–" if r["rows_per_batch"] != r["rows_per_batch"] else f"{r['rows_per_batch']:.1f}"
        lines.append(
            f"| {name} | {label} | {c} | {r['rps']:,.0f} | {low:,.0f}–{high:,.0f} "
            f"| {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']:.0f} | {rows} |"
        )
    for label, why in failures.items():
        lines.append(f"| - | {label} | - | failed: {why[:300]} | | | | | |")
    lines += ["", "Ratios (medians):", ""]
    hello = med.get(("-", HELLO, 64))
    peers = [label for label in SERVERS if label not in (READYML, HELLO)]
    for name in MODELS:
        ours64 = med.get((name, READYML, 64))
        ours1 = med.get((name, READYML, 1))
        if ours64 is None or ours1 is None:
            lines.append(f"- {name}: readyml has no result.")
            continue
        peer64 = {p: med[(name, p, 64)]["rps"] for p in peers if (name, p, 64) in med}
        text = f"- {name}: "
        if peer64:
            best = max(peer64, key=lambda p: peer64[p])
            text += (
                f"readyml c64 {ours64['rps']:,.0f} req/s = {ours64['rps'] / peer64[best]:.1f}× "
                f"the best peer ({best}, {peer64[best]:,.0f}) (target ≥ 5×); "
            )
        else:
            text += "no peer result; "
        if hello is not None:
            text += f"{ours64['rps'] / hello['rps']:.0%} of hello-world at c64; "
        c1 = [
            f"{p} {med[(name, p, 1)]['p50']:.2f} ms "
            f"({med[(name, p, 1)]['p50'] / ours1['p50']:.1f}× readyml's)"
            for p in peers
            if (name, p, 1) in med
        ]
        text += f"c1 p50 readyml {ours1['p50']:.2f} ms vs " + (", ".join(c1) or "no peer") + "."
        lines.append(text)
    lines += ["", f"Wall time of this benchmark: {wall_s:.0f} s."]
    return "\n".join(lines)


if __name__ == "__main__":
    section = main()
    print(section)
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write("\n" + section + "\n")
    print(f"appended to {RESULTS.relative_to(HERE.parent)}", file=sys.stderr)
