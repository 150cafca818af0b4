"""``readyml check``: run the automated ML Test Score checks no other component runs.

Each check records one automated evidence record per invocation (all of one invocation
share a ``run_id``), so running ``readyml check`` in CI on every change is what turns these
tests from half a point into a full one. The checks:

=========  ==============================================================================
data-4     schema.yaml meta-level rules (:mod:`readyml.score.meta_rules`)
data-6     a derived feature goes through the pipeline in a copy (:mod:`.probes`)
data-7     the project's feature modules have tests, and they pass (:mod:`.project_tests`)
infra-2    the model spec's unit test, plus the project's model-code tests
infra-3    the whole pipeline on a sample, in a copy
infra-5    the champion (or newest) version explained step by step on its input example
model-2    offline versus online quality over versions (:mod:`.correlation`)
=========  ==============================================================================
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from readyml.config import Project
from readyml.errors import ConfigError, ReadymlError, RegistryError
from readyml.registry import CHAMPION, Registry
from readyml.registry.reports import keep_json_report, run_report_key
from readyml.score.correlation import offline_online_correlation
from readyml.score.explain import explain_prediction
from readyml.score.meta_rules import check_project_meta
from readyml.score.probes import (
    ModelFitter,
    PipelineRunner,
    probe_new_feature,
    probe_pipeline,
    unit_test_model_spec,
)
from readyml.score.project_tests import check_tested_code, feature_modules, model_modules
from readyml.score.scoring import failure_reason
from readyml.types import JSON, Evidence

CHECKS: dict[str, str] = {
    "data-4": "schema meta rules",
    "data-6": "new-feature probe",
    "data-7": "feature code tests",
    "infra-2": "model spec unit test",
    "infra-3": "pipeline on a sample",
    "infra-5": "step-by-step explanation",
    "model-2": "offline/online correlation",
}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check, as recorded."""

    test_id: str
    name: str
    passed: bool
    summary: str
    details: JSON = field(default_factory=dict)

    def to_dict(self) -> JSON:
        """JSON form."""
        return {
            "test_id": self.test_id,
            "name": self.name,
            "passed": self.passed,
            "summary": self.summary,
            "details": self.details,
        }


def _summary(passed: bool, details: JSON, ok: str) -> str:
    if passed:
        return ok
    why = failure_reason(details)
    if why:
        return why
    problems = details.get("problems") or details.get("untested")
    if problems:
        return f"{problems}"
    run = details.get("run")
    if isinstance(run, dict):
        return (
            f"pytest exit {run.get('exit_code')}: {run.get('failures')} failed, "
            f"{run.get('errors')} errors"
        )
    return "failed"


def _data_4(project: Project, registry: Registry) -> tuple[bool, JSON, str]:
    evidence, summary = check_project_meta(project)
    return evidence.passed, evidence.details, summary


def _data_7(project: Project, registry: Registry) -> tuple[bool, JSON, str]:
    passed, details = check_tested_code(project, feature_modules(project), what="feature")
    run = details.get("run", {})
    ok = details.get("note") or f"{run.get('tests', 0)} test(s) of {details['modules']} passed"
    return passed, details, _summary(passed, details, str(ok))


def _infra_2(project: Project, registry: Registry, fit: ModelFitter) -> tuple[bool, JSON, str]:
    spec_ok, spec_details = unit_test_model_spec(project, fit)
    code_ok, code_details = check_tested_code(project, model_modules(project), what="model")
    details: JSON = {"spec": spec_details, "code": code_details}
    passed = spec_ok and code_ok
    ok = f"{len(spec_details.get('checks', []))} spec checks passed"
    failing = spec_details if not spec_ok else code_details
    return passed, details, _summary(passed, failing, ok)


def _infra_3(
    project: Project, registry: Registry, runner: PipelineRunner
) -> tuple[bool, JSON, str]:
    passed, details = probe_pipeline(project, runner)
    ok = f"{len(details.get('steps', []))} steps on {details.get('rows')} rows"
    return passed, details, _summary(passed, details, ok)


def _data_6(project: Project, registry: Registry, runner: PipelineRunner) -> tuple[bool, JSON, str]:
    passed, details = probe_new_feature(project, runner)
    if not passed and "error" not in details:
        details["error"] = "the new feature is missing from the trained model's signature"
    ok = f"'{details.get('feature')}' trained end to end in {details.get('duration_s')} s"
    return passed, details, _summary(passed, details, ok)


def _infra_5(project: Project, registry: Registry) -> tuple[bool, JSON, str]:
    name = project.spec.name
    try:
        version = registry.get(f"{name}@{CHAMPION}")
    except RegistryError:
        try:
            versions = registry.list_versions(name)
        except RegistryError:
            versions = []
        if not versions:
            raise ConfigError(
                f"no version of '{name}' is registered; run 'readyml run' first"
            ) from None
        version = versions[-1]
    explanation = explain_prediction(
        registry, f"{version.name}:{version.version}", trusted_types=project.trusted_types()
    )
    details: JSON = explanation.to_dict()
    ok = f"{len(explanation.steps)} steps traced for {explanation.model}; prediction reproduced"
    if not explanation.consistent:
        details["error"] = explanation.problem
    return explanation.consistent, details, _summary(explanation.consistent, details, ok)


def _model_2(project: Project, registry: Registry) -> tuple[bool, JSON, str]:
    spec = project.spec
    report = offline_online_correlation(
        registry,
        spec.name,
        spec.name,
        min_versions=spec.score.min_versions,
        min_correlation=spec.score.min_correlation,
    )
    details = report.to_dict()
    return report.passed, details, report.reason


def run_checks(
    project: Project,
    registry: Registry,
    *,
    runner: PipelineRunner | None = None,
    fit: ModelFitter | None = None,
    only: Iterable[str] | None = None,
    skip: Iterable[str] = (),
) -> list[CheckResult]:
    """Run the automated checks and record each as evidence; return their results.

    Args:
        project: The project.
        registry: Its registry (evidence goes here).
        runner: Runs a pipeline (:func:`readyml.train.run_project`); without it, data-6 and
            infra-3 are not run.
        fit: Fits the spec's model (:func:`readyml.train.steps.fit_model`); without it,
            infra-2 is not run.
        only: Test ids to run (default: all of :data:`CHECKS`).
        skip: Test ids not to run (a CI without production evidence skips model-2).

    Raises:
        ConfigError: ``only`` or ``skip`` names a test that is not one of the checks.
    """
    chosen, skipped = list(only or []), list(skip)
    for option, ids in (("--only", chosen), ("--skip", skipped)):
        unknown = [t for t in ids if t not in CHECKS]
        if unknown:
            raise ConfigError(
                f"{option}: expected some of {', '.join(CHECKS)}, found {unknown[0]!r}"
            )
    wanted = [t for t in (chosen or list(CHECKS)) if t not in skipped]
    checks: dict[str, Callable[[Project, Registry], tuple[bool, JSON, str]]] = {
        "data-4": _data_4,
        "data-7": _data_7,
        "infra-5": _infra_5,
        "model-2": _model_2,
    }
    if runner is not None:
        checks["data-6"] = lambda p, r: _data_6(p, r, runner)
        checks["infra-3"] = lambda p, r: _infra_3(p, r, runner)
    if fit is not None:
        checks["infra-2"] = lambda p, r: _infra_2(p, r, fit)
    run_id = f"check-{uuid.uuid4().hex[:26]}"  # ids are at most 32 characters in the store
    results: list[CheckResult] = []
    for test_id in CHECKS:
        if test_id not in wanted or test_id not in checks:
            continue
        try:
            passed, details, summary = checks[test_id](project, registry)
        except ReadymlError as exc:
            passed, details, summary = False, {"error": str(exc)}, str(exc)
        registry.add_evidence(
            Evidence(
                test_id=test_id,
                passed=passed,
                automated=True,
                project=project.spec.name,
                run_id=run_id,
                details={"check": CHECKS[test_id], "summary": summary, **details},
            )
        )
        results.append(CheckResult(test_id, CHECKS[test_id], passed, summary, details))
    document: JSON = {
        "kind": "readyml check",
        "id": run_id,
        "project": project.spec.name,
        "finished_at": datetime.now(UTC).isoformat(),
        "checks": [result.to_dict() for result in results],
    }
    keep_json_report(registry, run_report_key(run_id), document, what=f"check {run_id}")
    return results
