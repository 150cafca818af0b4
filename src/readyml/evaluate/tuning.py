"""Hyperparameter tuning with Optuna over the search space declared in the spec (model-3).

:func:`run_study` runs a seeded TPE study; the objective (cross-validated scoring of one
parameter set) is passed in by the training layer. Every trial is kept: number, parameters,
value, state and duration.

:func:`write_back_params` puts the best parameters into ``model.params`` of readyml.yaml.
The file is edited in place, not re-serialised: only the lines of the ``params`` mapping
under the top-level ``model`` key are replaced, so comments and layout elsewhere survive
(comments inside that mapping are lost). The result is parsed again and must equal the old
spec with only ``model.params`` changed; otherwise nothing is written.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
import yaml

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


_TOP_KEY = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)\s*:")


def _top_key(line: str) -> str | None:
    match = _TOP_KEY.match(line)
    return None if match is None else match.group("key")


def _block_end(lines: list[str], start: int, indent: int) -> int:
    end = start + 1
    while end < len(lines):
        text = lines[end]
        stripped = text.strip()
        if stripped and len(text) - len(text.lstrip()) <= indent:
            break  # a key or a comment at this depth or shallower belongs to what follows
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # keep blank lines that separate the next key
    return end


def _rewrite_params(text: str, params: dict[str, Any]) -> str | None:
    lines = text.splitlines(keepends=True)
    model = next((i for i, line in enumerate(lines) if _top_key(line) == "model"), None)
    if model is None:
        return None
    model_end = _block_end(lines, model, 0)
    body = "".join(yaml.safe_dump({"params": params}, sort_keys=False, default_flow_style=False))
    for i in range(model + 1, model_end):
        match = re.match(r"^(?P<indent>\s+)params\s*:", lines[i])
        if match is None:
            continue
        indent = len(match.group("indent"))
        end = _block_end(lines, i, indent)
        block = "".join(" " * indent + row + "\n" for row in body.splitlines())
        return "".join(lines[:i]) + block + "".join(lines[end:])
    child = next(
        (len(line) - len(line.lstrip()) for line in lines[model + 1 : model_end] if line.strip()),
        2,
    )
    block = "".join(" " * child + row + "\n" for row in body.splitlines())
    return "".join(lines[:model_end]) + block + "".join(lines[model_end:])


def write_back_params(spec_path: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Merge ``params`` into ``model.params`` of the spec file; return the new params.

    Raises:
        ConfigError: The file's ``model`` section could not be edited safely.
    """
    text = spec_path.read_text(encoding="utf-8")
    before = yaml.safe_load(text)
    merged = {**dict((before.get("model") or {}).get("params") or {}), **params}
    edited = _rewrite_params(text, merged)
    expected = {**before, "model": {**before["model"], "params": merged}}
    if edited is None or yaml.safe_load(edited) != expected:
        raise ConfigError(
            f"{spec_path.name}: could not rewrite model.params in place (unusual layout); "
            f"set them by hand: {merged}"
        )
    tmp = spec_path.with_name(spec_path.name + ".tmp")
    tmp.write_text(edited, encoding="utf-8")
    tmp.replace(spec_path)
    return merged
