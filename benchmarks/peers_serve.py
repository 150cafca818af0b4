"""Peer model servers on the same models and load as ``bench_serve.py``: MLServer and BentoML.

Run by ``make bench-peers`` (never in CI): each peer gets its own virtual environment under
``.cache/peers/`` (MLServer 1.7.1 needs uvloop 0.21.0 pinned), serves the logistic
regression and the 200-tree gradient boosting with its adaptive batching, pinned to core 0,
and wrk (core 1) sends one row per request at concurrency 1, 16 and 64. The markdown section
is appended to ``docs/benchmarks.md``. Peers detach workers into their own process groups, so
each is stopped by walking its process tree.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import joblib

HERE = Path(__file__).resolve().parent
CACHE = HERE.parent / ".cache" / "peers"
RESULTS = HERE.parent / "docs" / "benchmarks.md"
sys.path.insert(0, str(HERE))

from bench_serve import (  # noqa: E402
    CONCURRENCY,
    FEATURES,
    MODELS,
    SERVER_CORE,
    _free_port,
    make_project,
    wrk,
)

PEERS = {
    "mlserver": ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0"],
    "bentoml": ["bentoml>=1.3", "scikit-learn", "pandas"],
}
MAX_BATCH = 64
MAX_LATENCY_MS = 20
START_TIMEOUT_S = 180.0

BENTO_SERVICE = """
import bentoml
import joblib
import numpy as np

MODEL = joblib.load(MODEL_PATH)
COLUMNS = COLUMN_LIST


@bentoml.service(workers=1)
class Classifier:
    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY)
    def predict(self, records: list[dict]) -> list[list[float]]:
        rows = np.array([[r[c] for c in COLUMNS] for r in records])
        return MODEL.predict_proba(rows).tolist()
"""


def venv(peer: str) -> Path:
    """The peer's virtual environment, created and filled on first use."""
    folder = CACHE / peer
    python = folder / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEERS[peer]], check=True)
    return folder


def _tree(pid: int) -> list[int]:
    children = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout.split()
    return [pid] + [p for child in children for p in _tree(int(child))]


@contextlib.contextmanager
def peer_server(command: list[str], cwd: Path, port: int, ready: str) -> Iterator[None]:
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, *command],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "BENTOML_DO_NOT_TRACK": "True"},
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready}", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"peer did not start: {command}") from None
                time.sleep(0.5)
        yield
    finally:
        for pid in reversed(_tree(process.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            for pid in reversed(_tree(process.pid)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def mlserver(root: Path, name: str, row: dict[str, float]) -> dict[int, dict[str, float]]:
    folder = root / "mlserver" / name
    folder.mkdir(parents=True)
    joblib.dump(joblib.load(root / f"{name}.joblib"), folder / "model.joblib")
    port = _free_port()
    (root / "mlserver" / "settings.json").write_text(
        json.dumps({"http_port": port, "grpc_port": _free_port(), "metrics_port": _free_port()})
    )
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": name,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "max_batch_size": MAX_BATCH,
                "max_batch_time": MAX_LATENCY_MS / 1000,
                "parameters": {"uri": "./model.joblib"},
            }
        )
    )
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, FEATURES],
                    "datatype": "FP64",
                    "data": list(row.values()),
                }
            ]
        }
    )
    binary = venv("mlserver") / "bin" / "mlserver"
    results = {}
    with peer_server([str(binary), "start", "."], root / "mlserver", port, "/v2/health/ready"):
        for c in CONCURRENCY:
            results[c] = wrk(f"http://127.0.0.1:{port}/v2/models/{name}/infer", body, c, root)
    return results


def bentoml(root: Path, name: str, row: dict[str, float]) -> dict[int, dict[str, float]]:
    folder = root / "bento" / name
    folder.mkdir(parents=True)
    (folder / "service.py").write_text(
        BENTO_SERVICE.replace("MODEL_PATH", repr(str(root / f"{name}.joblib")))
        .replace("COLUMN_LIST", repr(list(row)))
        .replace("MAX_BATCH", str(MAX_BATCH))
        .replace("MAX_LATENCY", str(MAX_LATENCY_MS * 5))
    )
    port = _free_port()
    binary = venv("bentoml") / "bin" / "bentoml"
    body = json.dumps({"records": [row]})
    results = {}
    command = [
        str(binary),
        "serve",
        "service:Classifier",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]
    with peer_server(command, folder, port, "/readyz"):
        for c in CONCURRENCY:
            results[c] = wrk(f"http://127.0.0.1:{port}/predict", body, c, root)
    return results


def main() -> str:
    with tempfile.TemporaryDirectory(prefix="readyml-peers-") as tmp:
        root = Path(tmp)
        row = make_project(root)
        for name in MODELS:
            from readyml.flavors import load_model

            adapter = load_model(root / "models" / name)
            estimator = adapter.model_
            # The peers get the bare estimator on a numpy row (no readyml preprocessing).
            final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
            joblib.dump(final, root / f"{name}.joblib")
        lines = [
            "### Serving peers (issue 5, `make bench-peers`)",
            "",
            f"Adaptive batching on (max batch {MAX_BATCH}); same models, one row per request.",
            "",
            "| model | server | c | req/s | p50 ms | p99 ms |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for name in MODELS:
            for label, run in (("MLServer 1.7.1", mlserver), ("BentoML", bentoml)):
                try:
                    results = run(root, name, row)
                except (RuntimeError, subprocess.CalledProcessError) as exc:
                    lines.append(f"| {name} | {label} | - | failed: {exc} | | |")
                    continue
                for c, r in results.items():
                    lines.append(
                        f"| {name} | {label} | {c} | {r['rps']:,.0f} | {r['p50']:.2f} "
                        f"| {r['p99']:.2f} |"
                    )
    return "\n".join(lines)


if __name__ == "__main__":
    section = main()
    print(section)
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write("\n" + section + "\n")
