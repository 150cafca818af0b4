"""Entry points of the training system: run a project, check that training is reproducible."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from readyml.config import Project
from readyml.errors import ReadymlError
from readyml.registry import Registry, open_registry
from readyml.train.fingerprint import environment, hash_callable_source, hash_json
from readyml.train.pipeline import Pipeline, RunResult
from readyml.train.progress import Reporter, SilentReporter
from readyml.train.steps import default_steps, fit_model, predictions
from readyml.types import JSON, Evidence

# Flavors whose training is bit-for-bit repeatable with a fixed seed on one machine.
DETERMINISTIC_FLAVORS = frozenset({"sklearn", "xgboost", "lightgbm"})
DEFAULT_TOLERANCE = 1e-6  # largest allowed absolute difference for other flavors


def run_fingerprints(project: Project) -> JSON:
    """Config, code and environment fingerprints of a run (data is fingerprinted when loaded)."""
    spec = project.spec
    code_targets = [
        t for t in (spec.data.source if spec.data.is_loader else None, spec.model.entry_point) if t
    ]
    if spec.model.flavor == "torch" and spec.model.estimator:
        code_targets.append(spec.model.estimator)
    env = environment()
    return {
        "config": hash_json(project.raw),
        "code": hash_json(
            {
                "model": spec.model.model_dump(mode="json"),
                "sources": {t: hash_callable_source(t, root=project.root) for t in code_targets},
            }
        ),
        "environment": {"sha256": hash_json(env), **env},
    }


def open_project_registry(project: Project) -> Registry:
    """The project's registry: ``.readyml/`` by default, or the URLs in the environment."""
    project.workspace.mkdir(parents=True, exist_ok=True)
    return open_registry(project.workspace)


def run_project(
    project: Project,
    *,
    registry: Registry | None = None,
    reporter: Reporter | None = None,
    force: bool = False,
) -> RunResult:
    """Run the standard pipeline on a project.

    Example:
        >>> result = run_project(Project.load("readyml-demo"))  # doctest: +SKIP
        >>> result.status
        'succeeded'
    """
    registry = registry if registry is not None else open_project_registry(project)
    try:
        fingerprints = run_fingerprints(project)
    except ReadymlError as exc:
        # The project's code would not import: a run that failed before its first step, kept
        # so that `readyml runs` shows the attempt and its error as it shows any other.
        record = registry.store.start_run(
            project.spec.name,
            fingerprints={"config": hash_json(project.raw)},
            params={"force": force},
        )
        registry.store.finish_run(record.id, status="failed", error=f"before the first step: {exc}")
        raise
    pipeline = Pipeline(default_steps())
    return pipeline.run(
        project,
        registry=registry,
        reporter=reporter if reporter is not None else SilentReporter(),
        force=force,
        fingerprints=fingerprints,
    )


@dataclass(frozen=True)
class ReproducibilityReport:
    """Two trainings on the same inputs, compared on the validation split."""

    flavor: str
    deterministic: bool
    n_rows: int
    identical_predictions: float  # share of rows whose predicted label/value is identical
    max_abs_difference: float  # largest difference of probabilities (or values)
    tolerance: float
    passed: bool

    @property
    def reason(self) -> str:
        """What was expected and what was found, in one line; ``""`` when passed."""
        if self.passed:
            return ""
        identical = f"{round(self.identical_predictions * self.n_rows)} of {self.n_rows} identical"
        difference = f"{self.max_abs_difference:.3g}"
        if self.deterministic:
            found = (
                f"identical labels but values differing by up to {difference}"
                if self.identical_predictions == 1.0
                else identical  # labels differ (a difference may be a 0/1 stand-in)
            )
            return (
                "retrained on the same inputs: expected identical predictions "
                f"({self.flavor} is deterministic), found {found}"
            )
        return (
            f"retrained on the same inputs: expected {self.flavor} predictions within "
            f"{self.tolerance:g} of each other, found a largest difference of {difference} "
            f"({identical})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, with a ``reason`` when it failed."""
        return {**asdict(self), **({"reason": self.reason} if self.reason else {})}


def check_reproducible(
    project: Project,
    result: RunResult,
    *,
    registry: Registry,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ReproducibilityReport:
    """Train again from the run's split and compare with the run's model (ML Test Score infra-1).

    The run's model may come from the cache, i.e. from an earlier process, which makes the
    comparison stronger: it also catches state that leaks between processes.
    """
    train, valid, first = result.value("train"), result.value("valid"), result.value("model")
    second, _ = fit_model(project, train, valid)
    names = [c["name"] for c in first.signature()["inputs"]]
    pred_a, proba_a = predictions(first, valid[names])
    pred_b, proba_b = predictions(second, valid[names])
    identical = float(np.mean(pred_a == pred_b)) if len(pred_a) else 1.0
    if proba_a is not None and proba_b is not None:
        diff = float(np.max(np.abs(proba_a - proba_b))) if proba_a.size else 0.0
    elif first.task == "regression":
        diff = (
            float(np.max(np.abs(pred_a.astype(float) - pred_b.astype(float))))
            if len(pred_a)
            else 0.0
        )
    else:
        diff = 0.0 if identical == 1.0 else 1.0
    deterministic = first.flavor in DETERMINISTIC_FLAVORS
    limit = 0.0 if deterministic else tolerance
    passed = identical == 1.0 and diff <= limit if deterministic else diff <= limit
    report = ReproducibilityReport(
        first.flavor, deterministic, len(valid), identical, diff, limit, passed
    )
    registry.store.add_evidence(
        Evidence(
            test_id="infra-1",
            passed=passed,
            automated=True,
            project=project.spec.name,
            run_id=result.run_id,
            details=report.to_dict(),
        )
    )
    return report
