"""Evidence links: every run and check keeps a report, and the score links evidence to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from readyml.config import Project
from readyml.errors import RegistryError
from readyml.registry import Registry, open_registry
from readyml.registry.reports import put_json_report, run_report_key
from readyml.score import score_project
from readyml.score.checks import run_checks
from readyml.score.links import EvidenceLinks
from readyml.score.report import evidence_link
from readyml.score.scoring import EvidenceItem
from readyml.train import open_project_registry, run_project
from readyml.types import Evidence
from support import IRIS_SPEC, write_project

from .conftest import NOW


def _item(link: str | None = None, run_id: str | None = None) -> EvidenceItem:
    return EvidenceItem("store", True, True, NOW, 0.0, True, run_id=run_id, link=link)


def test_a_run_keeps_its_report_and_the_score_links_its_evidence_to_it(tmp_path: Path) -> None:
    write_project(tmp_path)
    project = Project.load(tmp_path)
    registry = open_project_registry(project)
    result = run_project(project, registry=registry)
    assert result.error is None
    report = json.loads(Path(registry.artifacts.url_for(run_report_key(result.run_id))).read_text())
    assert report["kind"] == "pipeline run" and report["status"] == "succeeded"
    assert [s["name"] for s in report["steps"]] == [s.name for s in result.steps]
    recorded = {e.test_id for e in registry.store.list_evidence("iris", run_id=result.run_id)}
    assert {e["test_id"] for e in report["evidence"]} == recorded >= {"infra-3", "infra-4"}

    score = score_project(project, registry)
    expected = f".readyml/artifacts/runs/{result.run_id}/report.json"
    newest = {t.test.id: t.evidence[0] for t in score.tests if t.evidence}
    from_run = {test_id for test_id, item in newest.items() if item.run_id == result.run_id}
    assert from_run == recorded
    for test_id in from_run:
        link = newest[test_id].link
        # A run's evidence links to the run's report unless it keeps its own artifact.
        assert link is not None and (tmp_path / link).exists(), test_id
        if test_id not in ("data-1", "data-5"):  # those link to schema.yaml
            assert link == expected, test_id


def test_a_failed_run_keeps_a_report_saying_why(tmp_path: Path) -> None:
    write_project(tmp_path, {**IRIS_SPEC, "label": "no_such_column"})
    project = Project.load(tmp_path)
    registry = open_project_registry(project)
    result = run_project(project, registry=registry)
    assert result.error is not None
    report = json.loads(Path(registry.artifacts.url_for(run_report_key(result.run_id))).read_text())
    assert report["status"] == "failed" and "no_such_column" in report["error"]
    assert report["steps"][-1]["status"] == "failed"


def test_a_check_keeps_its_report(tmp_path: Path, registry: Registry) -> None:
    project = Project.load(write_project(tmp_path))
    results = run_checks(project, registry, only=["data-4", "infra-5"])
    (evidence, *_) = registry.store.list_evidence(project.spec.name, test_id="data-4")
    assert evidence.run_id is not None and evidence.run_id.startswith("check-")
    report = json.loads(
        Path(registry.artifacts.url_for(run_report_key(evidence.run_id))).read_text()
    )
    assert report["kind"] == "readyml check"
    assert [c["test_id"] for c in report["checks"]] == [r.test_id for r in results]


def test_links_resolve_keys_files_and_urls(tmp_path: Path, registry: Registry) -> None:
    root = tmp_path  # the registry fixture's workspace is tmp_path/.readyml
    (root / "schema.yaml").write_text("features: []\n")
    put_json_report(registry, "tuning/p/1/study.json", {"best": 1})
    put_json_report(registry, run_report_key("r1"), {"kind": "pipeline run"})
    links = EvidenceLinks(root.resolve(), registry)
    assert links.link(_item("tuning/p/1/study.json")) == (
        ".readyml/artifacts/tuning/p/1/study.json"
    )
    assert links.link(_item("schema.yaml")) == "schema.yaml"
    assert links.link(_item("https://ci.example.org/build/7")) == "https://ci.example.org/build/7"
    assert links.link(_item(run_id="r1")) == ".readyml/artifacts/runs/r1/report.json"
    # Nothing kept for the run (recorded before runs kept reports): no link is invented.
    assert links.link(_item(run_id="r2")) is None
    # A link that names nothing found is shown as recorded, never dropped.
    assert links.link(_item("gone/report.json")) == "gone/report.json"
    assert links.link(_item("../../etc/x")) == "../../etc/x"


def test_a_store_on_s3_links_by_url(tmp_path: Path, s3_url: str) -> None:
    registry = open_registry(tmp_path / ".readyml", artifacts_url=s3_url)
    try:
        put_json_report(registry, run_report_key("r1"), {"kind": "pipeline run"})
        links = EvidenceLinks(tmp_path.resolve(), registry)
        assert links.link(_item(run_id="r1")) == f"{s3_url}/runs/r1/report.json"
    finally:
        registry.store.close()


def test_a_run_without_a_report_is_shown_by_its_id(tmp_path: Path) -> None:
    # Rows of runs that kept no report (recorded before runs kept them) name the run.
    project = Project.load(write_project(tmp_path))
    registry = open_project_registry(project)
    registry.add_evidence(Evidence("model-3", True, True, "iris", run_id="0123456789abcdef"))
    report = score_project(project, registry)
    assert evidence_link(report.test("model-3")) == "run 0123456789ab"


def test_a_check_records_its_evidence_and_report_on_every_store(
    tmp_path: Path, store_url: str
) -> None:
    # PostgreSQL keeps run ids to 32 characters where SQLite ignores the length.
    project = Project.load(write_project(tmp_path))
    registry = open_registry(tmp_path / ".readyml", store_url=store_url)
    try:
        run_checks(project, registry, only=["data-4"])
        (evidence,) = registry.store.list_evidence(project.spec.name, test_id="data-4")
        assert evidence.run_id is not None and len(evidence.run_id) <= 32
        assert registry.artifacts.exists(run_report_key(evidence.run_id))
    finally:
        registry.store.close()


def test_a_link_that_is_no_path_or_key_is_shown_as_written(
    tmp_path: Path, registry: Registry
) -> None:
    links = EvidenceLinks(tmp_path.resolve(), registry)
    long_text = "x" * 300  # too long for a file name: exists() would raise, not answer
    assert links.link(_item(long_text)) == long_text
    assert links.link(_item("see the review of 2026-11-02 ")) == "see the review of 2026-11-02 "


def test_an_unreachable_store_is_asked_once_and_the_score_still_shows(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def down(key: str) -> bool:
        asked.append(key)
        raise RegistryError(f"artifact store: cannot check {key!r} (the service is down)")

    monkeypatch.setattr(registry.artifacts, "exists", down)
    links = EvidenceLinks(tmp_path.resolve(), registry)
    assert links.link(_item(run_id="r1")) is None
    assert links.link(_item("runs/r2/report.json")) == "runs/r2/report.json"
    assert asked == ["runs/r1/report.json"]


def test_prefetch_asks_the_store_once_per_key_and_not_again_after_a_failure(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "schema.yaml").write_text("features: []\n")
    put_json_report(registry, run_report_key("r1"), {"kind": "pipeline run"})
    asked: list[str] = []
    exists = registry.artifacts.exists

    def counted(key: str) -> bool:
        asked.append(key)
        return exists(key)

    monkeypatch.setattr(registry.artifacts, "exists", counted)
    links = EvidenceLinks(tmp_path.resolve(), registry)
    keys = [run_report_key(f"r{i}") for i in range(1, 20)]
    links.prefetch([*keys, *keys, "schema.yaml", "https://ci.example.org/7"])
    assert sorted(asked) == sorted(keys)  # each key once; project files and URLs never
    assert links.link(_item(run_id="r1")) == ".readyml/artifacts/runs/r1/report.json"
    assert links.link(_item(run_id="r2")) is None and len(asked) == len(keys)

    def down(key: str) -> bool:
        asked.append(key)
        raise RegistryError("artifact store: down")

    monkeypatch.setattr(registry.artifacts, "exists", down)
    asked.clear()
    later = EvidenceLinks(tmp_path.resolve(), registry)
    later.prefetch(keys)
    assert asked == [keys[0]]
