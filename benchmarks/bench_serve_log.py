"""The request log's throughput cost, with both servers sharing one core at the same time.

Per model, readyml with the request log and without it run at once, pinned to the same core,
each loaded by its own wrk (c32) on the other core for the same seconds. The kernel shares
the core between them, so the throughput ratio is the ratio of their CPU per request, and
whatever the host's speed does during a round it does to both. Sequential slices (the
serving benchmark's side-by-side cycles) swing by ±10 % on a shared host; a control pair of
two servers without the log gives this method's own spread.

Each pair is measured over several launches of its two servers, in turn started in one
order and the other, a few rounds each: two launches of the same server differ by up to 2 %
in their speed (the controls' medians of one launch ranged 0.986 to 1.003), more than
rounds within one launch do, so only an average over launches says what the log costs. The
cost is quoted against the control's ratio.
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
LAUNCHES = min(ROUNDS, int(os.environ.get("READYML_BENCH_LOG_LAUNCHES", "4")))
ROUND_S = 5
CONCURRENCY = 32  # per server: 64 in all, as the serving targets
PAIRS = {
    "control (no log / no log)": (["--no-request-log"], ["--no-request-log"]),
    "request log (log / no log)": ([], ["--no-request-log"]),
}


def measure_pair(
    root: Path, name: str, body: str, flags: tuple[list[str], list[str]]
) -> list[list[tuple[float, float]]]:
    """(req/s of the first server, req/s of the second) for each round of each launch,
    loaded at once; every other launch starts the second server first."""
    first, second = flags
    launches = []
    for launch in range(LAUNCHES):
        count = ROUNDS // LAUNCHES + (launch < ROUNDS % LAUNCHES)
        if launch % 2 == 0:
            launches.append(measure_ordered(root, name, body, (first, second), count))
        else:
            swapped = measure_ordered(root, name, body, (second, first), count)
            launches.append([(b, a) for a, b in swapped])
    return launches


def measure_ordered(
    root: Path, name: str, body: str, flags: tuple[list[str], list[str]], count: int
) -> list[tuple[float, float]]:
    """(req/s of the server started first, of the one started second) for ``count`` rounds."""
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
        for _ in range(count):
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


def launch_interval(logged: list[float], control: list[float]) -> tuple[float, float, float]:
    """The log's cost from each launch's median ratio, log pair against control pair, and a
    95 % interval (Student's t; the launches are the independent samples, rounds are not)."""
    from scipy import stats

    difference = float(np.mean(control) - np.mean(logged))
    error = float(
        np.sqrt(np.var(logged, ddof=1) / len(logged) + np.var(control, ddof=1) / len(control))
    )
    spread = float(stats.t.ppf(0.975, len(logged) + len(control) - 2)) * error
    return difference, difference - spread, difference + spread


def main() -> str:
    """Run the benchmark and return its markdown section."""
    title = "### Request-log cost on a shared core (issue 5)"
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        return f"{title}\n\nSkipped: wrk and taskset are needed (apt-get install wrk)."
    started = time.monotonic()
    measured: dict[tuple[str, str], list[list[tuple[float, float]]]] = {}
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
        f"c{CONCURRENCY}) on core {CLIENT_CORE}; {ROUNDS} rounds of {ROUND_S} s over "
        f"{LAUNCHES} launches of the pair, every other launch starting its second server "
        "first. The ratio is the first server's req/s over the second's in the same round; "
        "the median is over every round. The control's distance from 1 is the method's own "
        "bias.",
        "",
        "| model | pair | ratio (median) | median of each launch | ratio per round "
        "| req/s of the pair per round |",
        "|---|---|---:|---|---|---|",
    ]

    def ratios(launches: list[list[tuple[float, float]]]) -> list[float]:
        return [first / second for rounds in launches for first, second in rounds]

    for (name, label), launches in measured.items():
        each = ", ".join(f"{np.median(ratios([rounds])):.3f}" for rounds in launches)
        per_round = ", ".join(f"{ratio:.3f}" for ratio in ratios(launches))
        pairs = ", ".join(f"{a:,.0f}/{b:,.0f}" for rounds in launches for a, b in rounds)
        lines.append(
            f"| {name} | {label} | {np.median(ratios(launches)):.3f} | {each} | {per_round} "
            f"| {pairs} |"
        )
    lines += ["", "Request-log cost in throughput (target < 5 %), against the control:", ""]
    for name in MODELS:
        logged_launches = measured[(name, "request log (log / no log)")]
        control_launches = measured[(name, "control (no log / no log)")]
        logged = np.median(ratios(logged_launches))
        control = np.median(ratios(control_launches))
        line = (
            f"- {name}: {1 - logged / control:.1%} (medians over rounds: log / no log "
            f"{logged:.3f}; control {control:.3f})"
        )
        if LAUNCHES > 2:
            cost, low, high = launch_interval(
                [np.median(ratios([rounds])) for rounds in logged_launches],
                [np.median(ratios([rounds])) for rounds in control_launches],
            )
            line += f"; over launches {cost:.1%} (95 % interval {low:.1%} to {high:.1%})"
        lines.append(line + ".")
    lines += ["", f"Wall time of this benchmark: {time.monotonic() - started:.0f} s."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
