"""Monitor 6: computational performance — latency, throughput, errors and memory per version.

From the request log of every version of the model in the lookback: latency percentiles
(p50, p95, p99), throughput (rows per second over the window's span), error rate (HTTP 5xx)
and, when the log carries ``rss_mb``, process memory (mean, and its growth in MB per hour by
least squares). A sudden jump is the served version's p99 latency or memory above
``1 + max_jump`` times the previous version's, or its latest window's p99 above the trailing
baseline (the median of its earlier windows); a slow leak is memory growth above
``max_memory_growth_mb_per_h``. The live counterparts of these checks are the Prometheus
rules written by :mod:`readyml.monitor.prometheus`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from readyml.monitor.checks._base import CheckResult, Finding, skipped, verdict
from readyml.monitor.inputs import MonitorInputs, _naive_us

PERCENTILES = (50, 95, 99)


def summarise(frame: pd.DataFrame) -> dict[str, Any]:
    """Latency percentiles, throughput, error rate and memory of some log rows."""
    latency = frame["latency_ms"].to_numpy(dtype=np.float64, na_value=np.nan)
    latency = latency[np.isfinite(latency)]
    stamps = _naive_us(pd.DatetimeIndex(frame["ts"]))
    span_s = (stamps.max() - stamps.min()) / 1e6 if len(stamps) > 1 else 0.0
    out: dict[str, Any] = {"rows": len(frame)}
    values = np.percentile(latency, PERCENTILES) if len(latency) else [np.nan] * len(PERCENTILES)
    for q, value in zip(PERCENTILES, values, strict=True):
        out[f"p{q}_ms"] = float(value)
    out["throughput_rps"] = len(frame) / span_s if span_s > 0 else None
    out["error_rate"] = float((frame["status"].to_numpy() >= 500).mean()) if len(frame) else 0.0
    if "rss_mb" in frame.columns:
        memory = frame["rss_mb"].to_numpy(dtype=np.float64, na_value=np.nan)
        ok = np.isfinite(memory)
        out["memory_mb"] = float(memory[ok].mean()) if ok.any() else None
        hours = (stamps[ok] - stamps.min()) / 3.6e9 if ok.any() else np.array([])
        out["memory_span_h"] = float(np.ptp(hours)) if len(hours) else 0.0
        if ok.sum() > 2 and np.ptp(hours) > 0:
            out["memory_growth_mb_per_h"] = float(np.polyfit(hours, memory[ok], 1)[0])
        else:
            out["memory_growth_mb_per_h"] = None
    return out


class PerformanceCheck:
    """Latency, throughput, errors and memory per version, vs previous version and baseline.

    Args:
        max_p99_latency_ms: absolute p99 bound (``None``: only relative checks).
        max_jump: relative increase that counts as a sudden jump.
        max_error_rate: share of 5xx answers allowed.
        max_memory_growth_mb_per_h: memory growth that counts as a leak.
        min_memory_span_h: least time memory must be observed over before growth is judged
            (a process warming up for a minute, extrapolated to an hour, is not a leak).
        min_requests: fewest rows a version or window needs to be compared.
    """

    name: ClassVar[str] = "performance"
    test_id: ClassVar[str] = "monitor-6"

    def __init__(
        self,
        *,
        max_p99_latency_ms: float | None = None,
        max_jump: float = 0.5,
        max_error_rate: float = 0.01,
        max_memory_growth_mb_per_h: float = 50.0,
        min_memory_span_h: float = 0.5,
        min_requests: int = 20,
    ) -> None:
        self.max_p99_latency_ms = max_p99_latency_ms
        self.max_jump = max_jump
        self.max_error_rate = max_error_rate
        self.max_memory_growth_mb_per_h = max_memory_growth_mb_per_h
        self.min_memory_span_h = min_memory_span_h
        self.min_requests = min_requests

    def run(self, inputs: MonitorInputs) -> CheckResult:
        frame = inputs.all_versions()
        served = inputs.reference.version
        if frame.empty or not (frame["version"] == served).any():
            return skipped(self.name, self.test_id, "no logged traffic of the served version")
        versions = {int(str(v)): summarise(part) for v, part in frame.groupby("version", sort=True)}
        current = versions[served]
        findings: list[Finding] = []
        self._absolute(current, findings)
        previous = self._previous(inputs, versions)
        if previous is not None:
            self._versus(current, versions[previous], f"version {previous}", "previous", findings)
        windows = self._windows(inputs, frame[frame["version"] == served])
        usable = [w for w in windows["stats"] if w["rows"] >= self.min_requests]
        if len(usable) >= 3:
            baseline = {
                "p99_ms": float(np.median([w["p99_ms"] for w in usable[:-1]])),
                "memory_mb": _median([w.get("memory_mb") for w in usable[:-1]]),
            }
            self._versus(usable[-1], baseline, "the trailing baseline", "baseline", findings)
        return verdict(
            self.name,
            self.test_id,
            findings,
            f"v{served}: p99 {current['p99_ms']:.1f} ms, error rate {current['error_rate']:.2%} "
            f"over {current['rows']:,} rows; {len(versions)} version(s) compared",
            details={"served": served, "previous": previous, "versions": versions},
            series={
                "windows": windows["starts"],
                "p50_ms": [w["p50_ms"] for w in windows["stats"]],
                "p95_ms": [w["p95_ms"] for w in windows["stats"]],
                "p99_ms": [w["p99_ms"] for w in windows["stats"]],
                "memory_mb": [w.get("memory_mb") for w in windows["stats"]],
                "throughput_rps": [w["throughput_rps"] for w in windows["stats"]],
                "versions": {
                    str(v): {
                        "p50_ms": s["p50_ms"],
                        "p99_ms": s["p99_ms"],
                        "memory_mb": s.get("memory_mb"),
                    }
                    for v, s in versions.items()
                },
            },
        )

    def _previous(self, inputs: MonitorInputs, versions: dict[int, dict[str, Any]]) -> int | None:
        served = inputs.reference.version
        candidates = [
            v for v in versions if v != served and versions[v]["rows"] >= self.min_requests
        ]
        if inputs.reference.previous_version in candidates:
            return inputs.reference.previous_version
        older = [v for v in candidates if v < served]
        return max(older) if older else None

    def _absolute(self, current: dict[str, Any], findings: list[Finding]) -> None:
        if self.max_p99_latency_ms is not None and current["p99_ms"] > self.max_p99_latency_ms:
            findings.append(
                Finding(
                    key="latency_p99",
                    message=f"p99 latency {current['p99_ms']:.1f} ms above "
                    f"{self.max_p99_latency_ms:g} ms",
                    value=current["p99_ms"],
                    threshold=self.max_p99_latency_ms,
                )
            )
        if current["error_rate"] > self.max_error_rate:
            findings.append(
                Finding(
                    key="error_rate",
                    message=f"error rate {current['error_rate']:.2%} above "
                    f"{self.max_error_rate:.2%}",
                    severity="critical",
                    value=current["error_rate"],
                    threshold=self.max_error_rate,
                )
            )
        growth = current.get("memory_growth_mb_per_h")
        observed = current.get("memory_span_h") or 0.0
        if (
            growth is not None
            and observed >= self.min_memory_span_h
            and growth > self.max_memory_growth_mb_per_h
        ):
            findings.append(
                Finding(
                    key="memory_leak",
                    message=f"memory grows {growth:.1f} MB/h "
                    f"(limit {self.max_memory_growth_mb_per_h:g})",
                    value=growth,
                    threshold=self.max_memory_growth_mb_per_h,
                )
            )

    def _versus(
        self,
        current: dict[str, Any],
        other: dict[str, Any],
        what: str,
        key: str,
        findings: list[Finding],
    ) -> None:
        for metric, unit in (("p99_ms", "ms"), ("memory_mb", "MB")):
            now, before = current.get(metric), other.get(metric)
            if now is None or before is None or not before > 0:
                continue
            if now > before * (1.0 + self.max_jump):
                findings.append(
                    Finding(
                        key=f"jump:{metric}:{key}",
                        message=f"{metric.split('_')[0]} jumped to {now:.1f} {unit} from "
                        f"{before:.1f} {unit} ({what})",
                        value=now / before - 1.0,
                        threshold=self.max_jump,
                        labels={"compared_with": key},
                    )
                )

    def _windows(self, inputs: MonitorInputs, frame: pd.DataFrame) -> dict[str, Any]:
        edges = inputs.window_edges()
        stamps = _naive_us(pd.DatetimeIndex(frame["ts"]))
        cuts = _naive_us(pd.DatetimeIndex(edges))[1:-1]
        index = np.searchsorted(cuts, stamps, side="right")
        stats = []
        for window in range(len(edges) - 1):
            part = frame[index == window]
            stats.append(
                summarise(part)
                if len(part)
                else {
                    "rows": 0,
                    "p50_ms": None,
                    "p95_ms": None,
                    "p99_ms": None,
                    "throughput_rps": None,
                }
            )
        return {"starts": [e.isoformat() for e in edges[:-1]], "stats": stats}


def _median(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, int | float)]
    return float(np.median(numbers)) if numbers else None
