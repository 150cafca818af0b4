"""Data 5: the privacy step finds personal data and enforces the declared handling."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from readyml.config import Project
from readyml.data import FeatureSchema, infer_schema, write_schema
from readyml.errors import DataError
from readyml.registry import Registry
from readyml.score.rubric import rubric_test
from readyml.score.scoring import score_test
from readyml.train.pipeline import Pipeline
from readyml.train.privacy_steps import (
    PrivacyControls,
    apply_privacy,
    declared_handling,
    luhn_ok,
    personal_kind,
    scan_frame,
)
from readyml.train.progress import SilentReporter
from readyml.train.steps import LoadData, ProfileData, ValidateData
from support import iris_frame, write_project


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("ada@example.org", "email"),
        ("write to bob.smith+x@mail.example.co.uk today", "email"),
        ("+1 (415) 555-2671", "phone"),
        ("020 7946 0958", "phone"),
        ("4111 1111 1111 1111", "card"),
        ("5500-0000-0000-0004", "card"),
        ("4111 1111 1111 1112", None),  # fails Luhn; 16 digits is too long for a phone
        ("2014-01-01 00:00:00", None),
        ("12345.678901", None),
        ("sun", None),
        ("1234", None),
    ],
)
def test_personal_kind(value: str, kind: str | None) -> None:
    assert personal_kind(value) == kind


def test_luhn() -> None:
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")


def people(rows: int = 40) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mail": [f"user{i}@example.org" for i in range(rows)],
            "card": [4111111111111111] * rows,
            "city": ["Oslo", "Rome"] * (rows // 2),
            "x": [float(i) for i in range(rows)],
        }
    )


def test_scan_finds_emails_and_integer_card_numbers_only() -> None:
    found = {c.column: c.kind for c in scan_frame(people())}
    assert found == {"mail": "email", "card": "card"}


def test_apply_drops_hashes_and_reports_undeclared() -> None:
    out, report = apply_privacy(people(), {"mail": "hash"}, salt="proj")
    assert report.undeclared == ["card"] and not report.passed
    assert out["mail"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert out["mail"].nunique() == 40  # hashing keeps distinct values distinct
    again, _ = apply_privacy(people(), {"mail": "hash", "card": "drop"}, salt="proj")
    assert list(again.columns) == ["mail", "city", "x"]
    assert (again["mail"] == out["mail"]).all()  # stable across runs


def test_declarations_are_validated() -> None:
    assert declared_handling({"a": {"personal_data": "allow"}, "b": {}}) == {"a": "allow"}
    with pytest.raises(DataError, match=r"meta\.personal_data expected one of drop, hash, allow"):
        declared_handling({"a": {"personal_data": "encrypt"}})


def project_with_emails(root: Path) -> Project:
    frame = iris_frame()
    frame["contact"] = [f"grower{i}@farm.example" for i in range(len(frame))]
    return Project.load(write_project(root, frame=frame))


def run(project: Project, registry: Registry) -> Exception | None:
    pipeline = Pipeline([LoadData(), PrivacyControls(), ProfileData(), ValidateData()])
    result = pipeline.run(project, registry=registry, reporter=SilentReporter())
    return result.error


def test_step_fails_the_run_on_undeclared_personal_data(tmp_path: Path, registry: Registry) -> None:
    project = project_with_emails(tmp_path)
    error = run(project, registry)
    assert isinstance(error, DataError)
    assert str(error) == (
        "column 'contact' holds personal data (email, 100% of 150 values); declare "
        "meta.personal_data: drop, hash or allow for it in schema.yaml"
    )
    (evidence,) = registry.list_evidence(project="iris", test_id="data-5")
    assert not evidence.passed and evidence.details["undeclared"] == ["contact"]
    assert evidence.details["reason"] == str(error)
    score = score_test(rubric_test("data-5"), [evidence], now=datetime.now(UTC))
    assert score.reason == f"the latest automated run failed: {error}"


@pytest.mark.parametrize("handling", ["drop", "hash"])
def test_step_enforces_the_declared_handling(
    tmp_path: Path, registry: Registry, handling: str
) -> None:
    project = project_with_emails(tmp_path)
    schema = infer_schema(iris_frame(), label="species")
    # A dropped column is declared not required: validation runs after the drop.
    schema.features.append(
        FeatureSchema("contact", "string", required=False, meta={"personal_data": handling})
    )
    write_schema(schema, tmp_path / "schema.yaml")
    assert run(project, registry) is None
    (evidence,) = registry.list_evidence(project="iris", test_id="data-5")
    assert evidence.passed and "reason" not in evidence.details
    assert evidence.details["dropped" if handling == "drop" else "hashed"] == ["contact"]
