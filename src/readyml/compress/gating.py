"""The project's model gate for a compressed version: every rule, with the parent as champion.

A compressed version goes through the same gate as a trained one
(:func:`readyml.evaluate.gate.gate`): the project's absolute rules, ``beat_baselines``,
``max_latency_ms``, ``max_size_mb`` and ``fairness``, with the parent in the champion's seat
(quality relative to it). This module gathers the evidence those rules read that the quality
evaluation does not: the baselines and the serving cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from readyml.compress.measure import predict_p95_ms
from readyml.config import ChampionRule, GatesSpec
from readyml.evaluate.baselines import fit_baselines, margins
from readyml.flavors import ModelAdapter
from readyml.types import JSON

# Column holding the label in the frames the baselines are fitted on (not a model input).
_LABEL = "_readyml_label"


def gate_spec(
    spec: GatesSpec | None, primary: str, max_quality_loss: float, max_slice_loss: float
) -> GatesSpec:
    """The project's gates with a ``champion`` rule against the parent in place of its own."""
    champion = ChampionRule(
        metric=primary,
        max_regression=max_quality_loss,
        relative=False,
        max_slice_regression=max_slice_loss,
    )
    return (spec or GatesSpec()).model_copy(update={"champion": champion})


def _frame(X: Any, y: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        frame = X.reset_index(drop=True)
    else:  # images and other arrays: one column per value, as a linear model sees them
        values = np.asarray(X).reshape(len(X), -1)
        frame = pd.DataFrame(values, columns=[f"x{i}" for i in range(values.shape[1])])
    return frame.assign(**{_LABEL: np.asarray(y)})


def refit_baselines(
    task: str, X_train: Any, y_train: Any, X_valid: Any, y_valid: Any, *, seed: int
) -> JSON:
    """The dummy and linear baselines, fitted on the parent's training rows, scored on its
    validation rows.

    Refitted rather than read from the parent's metrics: a compressed parent records none,
    and the same rows and seed give the numbers the training run's gate read.
    """
    train, valid = _frame(X_train, y_train), _frame(X_valid, y_valid)
    features = [str(c) for c in train.columns if c != _LABEL]
    return fit_baselines(task, train, valid, features=features, label=_LABEL, seed=seed)


def with_baselines(quality: JSON, baselines: JSON | None) -> JSON:
    """``quality`` with the baselines and its margins over them, as the gate reads them."""
    if baselines is None:
        return quality
    primary = str(quality["primary"])
    found = {**baselines, "margins": margins(quality["valid"], baselines, primary)}
    return {**quality, "baselines": found}


def serving(model: ModelAdapter, X: Any, size_bytes: int) -> JSON:
    """What ``max_latency_ms`` and ``max_size_mb`` bound, measured on the candidate.

    Size is the report's: the model files on disk (the ``.ort`` file for ORT), not a pickle
    of the adapter.
    """
    return {"latency_ms_p95": predict_p95_ms(model, X), "size_mb": size_bytes / 1e6}
