"""The request log's throughput cost, with both servers sharing one core at the same time.

Per model, readyml with the request log and without it run at once, pinned to the same core,
each loaded by its own wrk (c32) on the other core for the same seconds. The kernel shares
the core between them, so the throughput ratio is the ratio of their CPU per request, and
whatever the host's speed does during a round it does to both. Sequential slices (the
serving benchmark's side-by-side cycles) swing by ±10 % on a shared host; a control pair of
two servers without the log gives this method's own spread.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_serve import (
    CLIENT_CORE,
    MODELS,
    SERVER_CORE,
    WARMUP_S,
    _free_port,
    make_project,
    readyml_command,
    server,
    wrk,
)

ROUNDS = int(os.environ.get("READYML_BENCH_LOG_ROUNDS", "8"))
ROUND_S = 5
CONCURRENCY = 32  # per server: 64 in all, as the serving targets
PAIRS = {
    "control (no log / no log)": (["--no-request-log"], ["--no-request-log"]),
    "request log (log / no log)": ([], ["--no-request-log"]),
}


def measure_pair(
    root: Path, name: str, body: str, flags: tuple[list[str], list[str]]
) -> list[tuple[float, float]]:
    """(req/s of the first server, req/s of the second) for each round, loaded at once."""
    with contextlib.ExitStack() as stack:
        urls = []
        for server_flags in flags:
            port = _free_port()
            command = readyml_command(root, port, name, *server_flags)
            stack.enter_context(server(command, port, root, "/v2/health/ready"))
            urls.append(f"http://127.0.0.1:{port}/predict")
        for url in urls:
            wrk(url, body, CONCURRENCY, root, warmup_s=0, duration_s=WARMUP_S)
        rounds = []
        for _ in range(ROUNDS):
            results: list[dict[str, Any]] = [{}, {}]

            def load(index: int, into: list[dict[str, Any]] = results) -> None:
                into[index] = wrk(
                    urls[index], body, CONCURRENCY, root, warmup_s=0, duration_s=ROUND_S
                )

            threads = [threading.Thread(target=load, args=(index,)) for index in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            rounds.append((float(results[0]["rps"]), float(results[1]["rps"])))
    return rounds


def main() -> str:
    """Run the benchmark and return its markdown section."""
    title = "### Request-log cost on a shared core (issue 5)"
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        return f"{title}\n\nSkipped: wrk and taskset are needed (apt-get install wrk)."
    started = time.monotonic()
    measured: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="readyml-bench-log-") as tmp:
        root = Path(tmp)
        body = json.dumps([make_project(root)])
        for name in MODELS:
            for label, flags in PAIRS.items():
                measured[(name, label)] = measure_pair(root, name, body, flags)
    lines = [
        title,
        "",
        f"Both servers at once on core {SERVER_CORE}, each loaded by its own wrk (-t1, "
        f"c{CONCURRENCY}) on core {CLIENT_CORE}, {ROUNDS} rounds of {ROUND_S} s; the ratio is "
        "the first server's req/s over the second's in the same round (median over rounds). "
        "The control's distance from 1 is the method's own bias.",
        "",
        "| model | pair | ratio (median) | ratio per round | req/s of the pair per round |",
        "|---|---|---:|---|---|",
    ]
    for (name, label), rounds in measured.items():
        ratios = [first / second for first, second in rounds]
        per_round = ", ".join(f"{ratio:.3f}" for ratio in ratios)
        pairs = ", ".join(f"{first:,.0f}/{second:,.0f}" for first, second in rounds)
        lines.append(f"| {name} | {label} | {np.median(ratios):.3f} | {per_round} | {pairs} |")
    lines += ["", "Request-log cost in throughput (target < 5 %), against the control:", ""]
    for name in MODELS:
        logged = np.median([a / b for a, b in measured[(name, "request log (log / no log)")]])
        control = np.median([a / b for a, b in measured[(name, "control (no log / no log)")]])
        lines.append(
            f"- {name}: {1 - logged:.1%} (log / no log {logged:.3f}; control {control:.3f})."
        )
    lines += ["", f"Wall time of this benchmark: {time.monotonic() - started:.0f} s."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
