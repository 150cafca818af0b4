"""Large-request ingest: 602 KB binary tensors through readyml's HTTP protocol vs uvicorn's.

What one server process can take in bounds GPU serving (see ``bench_gpu_serve``: one process
answered 1,000–1,300 images/s while the card could do 4,000–12,000), so this measures the
path without the card: the GPU benchmark's server (readyml's app, batching on, one process)
serving a model with almost no compute (``pool``: mean per channel, then a linear layer), on
the CPU, pinned to core 0, with one load process of 16 blocking keep-alive connections pinned
to core 1, each sending one 3×224×224 FP32 image per V2 binary-tensor request. Two protocols,
interleaved: readyml's (``readyml.serve._protocol``: a long body read by the kernel straight
into one buffer of its length, the response's head written with its body) and uvicorn's
httptools protocol (each chunk copied by the event loop and by the parser, appended to a
bytearray, copied again per ``receive``, reading paused every 64 KiB). Runs on any Linux
machine with 2 cores or more and torch installed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

import bench_gpu_serve as gpu

HERE = Path(__file__).resolve().parent
CONNECTIONS = 16
ROUNDS = int(os.environ.get("READYML_BENCH_INGEST_ROUNDS", "3"))
DURATION_S = float(os.environ.get("READYML_BENCH_SECONDS", "5"))
PROTOCOLS = ("uvicorn", "readyml")


def measure(protocol: str) -> dict[str, float]:
    """Answers per second and server CPU ms per answer for one protocol, one round."""
    port = gpu._free_port()
    env = {
        **os.environ,
        gpu.MODEL_ENV: "pool",
        gpu.HTTP_ENV: protocol,
        "READYML_BENCH_DEVICE": "cpu",
        "READYML_BENCH_SECONDS": str(DURATION_S),
    }
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, str(HERE / "bench_gpu_serve.py"), "--serve",
         "batching", str(port), "1"],
        env=env,
    )  # fmt: skip
    try:
        gpu.wait_ready(server, port, f"ingest server ({protocol})")
        load = subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, str(HERE / "bench_gpu_serve.py"), "--load",
             str(port), str(CONNECTIONS), "0"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            gpu.loaded([load])
            cpu_before = gpu._cpu_seconds(server.pid)
            counts = gpu.counted(load)
            cpu = gpu._cpu_seconds(server.pid) - cpu_before
        finally:
            load.kill()
            load.wait()
        return {
            "rate": counts["ok"] / DURATION_S,
            "cpu_ms": 1000.0 * cpu / max(counts["ok"], 1),
            "other": counts["other"],
            "batch": gpu._mean_batch(port),
        }
    finally:
        server.kill()
        server.wait()


def main() -> str:
    """Run the rounds (protocols interleaved) and return the markdown section."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return "### Large-request ingest (issue 5)\n\nSkipped: torch is not installed."
    if not {0, 1} <= os.sched_getaffinity(0):
        return "### Large-request ingest (issue 5)\n\nSkipped: needs cores 0 and 1."
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in PROTOCOLS}
    for _ in range(ROUNDS):
        for name in PROTOCOLS:
            runs[name].append(measure(name))
    lines = [
        "### Large-request ingest (issue 5)",
        "",
        f"One 3×224×224 FP32 image (602 KB) per V2 binary-tensor request to one server "
        f"process pinned to core 0 (readyml's app, batching on, a model with almost no "
        f"compute, on the CPU), {CONNECTIONS} keep-alive connections from one load process "
        f"pinned to core 1, {DURATION_S:g} s after {gpu.WARMUP_S:g} s of warm-up, "
        f"{ROUNDS} rounds with the protocols interleaved; medians. The server core is busy "
        "throughout, so answers/s is what one process can take in.",
        "",
        "| HTTP protocol | answers/s | each round | server CPU ms/answer | mean batch | non-200 |",
        "|---|---:|---|---:|---:|---:|",
    ]
    medians = {}
    for name in PROTOCOLS:
        rates = [run["rate"] for run in runs[name]]
        medians[name] = statistics.median(rates)
        label = "readyml's (body read into one buffer)" if name == "readyml" else "uvicorn's"
        lines.append(
            f"| {label} | {medians[name]:,.0f} | "
            + ", ".join(f"{rate:,.0f}" for rate in rates)
            + f" | {statistics.median(run['cpu_ms'] for run in runs[name]):.3f} | "
            f"{statistics.median(run['batch'] for run in runs[name]):.1f} | "
            f"{sum(run['other'] for run in runs[name]):.0f} |"
        )
    pairs = [r["rate"] / u["rate"] for r, u in zip(runs["readyml"], runs["uvicorn"], strict=True)]
    lines += [
        "",
        f"readyml's protocol / uvicorn's: **{medians['readyml'] / medians['uvicorn']:.2f}×** "
        "(medians; per round " + ", ".join(f"{pair:.2f}×" for pair in pairs) + ").",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
