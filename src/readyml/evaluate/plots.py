"""Small inline SVG plots for the HTML reports: lines, horizontal bars and a heatmap.

Generated in Python as text so that a report is one self-contained file that opens offline
(no JavaScript, no CDN). Every label is escaped. Each function returns one ``<svg>`` element.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

# Plot geometry, in SVG user units (pixels).
WIDTH = 420
HEIGHT = 280
MARGIN = 44
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _open(title: str, width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" class="title">{escape(title)}</text>',
    ]


def line_chart(
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    diagonal: bool = False,
    unit_square: bool = False,
) -> str:
    """Lines (with markers when short) for each ``(label, xs, ys)``; a legend when several."""
    points = [
        (x, y)
        for _, xs, ys in series
        for x, y in zip(xs, ys, strict=False)
        if math.isfinite(x) and math.isfinite(y)
    ]
    if unit_square or not points:
        x0, x1, y0, y1 = 0.0, 1.0, 0.0, 1.0
    else:
        x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
        y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
        pad = (y1 - y0) * 0.1 or abs(y1) * 0.1 or 0.1
        y0, y1 = y0 - pad, y1 + pad
        if x1 == x0:
            x0, x1 = x0 - 1, x1 + 1
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN

    def sx(x: float) -> float:
        return MARGIN + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return HEIGHT - MARGIN - (y - y0) / (y1 - y0) * plot_h

    out = _open(title)
    out.append(
        f'<rect x="{MARGIN}" y="{MARGIN}" width="{plot_w}" height="{plot_h}" class="frame"/>'
    )
    for frac in (0.0, 0.5, 1.0):
        xv, yv = x0 + frac * (x1 - x0), y0 + frac * (y1 - y0)
        out.append(
            f'<text x="{sx(xv):.1f}" y="{HEIGHT - MARGIN + 14}" text-anchor="middle" '
            f'class="tick">{_fmt(xv)}</text>'
        )
        out.append(
            f'<text x="{MARGIN - 4}" y="{sy(yv) + 4:.1f}" text-anchor="end" '
            f'class="tick">{_fmt(yv)}</text>'
        )
    out.append(
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle" '
        f'class="axis">{escape(x_label)}</text>'
    )
    out.append(
        f'<text x="12" y="{HEIGHT / 2}" text-anchor="middle" class="axis" '
        f'transform="rotate(-90 12 {HEIGHT / 2})">{escape(y_label)}</text>'
    )
    if diagonal:
        out.append(
            f'<line x1="{sx(0):.1f}" y1="{sy(0):.1f}" x2="{sx(1):.1f}" y2="{sy(1):.1f}" '
            'class="diagonal"/>'
        )
    for k, (label, xs, ys) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        pts = [
            (sx(x), sy(y))
            for x, y in zip(xs, ys, strict=False)
            if math.isfinite(x) and math.isfinite(y)
        ]
        if not pts:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2" '
            f'class="series"><title>{escape(label)}</title></polyline>'
        )
        if len(pts) <= 20:
            out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>' for x, y in pts]
        if len(series) > 1:
            ly = MARGIN + 6 + 13 * k
            out.append(
                f'<rect x="{WIDTH - MARGIN - 96}" y="{ly}" width="9" height="9" fill="{color}"/>'
            )
            out.append(
                f'<text x="{WIDTH - MARGIN - 83}" y="{ly + 8}" class="legend">'
                f"{escape(label[:16])}</text>"
            )
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    errors: Sequence[float] | None = None,
    highlight: Sequence[bool] | None = None,
    value_label: str = "",
) -> str:
    """Horizontal bars, one per label, with optional error whiskers; ``highlight`` marks bars."""
    row_h = 20
    height = max(HEIGHT // 2, MARGIN + row_h * len(labels) + 30)
    left = 150
    plot_w = WIDTH - left - 50
    finite = [v for v in values if v is not None and math.isfinite(v)]
    spans = [
        abs(v) + (errors[i] if errors else 0.0)
        for i, v in enumerate(values)
        if v is not None and math.isfinite(v)
    ]
    lo = min([0.0, *finite]) if finite else 0.0
    hi = max([0.0, *spans]) if spans else 1.0
    lo = min(lo, -max(errors) if errors and any(v is not None and v < 0 for v in values) else lo)
    if hi == lo:
        hi = lo + 1.0

    def sx(x: float) -> float:
        return left + (x - lo) / (hi - lo) * plot_w

    out = _open(title, WIDTH, height)
    out.append(
        f'<line x1="{sx(0):.1f}" y1="{MARGIN - 6}" x2="{sx(0):.1f}" '
        f'y2="{MARGIN + row_h * len(labels)}" class="zero"/>'
    )
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = MARGIN + i * row_h
        out.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" class="tick">'
            f"{escape(str(label)[:24])}</text>"
        )
        if value is None or not math.isfinite(value):
            out.append(f'<text x="{left + 4}" y="{y + 13}" class="tick">n/a</text>')
            continue
        x_a, x_b = sorted((sx(0), sx(value)))
        cls = "bar bad" if highlight and highlight[i] else "bar"
        out.append(
            f'<rect x="{x_a:.1f}" y="{y + 3}" width="{max(x_b - x_a, 1):.1f}" '
            f'height="{row_h - 6}" class="{cls}"><title>{escape(str(label))}: '
            f"{_fmt(value)}</title></rect>"
        )
        if errors:
            err = errors[i]
            out.append(
                f'<line x1="{sx(value - err):.1f}" y1="{y + 10}" x2="{sx(value + err):.1f}" '
                f'y2="{y + 10}" class="whisker"/>'
            )
        out.append(
            f'<text x="{max(x_b, sx(0)) + 4:.1f}" y="{y + 13}" class="tick">{_fmt(value)}</text>'
        )
    if value_label:
        out.append(
            f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" '
            f'class="axis">{escape(value_label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def heatmap(
    matrix: Sequence[Sequence[int]],
    *,
    rows: Sequence[str],
    columns: Sequence[str],
    title: str,
    x_label: str = "predicted",
    y_label: str = "actual",
) -> str:
    """A count matrix as shaded cells with the counts written in them."""
    n = max(len(rows), 1)
    cell = max(18, min(48, (WIDTH - 120) // n))
    left, top = 100, MARGIN + 10
    width = left + cell * len(columns) + 20
    height = top + cell * len(rows) + 40
    peak = max((v for row in matrix for v in row), default=1) or 1
    out = _open(title, max(width, 240), height)
    for j, name in enumerate(columns):
        out.append(
            f'<text x="{left + j * cell + cell / 2}" y="{top - 6}" text-anchor="middle" '
            f'class="tick">{escape(str(name)[:8])}</text>'
        )
    for i, name in enumerate(rows):
        out.append(
            f'<text x="{left - 6}" y="{top + i * cell + cell / 2 + 4}" text-anchor="end" '
            f'class="tick">{escape(str(name)[:14])}</text>'
        )
        for j, value in enumerate(matrix[i]):
            shade = 0.08 + 0.85 * value / peak
            out.append(
                f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell}" '
                f'height="{cell}" fill="#1f77b4" fill-opacity="{shade:.2f}" class="cell">'
                f"<title>{escape(str(name))} → {escape(str(columns[j]))}: {value}</title>"
                "</rect>"
            )
            out.append(
                f'<text x="{left + j * cell + cell / 2}" y="{top + i * cell + cell / 2 + 4}"'
                f' text-anchor="middle" class="count">{value}</text>'
            )
    out.append(
        f'<text x="{left + cell * len(columns) / 2}" y="{height - 8}" text-anchor="middle" '
        f'class="axis">{escape(x_label)}</text>'
    )
    out.append(
        f'<text x="14" y="{top + cell * len(rows) / 2}" class="axis" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + cell * len(rows) / 2})">{escape(y_label)}</text>'
    )
    out.append("</svg>")
    return "\n".join(out)
