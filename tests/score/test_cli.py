"""The score commands through typer's CliRunner: score, attest."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from readyml.cli.score import app
from readyml.registry import open_registry
from readyml.types import Evidence
from score.test_report import score_schema
from support import write_project

runner = CliRunner()
SECTIONS = ("Data", "Model", "Infrastructure", "Monitoring")


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "300"})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = write_project(tmp_path / "iris")
    registry = open_registry(root / ".readyml")
    for test_id in [f"{s}-{n}" for s in ("data", "model", "infra", "monitor") for n in (1, 2)]:
        for run in ("a", "b"):
            registry.add_evidence(Evidence(test_id, True, True, "iris", run_id=run))
    registry.store.close()
    return root


def test_score_prints_28_rows_and_the_final_score(project: Path) -> None:
    code, out, _ = invoke("score", "-p", str(project))
    assert code == 0, out
    assert "data-1 Feature expectations are captured in a schema" in out
    rows = [line for line in out.splitlines() if "-" in line and line.split()[0] in SECTIONS]
    assert len(rows) == 28
    assert "ML Test Score 2 (a first pass at basic productionization)" in out


def test_score_json_validates(project: Path) -> None:
    code, out, _ = invoke("score", "-p", str(project), "--format", "json")
    assert code == 0
    data = json.loads(out)
    jsonschema.validate(data, score_schema())
    assert data["final"] == 2.0


@pytest.mark.parametrize(("limit", "expected"), [("2", 0), ("2.5", 1)])
def test_fail_under_exits_1_below_the_limit(project: Path, limit: str, expected: int) -> None:
    code, _, err = invoke("score", "-p", str(project), "--fail-under", limit)
    assert code == expected
    if expected:
        assert "below --fail-under 2.5" in err


@pytest.mark.parametrize("fmt", ["html", "markdown", "json"])
def test_out_writes_the_report(project: Path, fmt: str) -> None:
    target = project / "reports" / f"score.{fmt}"
    code, out, _ = invoke("score", "-p", str(project), "--format", fmt, "--out", str(target))
    assert code == 0, out
    assert f"wrote {target}" in out
    assert target.read_text().strip()


def test_unknown_format_is_one_error_line(project: Path) -> None:
    code, _, err = invoke("score", "-p", str(project), "--format", "pdf")
    assert code == 2
    assert err.strip().startswith("error: --format")


def test_attest_appends_and_scores_half_a_point(project: Path) -> None:
    code, out, _ = invoke(
        "attest",
        "model-7",
        "-p",
        str(project),
        "--by",
        "Ada",
        "--note",
        "fairness review",
        "--link",
        "https://wiki/fairness",
    )
    assert code == 0, out
    assert "model-7: attested by Ada" in out
    code, out, _ = invoke("score", "-p", str(project), "--format", "json")
    model_7 = next(t for t in json.loads(out)["tests"] if t["id"] == "model-7")
    assert (model_7["points"], model_7["status"], model_7["automated"]) == (0.5, "manual", False)


def test_attest_rejects_an_unknown_test_and_an_empty_link(project: Path) -> None:
    code, _, err = invoke("attest", "model-8", "-p", str(project), "--note", "n", "--link", "l")
    assert code == 2 and "expected a rubric test id" in err
    code, _, err = invoke("attest", "model-1", "-p", str(project), "--note", "n")
    assert code == 2 and "link: expected a non-empty string" in err
    assert not (project / "attestations.yaml").exists()


@pytest.mark.parametrize("limit", ["99", "-1", "7.5"])
def test_fail_under_outside_the_scale_is_one_line(project: Path, limit: str) -> None:
    code, _, err = invoke("score", "-p", str(project), "--fail-under", limit)
    assert code == 2
    assert [line for line in err.splitlines() if line.strip()] == [
        f"error: --fail-under: expected a score from 0 to 7, found {float(limit):g}"
    ]


def test_out_to_a_folder_or_below_a_file_is_one_line(project: Path) -> None:
    code, _, err = invoke("score", "-p", str(project), "--out", str(project))
    assert code == 2
    assert err.strip() == f"error: --out: expected a file name, found a folder ({str(project)!r})"
    below_a_file = project / "readyml.yaml" / "score.md"
    code, _, err = invoke("score", "-p", str(project), "--out", str(below_a_file))
    assert code == 2
    assert err.strip().startswith(f"error: --out: cannot write {str(below_a_file)!r} (")
    assert len(err.strip().splitlines()) == 1


def damage_row(project: Path, test_id: str, assignment: str) -> int:
    """Edit the newest evidence row of ``test_id`` by hand; return its id."""
    registry = open_registry(project / ".readyml")
    try:
        with registry.store.engine.begin() as connection:
            row_id = int(
                connection.execute(
                    text("SELECT max(id) FROM evidence WHERE test_id = :t"), {"t": test_id}
                ).scalar_one()
            )
            connection.execute(text(f"UPDATE evidence SET {assignment} WHERE id = {row_id}"))
    finally:
        registry.store.close()
    return row_id


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "html"])
def test_score_survives_a_damaged_evidence_row(project: Path, fmt: str) -> None:
    row_id = damage_row(project, "model-2", "details = '{not json'")
    code, out, err = invoke("score", "-p", str(project), "--format", fmt)
    assert (code, err) == (0, ""), err
    expected = f"evidence row {row_id} (test model-2, run b): details: expected a JSON object"
    if fmt == "json":
        data = json.loads(out)
        jsonschema.validate(data, score_schema())
        tests = {t["id"]: t for t in data["tests"]}
        assert (tests["model-2"]["points"], tests["model-2"]["status"]) == (0, "failing")
        assert tests["model-2"]["evidence"][0]["details"]["damaged_row"] == row_id
        assert (tests["model-1"]["points"], data["sections"]["model"]) == (1, 1)
    elif fmt == "text":
        (row,) = [line for line in out.splitlines() if "model-2 Offline" in line]
        assert "failing" in row and f"fix it: evidence row {row_id} (" in row
    else:
        assert expected in out


def test_score_warns_of_a_row_that_names_no_rubric_test(project: Path) -> None:
    row_id = damage_row(project, "data-2", "test_id = 'data-9'")
    code, out, err = invoke("score", "-p", str(project), "--format", "json")
    assert code == 0
    assert json.loads(out)["sections"]["data"] == 1.5
    assert err.splitlines() == [
        f"warning: evidence row {row_id} (run b): test_id: expected a rubric test id (data-N, "
        "model-N, infra-N, monitor-N with N in 1..7), found 'data-9'; it counts for no test: "
        "fix or delete it"
    ]


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_a_report_file_lists_a_row_that_names_no_rubric_test(project: Path, fmt: str) -> None:
    row_id = damage_row(project, "data-2", "test_id = 'data-9'")
    target = project / f"score.{fmt}"
    code, _, _ = invoke("score", "-p", str(project), "--format", fmt, "--out", str(target))
    assert code == 0
    assert f"Warning: evidence row {row_id} (run b): test_id: expected" in target.read_text()


def test_attest_rejects_an_empty_by(project: Path) -> None:
    code, _, err = invoke("attest", "model-1", "-p", str(project), "--by", "", "--note", "n")
    assert code == 2
    assert err.strip() == "error: readyml attest.by: expected a non-empty string, found ''"
    assert not (project / "attestations.yaml").exists()
