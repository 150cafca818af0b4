"""Score reports: JSON for machines, a terminal table and Markdown for people, and a
self-contained HTML page (no network, no scripts) that the server can also serve.
"""

from __future__ import annotations

import json
from typing import Literal

from jinja2 import Environment, select_autoescape

from readyml.errors import ConfigError
from readyml.score.rubric import SECTION_TITLES
from readyml.score.scoring import ScoreReport, TestScore

ReportFormat = Literal["text", "json", "markdown", "html"]
FORMATS: tuple[ReportFormat, ...] = ("text", "json", "markdown", "html")
TABLE_COLUMNS = ["section", "test", "points", "status", "evidence", "age", "how to improve"]


def report_format(value: str) -> ReportFormat:
    """Check a ``--format`` value.

    Raises:
        ConfigError: Not one of text, json, markdown, html.
    """
    for known in FORMATS:
        if value == known:
            return known
    raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, found {value!r}")


def fmt_age(seconds: float | None) -> str:
    """A short age: ``45 s``, ``12 min``, ``5 h``, ``3 d``; ``-`` for none.

    >>> fmt_age(3 * 86400 + 5)
    '3 d'
    """
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} s"


def evidence_link(score: TestScore) -> str:
    """Where the newest evidence of a test can be looked up: a link, file or run id."""
    if not score.evidence:
        return "-"
    item = score.evidence[0]
    if item.link:
        return item.link
    if item.run_id:
        return f"run {item.run_id[:12]}"
    if item.model:
        return item.model
    return item.created_at.strftime("%Y-%m-%d %H:%M")


def how_to_improve(score: TestScore) -> str:
    """What would raise the test's points, or ``""`` at full marks."""
    improve = score.test.improve
    if score.status == "automated":
        return ""
    if score.status == "automated-once":
        return f"automate it so it runs repeatedly ({score.reason}). {improve}"
    if score.status == "manual":
        return f"automate it for a full point. {improve}"
    if score.status == "failing":
        return f"fix it: {score.reason}. {improve}"
    if score.status == "stale":
        return f"run it again: {score.reason}. {improve}"
    return improve


def fmt_points(points: float) -> str:
    """``1``, ``0.5`` or ``0``."""
    return f"{points:g}"


def table_rows(report: ScoreReport) -> list[list[str]]:
    """One row per rubric test, in :data:`TABLE_COLUMNS` order."""
    return [
        [
            SECTION_TITLES[score.test.section],
            f"{score.test.id} {score.test.title}",
            fmt_points(score.points),
            score.status,
            evidence_link(score),
            fmt_age(score.last_age_s),
            how_to_improve(score),
        ]
        for score in report.tests
    ]


def summary_line(report: ScoreReport) -> str:
    """``ML Test Score 5.5 (exceptional); data 6 · model 5.5 · ...``."""
    sections = " · ".join(f"{name} {fmt_points(v)}" for name, v in report.sections.items())
    return f"ML Test Score {fmt_points(report.final)} ({report.band}); {sections}"


def unattributed_lines(report: ScoreReport) -> list[str]:
    """One line per damaged evidence row that names no rubric test (so fails none)."""
    return [
        f"{row.describe()}; it counts for no test: fix or delete it" for row in report.unattributed
    ]


def render_json(report: ScoreReport) -> str:
    """The score JSON, indented."""
    return json.dumps(report.to_dict(), indent=2, default=str) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: ScoreReport) -> str:
    """A Markdown page: summary, section sums and the 28-row table."""
    lines = [
        f"# ML Test Score: {report.project or 'project'}",
        "",
        f"**Final score: {fmt_points(report.final)}**: {report.band}.",
        "",
        f"Computed {report.computed_at:%Y-%m-%d %H:%M} UTC. The final score is the lowest "
        "section sum; a test earns 1 point when it runs automatically and repeatedly, "
        "0.5 when run once or by hand with documented results.",
        "",
        "| section | points (of 7) |",
        "|---|---|",
        *[
            f"| {SECTION_TITLES[name]} | {fmt_points(value)} |"
            for name, value in report.sections.items()
        ],
        "",
        "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|" + "---|" * len(TABLE_COLUMNS),
        *["| " + " | ".join(_cell(c) for c in row) + " |" for row in table_rows(report)],
        "",
        *[f"- Warning: {_cell(line)}" for line in unattributed_lines(report)],
    ]
    if report.unattributed:
        lines.append("")
    return "\n".join(lines)


_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ML Test Score: {{ report.project }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem; color: #1d2430; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
.final { font-size: 2.5rem; font-weight: 700; }
.band { color: #4a5568; font-size: 1.1rem; }
.sections { display: grid; grid-template-columns: repeat(4, minmax(8rem, 1fr)); gap: 1rem;
  margin: 1.5rem 0; max-width: 56rem; }
.section { border: 1px solid #d8dee9; border-radius: 6px; padding: .75rem; }
.section.lowest { border-color: #c53030; }
.bar { background: #edf2f7; height: .6rem; border-radius: 3px; margin-top: .4rem; }
.bar span { display: block; height: 100%; background: #2b6cb0; border-radius: 3px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .35rem .5rem;
  border-bottom: 1px solid #e2e8f0; }
th { background: #f7fafc; }
.status-automated { color: #276749; }
.status-automated-once, .status-manual { color: #975a16; }
.status-failing, .status-stale, .status-missing { color: #c53030; }
.muted { color: #718096; }
details summary { cursor: pointer; }
pre { white-space: pre-wrap; font-size: 12px; background: #f7fafc; padding: .4rem; }
</style>
</head>
<body>
<h1>ML Test Score: {{ report.project }}</h1>
<div class="final">{{ fmt_points(report.final) }}</div>
<div class="band">{{ report.band }}</div>
<p class="muted">Computed {{ report.computed_at.strftime("%Y-%m-%d %H:%M") }} UTC.
The final score is the lowest of the four section sums (each of 7 tests: 1 point when run
automatically and repeatedly, 0.5 when run once or by hand with documented results).</p>
<div class="sections">
{% for name, value in report.sections.items() %}
<div class="section{% if value == report.final %} lowest{% endif %}">
<strong>{{ titles[name] }}</strong> {{ fmt_points(value) }} / 7
<div class="bar"><span style="width: {{ (value / 7 * 100) | round(1) }}%"></span></div>
</div>
{% endfor %}
</div>
<table>
<thead><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>
{% for score, row in rows %}
<tr>
<td>{{ row[0] }}</td>
<td><strong>{{ score.test.id }}</strong> {{ score.test.title }}
{% if score.evidence %}<details><summary class="muted">{{ score.evidence | length }}
newest evidence</summary>
{% for item in score.evidence %}<pre>{{ item.created_at.strftime("%Y-%m-%d %H:%M") }}
{{ "passed" if item.passed else "FAILED" }}, {{ "automated" if item.automated else "manual" }},
{{ "fresh" if item.fresh else "stale" }}{% if item.run_id %}, run {{ item.run_id }}{% endif %}
{% if item.model %}model {{ item.model }}
{% endif %}{{ item.details | tojson }}</pre>{% endfor %}
</details>{% endif %}</td>
<td>{{ row[2] }}</td>
<td class="status-{{ score.status }}">{{ row[3] }}<br>
<span class="muted">{{ score.reason }}</span></td>
<td>{% if row[4].startswith("http://") or row[4].startswith("https://") %}
<a href="{{ row[4] }}">{{ row[4] }}</a>{% else %}{{ row[4] }}{% endif %}</td>
<td>{{ row[5] }}</td>
<td>{{ row[6] }}</td>
</tr>
{% endfor %}
</tbody>
</table>
{% for line in warnings %}<p class="status-failing">Warning: {{ line }}</p>
{% endfor %}</body>
</html>
"""

_ENVIRONMENT = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_TEMPLATE = _ENVIRONMENT.from_string(_HTML)


def render_score_html(report: ScoreReport) -> str:
    """A self-contained HTML page of the report (inline CSS, no scripts, opens offline).

    The server renders the same page at ``/ui/score``.
    """
    return _TEMPLATE.render(
        report=report,
        rows=list(zip(report.tests, table_rows(report), strict=True)),
        columns=TABLE_COLUMNS,
        titles=SECTION_TITLES,
        fmt_points=fmt_points,
        warnings=unattributed_lines(report),
    )


def render(report: ScoreReport, fmt: ReportFormat) -> str:
    """The report in one of the file formats (``text`` gives the Markdown table)."""
    if fmt == "json":
        return render_json(report)
    if fmt == "html":
        return render_score_html(report)
    return render_markdown(report)
