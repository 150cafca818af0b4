"""Pipeline steps and entry points for model validation: spec review, staleness, evidence,
tuning and evaluation reports of registered versions.

The evaluation itself lives in :mod:`readyml.evaluate` (layer 3); this module connects it to
the project: it refits the declared model where an evaluation needs it (drop-column
importance, staleness windows, cross-validated tuning) and records the ML Test Score evidence.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from readyml import _project_imports as project_imports
from readyml.config import Project, ProjectSpec
from readyml.data import load_schema
from readyml.errors import ConfigError, DataError, ReadymlError, RegistryError
from readyml.evaluate import (
    StudyResult,
    compute_metrics,
    curves,
    evaluate_model,
    evaluate_on_rows,
    gate,
    model_inputs,
    predict,
    primary_metric,
    review_state,
    run_study,
    staleness_curve,
    write_back_params,
    write_report,
)
from readyml.evaluate.metrics import clean
from readyml.flavors import ModelAdapter, load_model
from readyml.registry import Registry
from readyml.train.features import check_task, resolve_task
from readyml.train.pipeline import Kind, RunContext, StepResult
from readyml.train.production_data import production_mask, production_window, without_reserved
from readyml.train.steps import SCHEMA_FILE, TrainModel, fit_model
from readyml.types import JSON, Evidence


def record(ctx: RunContext, test_id: str, passed: bool, details: JSON) -> None:
    """Add one automated piece of evidence for this run (kept with the step's cached outputs)."""
    ctx.record(
        Evidence(
            test_id=test_id,
            passed=passed,
            automated=True,
            project=ctx.project.spec.name,
            run_id=ctx.run_id,
            details=dict(clean(details)),
        )
    )


def with_spec(project: Project, spec: ProjectSpec) -> Project:
    """The same project with another spec (for refits with changed params or features)."""
    return Project(spec=spec, root=project.root, raw=project.raw)


def without_feature(project: Project, column: str) -> Project:
    """The project with ``column`` removed from the model's features."""
    spec = project.spec
    declared = spec.feature_specs()
    if declared is None:
        changed = spec.model_copy(update={"exclude": [*spec.exclude, column]})
    else:
        changed = spec.model_copy(update={"features": [f for f in declared if f.name != column]})
    return with_spec(project, changed)


def with_params(project: Project, params: dict[str, Any]) -> Project:
    """The project with ``params`` merged into ``model.params``."""
    spec = project.spec
    model = spec.model.model_copy(update={"params": {**spec.model.params, **params}})
    return with_spec(project, spec.model_copy(update={"model": model}))


def score_fit(project: Project, train: pd.DataFrame, valid: pd.DataFrame, metric: str) -> float:
    """Fit the project's model on ``train`` and return ``metric`` on ``valid``.

    ``train`` doubles as the early-stopping set, so that ``valid`` stays unseen.
    """
    model, _ = fit_model(project, train, train)
    names = [str(c["name"]) for c in model.signature()["inputs"]]
    pred, proba, classes = predict(model, valid[names])
    y = valid[project.spec.label].to_numpy()
    return float(compute_metrics(model.task, y, pred, proba, classes).get(metric, np.nan))


def _code_files(project: Project) -> list[Path]:
    spec, root = project.spec, project.root
    targets = [spec.data.source if spec.data.is_loader else None, spec.model.entry_point]
    targets.append(spec.model.estimator if spec.model.flavor == "torch" else None)
    files = []
    for target in targets:
        if not target or ":" not in target:
            continue
        module = target.split(":", 1)[0]
        project_imports.prepare(root, target)
        found = importlib.util.find_spec(module)
        if found is not None and found.origin and Path(found.origin).is_relative_to(root):
            files.append(Path(found.origin))
    return files


class ReviewSpec:
    """Tie the spec and code fingerprints to a git commit; a dirty tree is recorded as such.

    ML Test Score model-1: the model specification is reviewed and checked in.
    """

    name: ClassVar[str] = "review"
    version: ClassVar[int] = 1
    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[dict[str, Kind]] = {"review": "json"}
    cacheable: ClassVar[bool] = True

    def params(self, ctx: RunContext) -> JSON:
        project = ctx.project
        files = [project.spec_path, project.root / SCHEMA_FILE, *_code_files(project)]
        return review_state(project.root, files, ctx.fingerprints)

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        state = self.params(ctx)
        record(ctx, "model-1", bool(state["passed"]), state)
        commit = state.get("commit")
        where = f" at {commit[:10]}" if commit else ""
        dirty = " (working tree dirty)" if state.get("tree_dirty") else ""
        return StepResult({"review": state}, f"{state['reason']}{where}{dirty}")


class MeasureStaleness:
    """Train on older time windows, evaluate on the newest: quality against model age.

    ML Test Score model-4: the impact of model staleness is known.
    """

    name: ClassVar[str] = "staleness"
    version: ClassVar[int] = 1
    inputs: ClassVar[tuple[str, ...]] = ("data",)
    outputs: ClassVar[dict[str, Kind]] = {"staleness": "json"}
    cacheable: ClassVar[bool] = True

    def params(self, ctx: RunContext) -> JSON:
        spec = ctx.project.spec
        return {
            "staleness": spec.staleness.model_dump(mode="json"),
            "time_column": spec.split.time_column,
            "primary": spec.metrics.primary,
            "train": TrainModel().params(ctx),
        }

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        project, data = ctx.project, inputs["data"]
        data = without_reserved(data[~production_mask(data)])  # the dated source rows
        spec = project.spec
        column = spec.staleness.time_column or spec.split.time_column
        if column is None:
            result: JSON = {
                "measured": False,
                "reason": "no time column (staleness.time_column or split.time_column)",
            }
            record(ctx, "model-4", False, result)
            return StepResult({"staleness": result}, "not measured: " + result["reason"])
        task = resolve_task(data[spec.label], spec.task)
        metric = primary_metric(task, spec.metrics.primary)
        try:
            curve = staleness_curve(
                data,
                time_column=column,
                windows=spec.staleness.windows,
                metric=metric,
                fit_and_score=lambda train, test: score_fit(project, train, test, metric),
                tolerance=spec.staleness.tolerance,
            )
        except DataError as exc:  # too few rows or untrainable windows: report, do not fail
            result = {"measured": False, "reason": str(exc)}
            record(ctx, "model-4", False, result)
            return StepResult({"staleness": result}, "not measured: " + result["reason"])
        result = {"measured": True, **curve}
        record(ctx, "model-4", True, result)
        return StepResult(
            {"staleness": result},
            f"retrain every {curve['retrain_every_days']:.0f} days "
            f"({len(curve['points'])} windows)",
        )


def schema_categories(project: Project) -> dict[str, list[str]]:
    """The categories the checked-in schema lists per column (none without a schema)."""
    path = project.root / SCHEMA_FILE
    if not path.exists():
        return {}
    return {f.name: list(f.categories) for f in load_schema(path).features if f.categories}


def evaluate_step(ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
    """The work of the ``evaluate`` step (see :class:`readyml.train.steps.EvaluateModel`)."""
    project = ctx.project
    spec = project.spec
    model: ModelAdapter = inputs["model"]
    train, valid = inputs["train"], inputs["valid"]

    def refit_without(column: str) -> ModelAdapter:
        return fit_model(without_feature(project, column), train, valid)[0]

    result = evaluate_model(
        model,
        train,
        valid,
        spec=spec,
        refit_without=refit_without,
        known_values=schema_categories(project),
    )
    result["staleness"] = inputs.get("staleness")
    result["spec_review"] = inputs.get("review")
    if spec.data.production is not None and spec.data.production.enabled:
        result["production_window"] = _production_window(ctx, model, valid)
    primary = result["primary"]
    rule = spec.gates.beat_baselines
    passed, baseline_details = _baseline_evidence(
        primary, result["valid"].get(primary), result["baselines"], rule.margin if rule else 0.0
    )
    record(ctx, "model-5", passed, baseline_details)
    # Without importance (importance.enabled: false) nothing was measured: record nothing.
    if "importance" in result:
        importance = result["importance"] or {}
        record(
            ctx,
            "data-2",
            not importance.get("not_helping"),
            {
                k: importance.get(k)
                for k in ("method", "metric", "not_helping", "uncertain", "features", "reason")
                if k in importance
            },
        )
    if "feature_cost" in result:
        cost = result["feature_cost"] or {}
        record(
            ctx, "data-3", not cost.get("too_costly"), {**cost, "serving": result.get("serving")}
        )
    ci = result["ci"]
    interval = f" [{ci['low']:.4f}, {ci['high']:.4f}]" if ci.get("low") is not None else ""
    judged = sum(1 for s in result["slices"] if s["judged"])
    return StepResult(
        {"metrics": result},
        f"{primary} = {result['valid'][primary]:.4f}{interval} on {len(valid):,} rows; "
        f"{len(result['slices'])} slices ({judged} judged)",
    )


def _baseline_evidence(
    primary: str, candidate: float | None, baselines: JSON, declared: float
) -> tuple[bool, JSON]:
    """Whether no baseline is better than the candidate (model-5), and the details.

    The gate's ``beat_baselines.margin`` may be negative, a tolerance for validation noise;
    the evidence does not borrow it. It asks whether a baseline is better beyond noise: its
    lead holds over the paired bootstrap of the validation rows (``margin_interval``, the
    candidate's margin: a baseline is better when the whole interval is below the required
    margin). A positive margin, stricter, is kept. Without an interval (no bootstrap), the
    observed margin decides.
    """
    required = max(declared, 0.0)
    margins: dict[str, float | None] = baselines["margins"]
    behind: dict[str, float | None] = {}
    within_noise: list[str] = []
    for name, margin in margins.items():
        interval = baselines.get(name, {}).get("margin_interval")
        if margin is None:
            behind[name] = None
        elif interval is not None and interval[1] >= required:
            if margin < required:
                within_noise.append(name)
        elif margin < required:
            behind[name] = margin
    details: JSON = {
        "metric": primary,
        "candidate": candidate,
        "baselines": {k: v for k, v in baselines.items() if k != "margins"},
        "margins": margins,
        "required_margin": required,
    }
    if within_noise:
        details["within_noise"] = within_noise
    if behind:
        shown = []
        for name, margin in behind.items():
            theirs = baselines[name]["metrics"].get(primary)
            interval = baselines[name].get("margin_interval")
            bounds = (
                f"; margin interval {interval[0]:+.4g} to {interval[1]:+.4g}"
                if interval is not None
                else ""
            )
            if margin is None:
                shown.append(f"{name} not measured")
            elif margin < 0:
                shown.append(
                    f"{name} better by {-margin:.4g} ({theirs:.4f} against {candidate:.4f}{bounds})"
                )
            else:
                shown.append(f"{name} beaten by only {margin:.4g}{bounds}")
        by = f", by at least {required:g} (gates.beat_baselines.margin)" if required > 0 else ""
        details["reason"] = (
            f"expected {primary} at least as good as every baseline{by} beyond validation "
            "noise, found " + ", ".join(shown)
        )
    return not behind, details


def _production_window(ctx: RunContext, model: ModelAdapter, valid: pd.DataFrame) -> JSON:
    """Candidate and champion on the newest production examples of the validation split,
    leaving out the rows the champion trained on (judged there, it would look better)."""
    spec = ctx.project.spec
    assert spec.data.production is not None
    champion = champion_of(ctx.registry, spec.name)
    champion_model = None
    unavailable = None
    if champion is not None:
        champion_model = _load_champion(ctx, champion)
        if champion_model is not None:
            valid, unavailable = _unseen_by(ctx, champion, model_inputs(champion_model), valid)
    report = production_window(
        valid=valid,
        window=spec.data.production.window,
        label=spec.label,
        task=model.task,
        features=model_inputs(model),
        candidate=model,
        champion=champion_model,
        champion_version=champion.version if champion is not None else None,
    )
    if unavailable is not None:
        report["champion_split_unavailable"] = unavailable
    return report


def _champion_on_rows(
    ctx: RunContext, champion: Any, candidate: ModelAdapter, valid: pd.DataFrame
) -> JSON | None:
    """Champion and candidate on the same validation rows, leaving out the champion's
    training rows; ``None`` when the champion cannot be loaded or no row is left.

    A random split of changed data (new source rows, production examples) puts rows the
    champion trained on into the new validation split; judged there, the champion would
    look better than it is.
    """
    spec = ctx.project.spec
    model = _load_champion(ctx, champion)
    if model is None:
        return None
    rows, unavailable = _unseen_by(ctx, champion, model_inputs(model), valid)
    if rows.empty:
        return None
    features = model_inputs(candidate)
    theirs = evaluate_on_rows(model, rows, spec=spec, slice_features=features)
    mine = evaluate_on_rows(candidate, rows, spec=spec, slice_features=features)
    if theirs is None or mine is None:
        return None
    return {
        "metrics": theirs,
        "candidate": mine,
        "rows": len(rows),
        "left_out": len(valid) - len(rows),
        "split_unavailable": unavailable,
    }


def _load_champion(ctx: RunContext, champion: Any) -> ModelAdapter | None:
    """The champion's model, trusting the project's ``model.trusted_types``; ``None`` when
    it cannot be loaded."""
    try:
        with tempfile.TemporaryDirectory(prefix="readyml-champion-") as tmp:
            directory = ctx.registry.download(champion, Path(tmp) / "model")
            return load_model(directory, trusted_types=ctx.project.trusted_types())
    except ReadymlError:
        return None


def _unseen_by(
    ctx: RunContext, champion: Any, inputs: list[str], valid: pd.DataFrame
) -> tuple[pd.DataFrame, str | None]:
    """The rows of ``valid`` that were not in the champion's training split, and ``None``;
    or all of them and why, when that split cannot be read (a deleted step cache, a run
    from elsewhere): a cache must be safe to delete, so this weakens the comparison, and
    says so, rather than failing the run.

    A row is identified by the champion's ``inputs`` only, never its label: with relabelled
    data, the rows whose label changed would otherwise count as unseen, and the champion,
    judged on exactly the rows where its learned label now looks wrong, would look worse
    than it is.
    """
    from readyml.monitor.inputs import step_output

    whose = f"champion v{champion.version}'s training split"
    if not champion.run_id:
        return valid, f"{whose} is unknown: no training run recorded"
    try:
        steps = ctx.registry.store.steps_for_run(champion.run_id)
        trained = step_output(ctx.registry, ctx.project.spec.name, steps, "split", "train")
    except ReadymlError as exc:
        return valid, f"{whose} is unavailable ({exc})"
    if not isinstance(trained, pd.DataFrame):
        return valid, f"{whose} is unavailable: run {champion.run_id} stored none"
    columns = [c for c in inputs if c in valid.columns and c in trained.columns]
    if not columns:
        return valid, f"{whose} holds none of the champion's input columns"
    seen = set(pd.util.hash_pandas_object(trained[columns], index=False))
    fresh = ~pd.util.hash_pandas_object(valid[columns], index=False).isin(seen).to_numpy()
    return valid[fresh], None


def champion_of(registry: Registry, name: str) -> Any:
    """The current champion version of ``name``, or ``None``."""
    try:
        return registry.get(f"{name}@champion")
    except RegistryError:
        return None


def gate_step(ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
    """The work of the ``gate`` step (see :class:`readyml.train.steps.GateModel`)."""
    spec = ctx.project.spec
    evaluation = inputs["metrics"]
    champion = champion_of(ctx.registry, spec.name)
    model_value = ctx.values.get("model")
    same = (
        champion is not None
        and model_value is not None
        and champion.model_fingerprint == model_value.fingerprint
    )
    compared = None
    if champion is not None and not same and model_value is not None:
        compared = _champion_on_rows(ctx, champion, model_value.obj, inputs["valid"])
    against: JSON | None = None
    if champion is not None:
        against = {"version": champion.version, "metrics": champion.metrics}
        if compared is not None:
            against.update(compared)
    decision = gate(evaluation, spec.gates, champion=against, same_as_champion=same)
    out = decision.to_dict()
    unavailable = None if compared is None else compared["split_unavailable"]
    if compared is not None:
        out["champion_rows"] = {
            "compared": compared["rows"],
            "left_out": compared["left_out"],
            "why": "the same validation rows, without those the champion trained on"
            if unavailable is None
            else "all validation rows, possibly some the champion trained on: " + unavailable,
        }
        if unavailable is not None:
            out["champion_split_unavailable"] = unavailable
    judged = [r for r in decision.reasons if r.judged]
    infra_4: JSON = {**out, "rules_judged": len(judged)}
    if not judged:
        unjudged = "; ".join(r.message for r in decision.reasons)
        infra_4["reason"] = (
            "expected the gate to judge the candidate by at least one rule, found "
            + (f"none judged ({unjudged})" if unjudged else "no rule declared (gates)")
        )
    record(ctx, "infra-4", bool(judged), infra_4)
    slice_reasons = [r for r in decision.reasons if r.slice]
    judged_slices = [s["name"] for s in evaluation.get("slices") or [] if s["judged"]]
    failed_slices = [r.message for r in slice_reasons if r.judged and not r.passed]
    slice_details: JSON = {
        "slices": [
            {k: s.get(k) for k in ("name", "kind", "size", "judged", "reason", "metrics")}
            for s in evaluation.get("slices") or []
        ],
        "reasons": [r.message for r in slice_reasons],
    }
    if not judged_slices:
        slice_details["reason"] = (
            "no slice was judged: declare slices, or categorical features, with at least "
            "gates.min_slice_size validation rows each"
        )
    elif failed_slices:
        slice_details["reason"] = "; ".join(failed_slices)
    record(ctx, "model-6", bool(judged_slices) and not failed_slices, slice_details)
    fairness = evaluation.get("fairness") or {}
    fair_reasons = [r for r in decision.reasons if r.kind == "fairness"]
    measured = any(a.get("disparities") for a in (fairness.get("attributes") or {}).values())
    unfair = [r.message for r in fair_reasons if r.judged and not r.passed]
    inclusion: JSON = {**fairness, "reasons": [r.message for r in fair_reasons]}
    if not fairness:
        inclusion = {"reason": "no sensitive attributes declared (fairness.sensitive)"}
    elif not measured:
        inclusion["reason"] = (
            "expected disparities between the groups of fairness.sensitive, found none "
            f"measured: fewer than two groups of at least {fairness.get('min_group_size')} "
            "validation rows (fairness.min_group_size)"
        )
    elif unfair:
        inclusion["reason"] = "; ".join(unfair)
    record(ctx, "model-7", measured and not unfair, inclusion)
    if not decision.reasons:
        message = "blessed: no gate rules declared (gates)"
    elif decision.failed:
        message = "vetoed: " + "; ".join(r.message for r in decision.failed)
    else:
        message = f"blessed: {len(judged)} rule(s) passed"
    if decision.note:
        message += f" ({decision.note})"
    if unavailable is not None:
        message += " (champion's training split unavailable: compared on all validation rows)"
    return StepResult({"gate": out}, message)


# -- tuning ---------------------------------------------------------------------------


def cross_validated(project: Project, train: pd.DataFrame, metric: str, folds: int) -> float:
    """Mean ``metric`` of the project's model over ``folds`` folds of ``train``."""
    spec = project.spec
    task = resolve_task(train[spec.label], spec.task)
    labels = train[spec.label]
    stratify = task == "classification" and labels.value_counts().min() >= folds
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=spec.seed)
        if stratify
        else KFold(folds, shuffle=True, random_state=spec.seed)
    )
    scores = [
        score_fit(project, train.iloc[a].reset_index(drop=True), train.iloc[b], metric)
        for a, b in splitter.split(train, labels if stratify else None)
    ]
    return float(np.mean(scores))


def tune_project(
    project: Project,
    *,
    registry: Registry,
    train: pd.DataFrame,
    run_id: str | None = None,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    write_back: bool = False,
) -> JSON:
    """Run the spec's Optuna study on the training split; record trials and evidence (model-3).

    With ``write_back``, the best trial's parameters go into readyml.yaml only when they score
    better than the current ones; ``not_written`` says why they did not.

    Raises:
        ConfigError: The spec has no ``tuning`` section.
    """
    spec = project.spec
    if spec.tuning is None:
        raise ConfigError(
            "tuning: not declared in readyml.yaml; add tuning.space (e.g. "
            "{max_depth: {type: int, low: 2, high: 12}})"
        )
    task = check_task(train, spec)  # names a tuning.metric the task does not compute
    metric = spec.tuning.metric or primary_metric(task, spec.metrics.primary)
    folds = spec.tuning.cv
    current = cross_validated(project, train, metric, folds)
    study = run_study(
        spec.tuning,
        metric=metric,
        objective=lambda params: cross_validated(
            with_params(project, params), train, metric, folds
        ),
        seed=spec.seed,
        n_trials=n_trials,
        timeout_s=timeout_s,
    )
    result: JSON = {
        **study.to_dict(),
        "current_params": dict(spec.model.params),
        "current_value": current,
        "improvement": None
        if study.best_value is None
        else (
            study.best_value - current
            if study.direction == "maximize"
            else current - study.best_value
        ),
        "created_at": datetime.now(UTC).isoformat(),
    }
    key = f"tuning/{spec.name}/{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}/study.json"
    info = registry.artifacts.put_bytes(key, json.dumps(clean(result), indent=2).encode())
    result["artifact"] = info.key
    # Why nothing was written back though asked (None when written, or not asked).
    result["not_written"] = _not_written_because(study, current) if write_back else None
    if write_back and result["not_written"] is None:
        result["written_params"] = write_back_params(project.spec_path, study.best_params)
    result["wrote_back"] = bool(write_back and result["not_written"] is None)
    registry.store.add_evidence(
        Evidence(
            test_id="model-3",
            passed=bool(study.trials),
            automated=True,
            project=spec.name,
            run_id=run_id,
            details={k: v for k, v in clean(result).items() if k != "trials"}
            | {"n_trials": len(study.trials)},
            artifact=info.key,
        )
    )
    return dict(clean(result))


def _not_written_because(study: StudyResult, current: float) -> str | None:
    """Why the best trial's parameters must not replace the current ones; None if they may."""
    if study.best_value is None:
        return "no trial completed"
    best = study.best_value
    better = best > current if study.direction == "maximize" else best < current
    if not better:  # a tie keeps what is there; NaN compares as not better
        return (
            f"the best trial's {study.metric} {best:.4f} does not beat the current "
            f"parameters' {current:.4f}"
        )
    return None


# -- reports of registered versions ---------------------------------------------------


def evaluate_version(
    project: Project,
    ref: str,
    *,
    registry: Registry,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    out: Path | None = None,
    run_id: str | None = None,
    stored: JSON | None = None,
) -> tuple[Path, Path, JSON]:
    """Recompute a registered version's evaluation on the project's validation split, gate it
    against the champion and write the JSON and HTML report.

    Returns:
        The JSON path, the HTML path and the report.
    """
    spec = project.spec
    version = registry.get(ref)
    if version.name != spec.name:
        raise ConfigError(
            f"{ref}: expected a version of this project's model '{spec.name}' (readyml.yaml "
            f"evaluates only it), found model '{version.name}'"
        )
    # The model is used inside the folder: an ONNX model reads its file again when the
    # serving-cost step saves it.
    with tempfile.TemporaryDirectory() as tmp:
        registry.download(version, Path(tmp))
        model = load_model(Path(tmp), trusted_types=project.trusted_types())
        evaluation = evaluate_model(
            model, train, valid, spec=spec, known_values=schema_categories(project)
        )
        names = [str(c["name"]) for c in model.signature()["inputs"]]
        pred, proba, classes = predict(model, valid[names])
    kept = {**(stored or {}), **version.metrics}
    for key in ("staleness", "spec_review"):
        evaluation[key] = kept.get(key)
    _keep_drop_column(evaluation.get("importance"), kept.get("importance"))
    champion = champion_of(registry, version.name)
    same = champion is not None and champion.model_fingerprint == version.model_fingerprint
    decision = gate(
        evaluation,
        spec.gates,
        champion=None
        if champion is None
        else {"version": champion.version, "metrics": champion.metrics},
        same_as_champion=same,
    )
    report: JSON = {
        "model": f"{version.name}:{version.version}",
        "status": version.status,
        "run_id": run_id or version.run_id,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "evaluation": evaluation,
        "gate": decision.to_dict(),
        "registered_gate": version.gate,
        "curves": curves(model.task, valid[spec.label].to_numpy(), pred, proba, classes),
    }
    target = out or project.workspace / "reports" / f"{version.name}-v{version.version}"
    json_path, html_path = write_report(report, target)
    return json_path, html_path, report


class TuneModel:
    """Run the spec's tuning study inside the pipeline when ``tuning.in_pipeline`` is set.

    ML Test Score model-3: hyperparameters are tuned. Without a ``tuning`` section the
    evidence records that none is declared; with one that is not run here, ``readyml tune``
    records the evidence instead. The study never rewrites the spec from the pipeline.
    """

    name: ClassVar[str] = "tune"
    version: ClassVar[int] = 1
    inputs: ClassVar[tuple[str, ...]] = ("train",)
    outputs: ClassVar[dict[str, Kind]] = {"tuning": "json"}
    cacheable: ClassVar[bool] = True

    def params(self, ctx: RunContext) -> JSON:
        tuning = ctx.project.spec.tuning
        return {
            "tuning": None if tuning is None else tuning.model_dump(mode="json"),
            "train": TrainModel().params(ctx),
        }

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        tuning = ctx.project.spec.tuning
        if tuning is None:
            reason = "no search space declared (tuning.space); run 'readyml tune' after adding one"
            record(ctx, "model-3", False, {"reason": reason})
            return StepResult({"tuning": {"ran": False, "reason": reason}}, "not tuned: " + reason)
        if not tuning.in_pipeline:
            reason = "tuning.in_pipeline is false; 'readyml tune' runs the study"
            return StepResult({"tuning": {"ran": False, "reason": reason}}, reason)
        result = tune_project(
            ctx.project, registry=ctx.registry, train=inputs["train"], run_id=ctx.run_id
        )
        summary = {k: v for k, v in result.items() if k != "trials"}
        best = result.get("best_value")
        return StepResult(
            {"tuning": {"ran": True, **summary}},
            f"{len(result['trials'])} trials; best {result['metric']} = "
            f"{best if best is None else round(best, 4)} (current params "
            f"{round(result['current_value'], 4)})",
        )


def _keep_drop_column(importance: Any, registered: Any) -> None:
    """Carry the drop-column importance measured when the version was registered into a
    recomputed ``importance``: it needs the training pipeline's refits, which a report of a
    registered version (possibly exported or distilled since) does not repeat."""
    if not isinstance(importance, dict) or not isinstance(registered, dict):
        return
    then = registered.get("features")
    now = importance.get("features")
    if not isinstance(then, dict) or not isinstance(now, dict):
        return
    carried = 0
    for name, values in now.items():
        old = then.get(name)
        if isinstance(values, dict) and isinstance(old, dict) and "drop_column" in old:
            values["drop_column"] = old["drop_column"]
            carried += 1
    if carried:
        importance["method"] = "permutation + drop-column"
        importance["drop_column_source"] = "the version's registration run"
