"""The ML Test Score: the 28 rubric tests, evidence queries, scoring, reports and checks.

:func:`score_project` reads a project's evidence (recorded by readyml's own components in
the registry) and its manual attestations, and scores every test: 1 point for a test run
automatically and repeatedly, 0.5 for one run once or by hand with documented results, 0 for
missing, stale or failing evidence. The final score is the lowest section sum.
:func:`render_score_html` and :func:`render_json` turn the report into pages and JSON.
"""

from __future__ import annotations

from readyml.score.attestations import (
    ATTESTATIONS_FILE,
    Attestation,
    append_attestation,
    load_attestations,
    parse_attestation,
)
from readyml.score.report import (
    render,
    render_json,
    render_markdown,
    render_score_html,
    report_format,
    summary_line,
    table_rows,
)
from readyml.score.rubric import RUBRIC, SECTIONS, RubricTest, max_age, rubric_test
from readyml.score.scoring import (
    EvidenceItem,
    ScoreReport,
    TestScore,
    band,
    compute_score,
    project_evidence,
    score_project,
    score_test,
)

__all__ = [
    "ATTESTATIONS_FILE",
    "RUBRIC",
    "SECTIONS",
    "Attestation",
    "EvidenceItem",
    "RubricTest",
    "ScoreReport",
    "TestScore",
    "append_attestation",
    "band",
    "compute_score",
    "load_attestations",
    "max_age",
    "parse_attestation",
    "project_evidence",
    "render",
    "render_json",
    "render_markdown",
    "render_score_html",
    "report_format",
    "rubric_test",
    "score_project",
    "score_test",
    "summary_line",
    "table_rows",
]
