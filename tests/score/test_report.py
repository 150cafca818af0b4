"""Reports: JSON validated against the published schema, Markdown, self-contained HTML."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from readyml.errors import ConfigError
from readyml.registry import Registry
from readyml.score import (
    ScoreReport,
    compute_score,
    render_json,
    render_markdown,
    render_score_html,
    report_format,
    table_rows,
)
from readyml.score.attestations import Attestation
from readyml.score.report import fmt_age
from score.conftest import NOW, PROJECT, record, record_repeated

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "score-schema.json"


def score_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


def mixed_report(registry: Registry) -> ScoreReport:
    for n in range(1, 8):
        record_repeated(registry, f"data-{n}")
    record(registry, "model-1")
    record(registry, "infra-1", passed=False)
    record_repeated(registry, "monitor-1", days_ago=30)
    attestation = Attestation("model-2", "Ada", NOW, "compared <metrics>", "https://x/y?a=1&b=2")
    evidence = [*registry.list_evidence(PROJECT), attestation.to_evidence(PROJECT)]
    return compute_score(evidence, project=PROJECT, now=NOW)


def test_json_validates_against_the_published_schema(registry: Registry) -> None:
    data = json.loads(render_json(mixed_report(registry)))
    jsonschema.Draft202012Validator(score_schema()).validate(data)
    assert set(data) == {"final", "band", "sections", "tests"}
    assert set(data["sections"]) == {"data", "model", "infra", "monitor"}
    assert len(data["tests"]) == 28
    assert set(data["tests"][0]) == {"id", "title", "points", "automated", "status", "evidence"}


def test_json_of_an_empty_project_validates() -> None:
    data = json.loads(render_json(compute_score([], now=NOW)))
    jsonschema.Draft202012Validator(score_schema()).validate(data)


def test_the_schema_itself_is_valid() -> None:
    jsonschema.Draft202012Validator.check_schema(score_schema())


def test_schema_rejects_a_test_with_an_unknown_status(registry: Registry) -> None:
    data = json.loads(render_json(mixed_report(registry)))
    data["tests"][0]["status"] = "great"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, score_schema())


def test_table_has_28_rows_with_points_status_age_and_advice(registry: Registry) -> None:
    rows = table_rows(mixed_report(registry))
    assert len(rows) == 28
    data_1, model_1, infra_1 = rows[0], rows[7], rows[14]
    assert data_1[:4] == [
        "Data",
        "data-1 Feature expectations are captured in a schema",
        "1",
        "automated",
    ]
    assert data_1[4] == "run run-data-1-1"
    assert data_1[5] == "1 d"
    assert data_1[6] == ""
    assert model_1[2:4] == ["0.5", "automated-once"]
    assert "repeatedly" in model_1[6]
    assert infra_1[2:4] == ["0", "failing"]
    assert infra_1[6].startswith("fix it: the latest automated run failed")
    assert rows[21][3] == "stale"
    assert rows[22][4:6] == ["-", "-"]


def test_markdown_has_summary_sections_and_all_rows(registry: Registry) -> None:
    text = render_markdown(mixed_report(registry))
    assert "**Final score: 0**: more of a research project." in text
    assert "| Data | 7 |" in text
    # one line in the section table, seven in the test table
    assert sum(1 for line in text.splitlines() if line.startswith("| Monitoring |")) == 8


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.scripts = 0
        self.anchors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag in ("link", "img") and (values.get("href") or values.get("src")):
            self.external.append(str(values.get("href") or values.get("src")))
        if tag == "a":
            self.anchors.append(str(values.get("href")))


def test_html_is_self_contained_and_escapes_evidence(registry: Registry) -> None:
    page = render_score_html(mixed_report(registry))
    collector = _Collector()
    collector.feed(page)
    assert collector.scripts == 0
    assert collector.external == []
    assert collector.anchors == ["https://x/y?a=1&b=2"]
    assert "<metrics>" not in page
    assert "compared \\u003cmetrics\\u003e" in page
    assert page.count("<tr>") == 1 + 28  # header row and one row per test


def test_report_format_names_the_choices() -> None:
    assert report_format("html") == "html"
    with pytest.raises(
        ConfigError, match="expected one of text, json, markdown, html, found 'pdf'"
    ):
        report_format("pdf")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(None, "-"), (5, "5 s"), (120, "2 min"), (7200, "2 h"), (3 * 86400, "3 d"), (-4, "0 s")],
)
def test_fmt_age(seconds: float | None, expected: str) -> None:
    assert fmt_age(seconds) == expected
