"""One entry point that evaluates a fitted model on the validation split, as the spec asks.

:func:`evaluate_model` returns the evaluation as plain JSON: overall metrics (``valid``), the
primary metric and its bootstrap confidence interval (``ci``), ``slices``, ``baselines`` with
the candidate's margins, ``importance``, ``feature_cost``, ``serving`` (latency and size) and
``fairness``. The pipeline stores it as the version's metrics; the gate and the report read it.
Timings of each part are kept under ``timings_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from readyml.config import ProjectSpec
from readyml.evaluate.baselines import Outputs, fit_baselines, margins
from readyml.evaluate.fairness import evaluate_fairness
from readyml.evaluate.importance import feature_cost, feature_importance, serving_cost
from readyml.evaluate.metrics import (
    Array,
    bootstrap_ci,
    bootstrap_margin,
    clean,
    compute_metrics,
    primary_metric,
)
from readyml.evaluate.slices import check_declared_values, evaluate_slices
from readyml.flavors import ModelAdapter


def model_inputs(model: ModelAdapter) -> list[str]:
    """The model's input columns, in order, from its signature."""
    return [str(c["name"]) for c in model.signature()["inputs"]]


def predict(model: ModelAdapter, X: pd.DataFrame) -> tuple[Array, Array | None, Array | None]:
    """Predicted labels or values, class probabilities (if any) and the classes."""
    pred = np.asarray(model.predict(X))
    if model.task == "classification" and model.has_proba:
        return pred, np.asarray(model.predict_proba(X)), np.asarray(model.classes_)
    return pred, None, None


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def time(self, name: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return fn()
        finally:
            self.timings[name] = round(time.perf_counter() - started, 4)


def evaluate_model(
    model: ModelAdapter,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    spec: ProjectSpec,
    refit_without: Callable[[str], ModelAdapter] | None = None,
    extras: bool = True,
    known_values: Mapping[str, Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``valid`` (baselines are fitted on ``train``).

    Args:
        model: The fitted candidate.
        train: The training split (for the baselines).
        valid: The validation split.
        spec: The project spec (metrics, slices, gates, fairness, importance settings).
        refit_without: Refits the model without one feature, for drop-column importance on
            small data; ``None`` skips it.
        extras: Also compute importance, feature cost and serving cost (the parts the
            gate's metric rules do not need; benchmarks turn them off).
        known_values: Values known valid per column (the schema's categories): a declared
            slice may list one absent from this data.

    Raises:
        ConfigError: A declared slice lists a value found in no row of ``train`` or
            ``valid``, nor in ``known_values``
            (see :func:`~readyml.evaluate.slices.check_declared_values`).
        DataError: A declared slice names a column the validation data lacks.
    """
    check_declared_values(spec.slices, [train, valid], known_values)
    clock = _Clock()
    task = model.task
    primary = primary_metric(task, spec.metrics.primary)
    features = model_inputs(model)
    X = valid[features]
    y = valid[spec.label].to_numpy()
    pred, proba, classes = clock.time("predict", lambda: predict(model, X))
    metrics = clock.time("metrics", lambda: compute_metrics(task, y, pred, proba, classes))
    ci = clock.time(
        "bootstrap",
        lambda: bootstrap_ci(
            primary,
            task,
            y,
            pred,
            proba,
            classes,
            resamples=spec.metrics.bootstrap,
            level=spec.metrics.confidence,
            seed=spec.seed,
        ),
    )
    slices = clock.time(
        "slices",
        lambda: evaluate_slices(
            valid,
            task=task,
            y_true=y,
            y_pred=pred,
            proba=proba,
            classes=classes,
            declared=spec.slices,
            features=features,
            auto=spec.metrics.auto_slices,
            max_auto_values=spec.metrics.max_auto_slice_values,
            min_size=spec.gates.min_slice_size,
        ),
    )
    outputs: dict[str, Outputs] = {}
    baselines = clock.time(
        "baselines",
        lambda: fit_baselines(
            task,
            train,
            valid,
            features=features,
            label=spec.label,
            seed=spec.seed,
            outputs=outputs,
        ),
    )
    for name, theirs in outputs.items():
        # Whether a baseline is better beyond validation noise (model-5's evidence).
        interval = bootstrap_margin(
            primary,
            task,
            y,
            (pred, proba, classes),
            theirs,
            resamples=spec.metrics.bootstrap,
            level=spec.metrics.confidence,
            seed=spec.seed,
        )
        if name in baselines and interval is not None:
            baselines[name]["margin_interval"] = list(interval)
    result: dict[str, Any] = {
        "task": task,
        "primary": primary,
        "n_valid": len(valid),
        "n_train": len(train),
        "valid": metrics,
        "ci": ci.to_dict(),
        "slices": [s.to_dict() for s in slices],
        "baselines": {**baselines, "margins": margins(metrics, baselines, primary)},
    }
    if spec.fairness.sensitive:
        result["fairness"] = clock.time(
            "fairness",
            lambda: evaluate_fairness(
                valid,
                task=task,
                y_true=y,
                y_pred=pred,
                attributes=spec.fairness.sensitive,
                primary=primary,
                min_group_size=spec.fairness.min_group_size,
                proba=proba,
                classes=classes,
            ),
        )
    if extras and spec.importance.enabled:
        settings = spec.importance
        use_drop = refit_without is not None and len(train) <= settings.drop_column_max_rows
        result["importance"] = clock.time(
            "importance",
            lambda: feature_importance(
                model,
                X,
                y,
                metric=primary,
                repeats=settings.repeats,
                max_rows=settings.max_rows,
                seed=spec.seed,
                refit=refit_without if use_drop else None,
                refit_budget_s=settings.drop_column_max_s,
            ),
        )
        result["feature_cost"] = clock.time(
            "feature_cost",
            lambda: feature_cost(
                X, rows=settings.cost_rows, max_feature_ms=settings.max_feature_ms
            ),
        )
    if extras:
        result["serving"] = clock.time("serving", lambda: serving_cost(model, X))
    result["timings_s"] = clock.timings
    return dict(clean(result))


def evaluate_on_rows(
    model: ModelAdapter, valid: pd.DataFrame, *, spec: ProjectSpec, slice_features: list[str]
) -> dict[str, Any] | None:
    """Overall and per-slice metrics of ``model`` on ``valid`` (no extras), for comparisons.

    The gate compares the candidate with the champion on the candidate's own validation rows:
    metrics the champion recorded on its own split are not comparable once the data changed
    (new source rows, production examples). ``slice_features`` are the candidate's features,
    so that both are cut into the same automatic slices. ``None`` when ``valid`` lacks one of
    the model's inputs.
    """
    features = model_inputs(model)
    if any(f not in valid.columns for f in features):
        return None
    y = valid[spec.label].to_numpy()
    pred, proba, classes = predict(model, valid[features])
    slices = evaluate_slices(
        valid,
        task=model.task,
        y_true=y,
        y_pred=pred,
        proba=proba,
        classes=classes,
        declared=spec.slices,
        features=slice_features,
        auto=spec.metrics.auto_slices,
        max_auto_values=spec.metrics.max_auto_slice_values,
        min_size=spec.gates.min_slice_size,
    )
    result = {
        "valid": compute_metrics(model.task, y, pred, proba, classes),
        "slices": [s.to_dict() for s in slices],
        "n_valid": len(valid),
    }
    return dict(clean(result))
