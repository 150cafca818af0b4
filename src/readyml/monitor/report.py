"""The monitoring report as one self-contained HTML page (inline SVG charts, no scripts).

Charts: drift score per feature over windows (1 is the threshold), quality over time
(measured metric and the CBPE estimate), latency percentiles and memory over windows, latency
and memory per version; then the open alerts and every check's summary. Each chart is an
``<svg data-chart=NAME>`` whose series are ``<path class="series" data-points=N>``, so a
browser test can see that it drew data. The server mounts :func:`render_monitoring_html` at
``/ui/monitoring``.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from readyml.monitor.monitor import MonitorReport

WIDTH: Final = 640  # chart size in px
HEIGHT: Final = 240
MARGIN: Final = 44
PALETTE: Final = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:28px}
.grid{display:flex;flex-wrap:wrap;gap:18px}
figure{margin:0;border:1px solid #ddd;border-radius:6px;padding:8px}
figcaption{font-weight:600;margin-bottom:4px}
table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
.failed{color:#b00020;font-weight:600}.passed{color:#1b7f3b}.skipped{color:#777}
.critical{background:#fde2e4}.warning{background:#fff4d6}
.legend span{display:inline-block;margin-right:10px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
"""


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def line_chart(
    name: str,
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[Any]],
    *,
    threshold: float | None = None,
    unit: str = "",
) -> str:
    """An SVG line chart: one path per series over ``labels`` (None values are gaps)."""
    values = [v for s in series.values() for v in map(_finite, s) if v is not None]
    if threshold is not None:
        values.append(threshold)
    if not values or not labels:
        return _empty(name, title)
    low, high = min(0.0, min(values)), max(values)
    high = high if high > low else low + 1.0
    n = max(len(labels), 2)

    def x(i: int) -> float:
        return MARGIN + i * (WIDTH - 2 * MARGIN) / (n - 1)

    def y(v: float) -> float:
        return HEIGHT - MARGIN + (v - low) / (high - low) * (2 * MARGIN - HEIGHT)

    parts = [_axes(low, high, unit)]
    if threshold is not None:
        parts.append(
            f'<line class="threshold" x1="{MARGIN}" x2="{WIDTH - MARGIN}" y1="{y(threshold):.1f}" '
            f'y2="{y(threshold):.1f}" stroke="#b00020" stroke-dasharray="4 3"/>'
        )
    legend = []
    for k, (label, points) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        coords = [(x(i), y(v)) for i, v in enumerate(map(_finite, points)) if v is not None]
        if not coords:
            continue
        d = " ".join(
            f"{'M' if j == 0 else 'L'}{px:.1f},{py:.1f}" for j, (px, py) in enumerate(coords)
        )
        parts.append(
            f'<path class="series" data-series="{html.escape(label)}" data-points="{len(coords)}" '
            f'd="{d}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        parts += [
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{colour}"/>' for px, py in coords
        ]
        legend.append(f'<span><i style="background:{colour}"></i>{html.escape(label)}</span>')
    first, last = html.escape(labels[0][:16]), html.escape(labels[-1][:16])
    parts.append(
        f'<text x="{MARGIN}" y="{HEIGHT - 8}" font-size="10">{first}</text>'
        f'<text x="{WIDTH - MARGIN}" y="{HEIGHT - 8}" font-size="10" '
        f'text-anchor="end">{last}</text>'
    )
    return _figure(name, title, "".join(parts), "".join(legend))


def bar_chart(name: str, title: str, bars: dict[str, float | None], *, unit: str = "") -> str:
    """An SVG bar chart, one bar per key."""
    items = [(k, _finite(v)) for k, v in bars.items()]
    items = [(k, v) for k, v in items if v is not None]
    if not items:
        return _empty(name, title)
    high = max(v for _, v in items if v is not None) or 1.0
    width = (WIDTH - 2 * MARGIN) / len(items)
    parts = [_axes(0.0, high, unit)]
    rects = []
    for i, (label, value) in enumerate(items):
        assert value is not None
        h = value / high * (HEIGHT - 2 * MARGIN)
        left = MARGIN + i * width + width * 0.15
        rects.append(
            f'<rect x="{left:.1f}" y="{HEIGHT - MARGIN - h:.1f}" width="{width * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{PALETTE[i % len(PALETTE)]}"><title>{html.escape(label)}: '
            f"{value:.3g}{unit}</title></rect>"
            f'<text x="{left + width * 0.35:.1f}" y="{HEIGHT - MARGIN + 14}" font-size="10" '
            f'text-anchor="middle">{html.escape(label)}</text>'
        )
    parts.append(f'<g class="series" data-points="{len(items)}">{"".join(rects)}</g>')
    return _figure(name, title, "".join(parts), "")


def _axes(low: float, high: float, unit: str) -> str:
    return (
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" '
        f'y2="{HEIGHT - MARGIN}" stroke="#999"/>'
        f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="#999"/>'
        f'<text x="{MARGIN - 4}" y="{MARGIN + 4}" font-size="10" '
        f'text-anchor="end">{high:.3g}{unit}</text>'
        f'<text x="{MARGIN - 4}" y="{HEIGHT - MARGIN}" font-size="10" '
        f'text-anchor="end">{low:.3g}</text>'
    )


def _figure(name: str, title: str, body: str, legend: str) -> str:
    return (
        f"<figure><figcaption>{html.escape(title)}</figcaption>"
        f'<svg data-chart="{html.escape(name)}" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg" role="img">{body}</svg>'
        f'<div class="legend">{legend}</div></figure>'
    )


def _empty(name: str, title: str) -> str:
    return _figure(
        name,
        title,
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#777">no data</text>',
        "",
    )


def _charts(report: MonitorReport) -> list[str]:
    by_name = {c.check: c for c in report.checks}
    charts = []
    skew = by_name.get("skew")
    series = skew.series if skew is not None else {}
    charts.append(
        line_chart(
            "drift",
            "Drift per feature over windows (1 = threshold)",
            series.get("windows", []),
            series.get("drift_score", {}),
            threshold=1.0,
        )
    )
    quality = by_name.get("quality")
    qs = dict(quality.series) if quality is not None else {}
    windows = qs.pop("windows", [])
    charts.append(line_chart("quality", "Quality over time", windows, qs))
    perf = by_name.get("performance")
    ps = perf.series if perf is not None else {}
    charts.append(
        line_chart(
            "latency",
            "Latency over windows (served version)",
            ps.get("windows", []),
            {k: ps.get(k, []) for k in ("p50_ms", "p95_ms", "p99_ms")},
            unit=" ms",
        )
    )
    versions = ps.get("versions", {})
    charts.append(
        bar_chart(
            "latency_versions",
            "p99 latency per version",
            {f"v{v}": s.get("p99_ms") for v, s in versions.items()},
            unit=" ms",
        )
    )
    charts.append(
        line_chart(
            "memory",
            "Process memory over windows",
            ps.get("windows", []),
            {"memory_mb": ps.get("memory_mb", [])},
            unit=" MB",
        )
    )
    charts.append(
        bar_chart(
            "memory_versions",
            "Memory per version",
            {f"v{v}": s.get("memory_mb") for v, s in versions.items()},
            unit=" MB",
        )
    )
    return charts


def render_monitoring_html(report: MonitorReport) -> str:
    """The whole report as one HTML document (opens offline)."""
    e = html.escape
    alerts = "".join(
        f'<tr class="{e(a.severity)}"><td>{e(a.severity)}</td><td>{e(a.name)}</td>'
        f"<td>{e(a.labels.get('key', ''))}</td><td>{e(a.annotations.get('summary', ''))}</td>"
        f"<td>{e(a.starts_at.isoformat(timespec='seconds'))}</td></tr>"
        for a in sorted(report.alerts, key=lambda a: (a.severity != "critical", a.name))
    )
    checks = "".join(
        f'<tr><td>{e(c.test_id)}</td><td>{e(c.check)}</td><td class="{e(c.status)}">'
        f"{e(c.status)}</td><td>{e(c.summary)}</td><td>{len(c.findings)}</td></tr>"
        for c in report.checks
    )
    resolved = "".join(
        f"<li>{e(a.name)} {e(a.labels.get('key', ''))}: resolved "
        f"{e(a.ends_at.isoformat(timespec='seconds') if a.ends_at else '')}</li>"
        for a in report.resolved
    )
    data = json.dumps(report.to_dict(), default=str).replace("</", "<\\/")
    skipped = any(c.status == "skipped" for c in report.checks)
    verdict = "failed" if not report.ok else "skipped" if skipped else "passed"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>readyml monitoring: {e(report.model)}:{report.version}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>Monitoring: {e(report.project)} — {e(report.model)}:{report.version}</h1>"
        f"<p>{e(report.at.isoformat(timespec='seconds'))} · {report.rows:,} logged rows · "
        f"{len(report.alerts)} open alert(s) · "
        f'<span id="verdict" class="{verdict}">{e(report.verdict)}</span></p>'
        f'<h2>Open alerts</h2><table id="alerts"><tr><th>severity</th><th>alert</th><th>key</th>'
        f"<th>summary</th><th>since</th></tr>{alerts or '<tr><td colspan=5>none</td></tr>'}</table>"
        + (f"<h2>Resolved this run</h2><ul>{resolved}</ul>" if resolved else "")
        + f'<h2>Charts</h2><div class="grid">{"".join(_charts(report))}</div>'
        f'<h2>Checks</h2><table id="checks"><tr><th>test</th><th>check</th><th>status</th>'
        f"<th>summary</th><th>findings</th></tr>{checks}</table>"
        f'<script type="application/json" id="report-data">{data}</script>'
        "</body></html>"
    )


def write_report(report: MonitorReport, path: Path) -> Path:
    """Write the HTML report to ``path`` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_monitoring_html(report), encoding="utf-8")
    return path
