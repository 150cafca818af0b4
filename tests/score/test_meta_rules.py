"""Data 4: meta-level rules on schema.yaml."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from readyml.config import Project
from readyml.data import FeatureSchema, Schema, write_schema
from readyml.score.meta_rules import check_meta_rules, check_project_meta
from readyml.score.rubric import rubric_test
from readyml.score.scoring import score_test
from support import write_project

TODAY = date(2026, 6, 1)


def feature(name: str, description: str = "d", **meta: object) -> FeatureSchema:
    return FeatureSchema(name, "float", description=description, meta=dict(meta))


def rules(schema: Schema, **kwargs: object) -> list[tuple[str, str]]:
    report = check_meta_rules(schema, required=["owner"], today=TODAY, **kwargs)  # type: ignore[arg-type]
    return [(v.feature, v.rule) for v in report.violations]


def test_a_complete_feature_passes() -> None:
    schema = Schema([feature("age", owner="ada", source="crm")], label=None)
    assert rules(schema, allowed_sources=["crm"]) == []


def test_missing_owner_description_and_unapproved_source_are_violations() -> None:
    schema = Schema([feature("age", description="", source="scraped")])
    assert rules(schema, allowed_sources=["crm"]) == [
        ("age", "description"),
        ("age", "required:owner"),
        ("age", "allowed_sources"),
    ]


def test_deprecated_features_must_not_be_used() -> None:
    schema = Schema(
        [
            feature("old", owner="a", deprecated="2026-01-01"),
            feature("later", owner="a", deprecated="2027-01-01"),
            feature("gone", owner="a", deprecated=True),
        ]
    )
    assert rules(schema, used={"old", "later", "gone"}) == [
        ("old", "deprecated"),
        ("gone", "deprecated"),
    ]
    assert rules(schema, used={"later"}) == []


def test_the_label_is_exempt() -> None:
    schema = Schema([feature("y", description="")], label="y")
    assert rules(schema) == []


def test_project_check_without_a_schema_fails_and_says_what_to_do(tmp_path: Path) -> None:
    project = Project.load(write_project(tmp_path))
    evidence, summary = check_project_meta(project)
    assert not evidence.passed
    assert "schema.yaml not found" in summary


def test_project_check_reads_schema_yaml(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    write_schema(Schema([feature(n) for n in names], label="species"), root / "schema.yaml")
    evidence, summary = check_project_meta(Project.load(root))
    assert not evidence.passed
    assert summary.startswith("4 violation(s); first: feature 'sepal_length': meta.owner")
    assert evidence.details["reason"] == summary
    score = score_test(rubric_test("data-4"), [evidence], now=datetime.now(UTC))
    assert score.reason == f"the latest automated run failed: {summary}"
    write_schema(
        Schema([feature(n, owner="team-a") for n in names], label="species"),
        root / "schema.yaml",
        overwrite=True,
    )
    evidence, summary = check_project_meta(Project.load(root))
    assert evidence.passed, summary
    assert "reason" not in evidence.details
    assert evidence.test_id == "data-4" and evidence.automated
