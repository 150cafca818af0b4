"""The compression report: one row per version (the parent first), as JSON and HTML.

A row holds size on disk, parameters, single-thread latency at batch 1 and 64, quality overall
and per slice, parity with the parent and the gate's decision. The HTML page is one
self-contained file (inline CSS, no scripts) that opens offline.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from readyml.evaluate.metrics import HIGHER_IS_BETTER, clean
from readyml.types import JSON

JSON_FILE = "compression.json"
HTML_FILE = "compression.html"


@dataclass
class Row:
    """One version in the report."""

    ref: str
    method: str
    flavor: str
    size_bytes: int
    parameters: int | None
    latency_ms: dict[str, float]
    parent: str | None = None
    quality: JSON = field(default_factory=dict)
    parity: JSON | None = None
    gate: JSON | None = None
    details: JSON = field(default_factory=dict)

    @property
    def decision(self) -> str:
        """The gate's ``blessed`` or ``vetoed``, the registry's status of a version registered
        before (not judged again), or ``-`` (the parent)."""
        return str((self.gate or {}).get("decision", "-"))


@dataclass
class CompressionReport:
    """The parent and every compressed version made from it."""

    parent: str
    rows: list[Row] = field(default_factory=list)

    @property
    def vetoed(self) -> list[Row]:
        """Rows the gate vetoed."""
        return [row for row in self.rows if row.decision == "vetoed"]

    def to_dict(self) -> JSON:
        """JSON-friendly form (NaN becomes ``None``)."""
        result: JSON = clean({"parent": self.parent, "rows": [asdict(r) for r in self.rows]})
        return result

    def table(self) -> list[list[Any]]:
        """Header and rows of the summary table, as printed and rendered."""
        primary = str(self.rows[0].quality.get("primary", "")) if self.rows else ""
        header = [
            "version",
            "method",
            "flavor",
            "size KB",
            "parameters",
            "ms @1",
            "ms @64",
            primary,
            "worst slice",
            "parity max|Δ|",
            "same labels",
            "gate",
        ]
        body = []
        for row in self.rows:
            valid = row.quality.get("valid") or {}
            worst = _worst(row.quality.get("slices") or [], primary)
            body.append(
                [
                    row.ref + (" (existing)" if row.details.get("already_registered") else ""),
                    row.method,
                    row.flavor,
                    f"{row.size_bytes / 1024:.1f}",
                    "-" if row.parameters is None else f"{row.parameters:,}",
                    f"{row.latency_ms.get('1', float('nan')):.3f}",
                    f"{row.latency_ms.get('64', float('nan')):.3f}",
                    _number(valid.get(primary)),
                    "-" if worst is None else f"{worst[1]}: {_number(worst[0])}",
                    "-" if row.parity is None else f"{row.parity['max_abs_diff']:.2g}",
                    _same_labels(row),
                    row.decision,
                ]
            )
        return [header, *body]

    def html(self) -> str:
        """A self-contained HTML page with the summary table and each version's slices."""
        header, *body = self.table()
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
        lines = [
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
            for row in body
        ]
        details = []
        for row in self.rows:
            slices = row.quality.get("slices") or []
            primary = str(row.quality.get("primary", ""))
            cells = "".join(
                f"<tr><td>{html.escape(str(s['name']))}</td><td>{s['size']}</td>"
                f"<td>{_number((s.get('metrics') or {}).get(primary))}</td>"
                f"<td>{'yes' if s.get('judged') else 'no'}</td></tr>"
                for s in slices
            )
            reasons = "".join(
                f"<li>{html.escape(str(m))}</li>" for m in (row.gate or {}).get("failed") or []
            )
            details.append(
                f"<h3>{html.escape(row.ref)} ({html.escape(row.method)})</h3>"
                + (f"<ul class=failed>{reasons}</ul>" if reasons else "")
                + "<table><tr><th>slice</th><th>rows</th>"
                f"<th>{html.escape(primary)}</th><th>judged</th></tr>{cells}</table>"
            )
        return (
            "<!doctype html><html><head><meta charset=utf-8>"
            f"<title>compression of {html.escape(self.parent)}</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            "th{background:#f4f4f4}.failed{color:#b00}</style></head><body>"
            f"<h1>Compression of {html.escape(self.parent)}</h1>"
            "<p>Latency: median of single-thread calls on prepared inputs. Parity: against the "
            "parent on the validation split.</p>"
            f"<table><tr>{head}</tr>{''.join(lines)}</table>"
            f"<h2>Quality per slice</h2>{''.join(details)}</body></html>\n"
        )

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write ``compression.json`` and ``compression.html`` into ``directory``.

        A report whose results were all registered before leaves a report already in
        ``directory`` as it is: that one recorded how those versions were judged.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        json_path, html_path = directory / JSON_FILE, directory / HTML_FILE
        results = self.rows[1:]
        if json_path.exists() and all(r.details.get("already_registered") for r in results):
            return json_path, html_path
        json_path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        html_path.write_text(self.html(), encoding="utf-8")
        return json_path, html_path


def _worst(slices: list[JSON], primary: str) -> tuple[float, str] | None:
    """The judged slice with the worst ``primary`` value (the largest when lower is better)."""
    scored = [
        (float(s["metrics"][primary]), str(s["name"]))
        for s in slices
        if s.get("judged") and _finite((s.get("metrics") or {}).get(primary))
    ]
    if not scored:
        return None
    return min(scored) if HIGHER_IS_BETTER.get(primary, True) else max(scored)


def _same_labels(row: Row) -> str:
    """Share of identical labels; ``n/a`` for regression, which has no labels to agree on."""
    if row.parity is None:
        return "-"
    if row.quality.get("task") == "regression":
        return "n/a"
    return f"{row.parity['identical']:.2%}"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"
