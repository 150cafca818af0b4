"""Hyperparameter tuning with Optuna over the search space declared in the spec (model-3).

:func:`run_study` runs a seeded TPE study; the objective (cross-validated scoring of one
parameter set) is passed in by the training layer. Every trial is kept: number, parameters,
value, state and duration.

:func:`write_back_params` puts the best parameters into ``model.params`` of readyml.yaml.
The file is edited in place (a ruamel.yaml round trip), not re-serialised: only the values of
the tuned keys change, so comments and layout survive, those inside ``params`` included. The
result is parsed again and must equal the old spec with only ``model.params`` changed;
otherwise nothing is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
import yaml

from readyml._yaml_edit import EditableYaml
from readyml.config import SearchDimension, TuningSpec
from readyml.errors import ConfigError
from readyml.evaluate.metrics import HIGHER_IS_BETTER, clean


@dataclass(frozen=True)
class StudyResult:
    """The outcome of a tuning study."""

    metric: str
    direction: str
    best_params: dict[str, Any]
    best_value: float | None
    trials: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0
    cv: int = 3

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return dict(clean(asdict(self)))


def suggest(trial: optuna.Trial, name: str, dim: SearchDimension) -> Any:
    """Draw one parameter value from its declared range."""
    if dim.type == "categorical":
        return trial.suggest_categorical(name, list(dim.choices or []))
    low, high = float(dim.low or 0.0), float(dim.high or 0.0)
    if dim.type == "int":
        step = int(dim.step) if dim.step and not dim.log else 1
        return trial.suggest_int(name, int(low), int(high), step=step, log=dim.log)
    return trial.suggest_float(name, low, high, log=dim.log, step=None if dim.log else dim.step)


def run_study(
    spec: TuningSpec,
    *,
    metric: str,
    objective: Callable[[dict[str, Any]], float],
    seed: int = 0,
    n_trials: int | None = None,
    timeout_s: float | None = None,
) -> StudyResult:
    """Run the study: ``objective(params)`` returns the cross-validated ``metric``.

    Raises:
        ConfigError: The search space is empty, or ``n_trials`` is below 1.
    """
    if not spec.space:
        raise ConfigError("tuning.space: expected at least one parameter to search, found none")
    if n_trials is not None and n_trials < 1:
        raise ConfigError(f"n_trials: expected at least 1 trial, found {n_trials}")
    direction: Literal["maximize", "minimize"] = (
        "maximize" if HIGHER_IS_BETTER.get(metric, True) else "minimize"
    )
    records: list[dict[str, Any]] = []

    def _objective(trial: optuna.Trial) -> float:
        params = {name: suggest(trial, name, dim) for name, dim in spec.space.items()}
        started = time.perf_counter()
        value = objective(params)
        records.append(
            {
                "number": trial.number,
                "params": params,
                "value": value,
                "duration_s": round(time.perf_counter() - started, 4),
            }
        )
        return value

    started = time.perf_counter()
    verbosity = optuna.logging.get_verbosity()
    # A failed trial's error propagates to the caller, which reports it in one line; Optuna
    # would first log it with its whole traceback (a warning).
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        sampler = optuna.samplers.TPESampler(seed=seed)
        study = optuna.create_study(direction=direction, sampler=sampler)
        study.optimize(
            _objective,
            n_trials=spec.n_trials if n_trials is None else n_trials,
            timeout=timeout_s if timeout_s is not None else spec.timeout_s,
            catch=(),
        )
    finally:
        optuna.logging.set_verbosity(verbosity)
    states = {t.number: t.state.name.lower() for t in study.trials}
    for record in records:
        record["state"] = states.get(record["number"], "complete")
    best = study.best_trial if any(t.state.name == "COMPLETE" for t in study.trials) else None
    return StudyResult(
        metric=metric,
        direction=direction,
        best_params=dict(best.params) if best else {},
        best_value=None if best is None or best.value is None else float(best.value),
        trials=records,
        duration_s=round(time.perf_counter() - started, 3),
        cv=spec.cv,
    )


def write_back_params(spec_path: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Merge ``params`` into ``model.params`` of the spec file; return the new params.

    Raises:
        ConfigError: The file's ``model`` section could not be edited safely.
    """
    text = spec_path.read_text(encoding="utf-8")
    before = yaml.safe_load(text)
    model = before.get("model") if isinstance(before, dict) else None
    model = model if isinstance(model, dict) else {}
    old = model.get("params")
    merged = {**(old if isinstance(old, dict) else {}), **params}
    edited = _with_params(text, params, merged) if model else None
    if edited is None or yaml.safe_load(edited) != {**before, "model": {**model, "params": merged}}:
        raise ConfigError(
            f"{spec_path.name}: could not rewrite model.params in place (unusual layout); "
            f"set them by hand: {merged}"
        )
    tmp = spec_path.with_name(spec_path.name + ".tmp")
    tmp.write_text(edited, encoding="utf-8")
    tmp.replace(spec_path)
    return merged


def _with_params(text: str, params: dict[str, Any], merged: dict[str, Any]) -> str | None:
    """``text`` with ``params`` set in ``model.params``; None when its layout is unusual."""
    from ruamel.yaml.comments import CommentedMap

    try:
        editable = EditableYaml(text)
    except ValueError:
        return None
    model = editable.document.get("model") if isinstance(editable.document, CommentedMap) else None
    if not isinstance(model, CommentedMap):
        return None
    current = model.get("params")
    if isinstance(current, CommentedMap):
        for key, value in params.items():
            if key not in current:
                editable.append(current, key, value)
            elif current[key] != value:
                current[key] = editable.node(value)  # it keeps its place and its comment
    else:
        model["params"] = editable.node(merged)
    return editable.dump()
