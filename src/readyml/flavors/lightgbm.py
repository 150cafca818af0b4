"""The LightGBM flavor: ``LGBMClassifier``/``LGBMRegressor``, saved as a native text model.

Predictions go through the ``Booster`` both after fit and after load, so a loaded model
answers exactly like the fitted one. Parameter names are checked against the estimator's
signature and LightGBM's own parameter and alias list. Training is quiet (``verbose=-1``)
unless the spec sets ``verbose``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from readyml.errors import FlavorError
from readyml.flavors._base import Array, Task
from readyml.flavors._boosting import BoostingModel, check_library_class
from readyml.flavors._imports import check_params, import_library, import_object
from readyml.flavors.sklearn import make_estimator
from readyml.types import JSON

DEFAULT_ESTIMATORS = {
    "classification": "lightgbm.LGBMClassifier",
    "regression": "lightgbm.LGBMRegressor",
}


def lightgbm_parameter_names() -> set[str]:
    """Every core LightGBM parameter name and alias."""
    lightgbm = import_library("lightgbm", flavor="lightgbm")
    aliases: dict[str, list[str]] = lightgbm.basic._ConfigAliases._get_all_param_aliases()
    return {name for canonical, names in aliases.items() for name in (canonical, *names)}


class LightGBMModel(BoostingModel):
    """Adapter for LightGBM's scikit-learn API (see :class:`BoostingModel` for arguments).

    >>> import pandas as pd, lightgbm
    >>> frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    >>> model = LightGBMModel(estimator=lightgbm.LGBMRegressor(n_estimators=2, verbose=-1))
    >>> model.fit(frame, [0.0, 0.0, 1.0, 1.0]).predict(frame).shape
    (4,)
    """

    flavor = "lightgbm"
    model_file = "model.txt"
    libraries = ("lightgbm", "numpy", "pandas", "scikit-learn")

    def _fit_native(
        self,
        model: Any,
        X: Array,
        y: Array,
        eval_set: list[Any] | None,
        sample_weight: Array | None,
    ) -> Any:
        arguments: dict[str, Any] = {}
        if eval_set:
            valid_X, valid_y = eval_set[0]
            # LightGBM 4.7 deprecates eval_set in favour of eval_X/eval_y.
            if "eval_X" in inspect.signature(model.fit).parameters:
                arguments = {"eval_X": (valid_X,), "eval_y": (valid_y,)}
            else:
                arguments = {"eval_set": eval_set}
        try:
            model.fit(X, y, sample_weight=sample_weight, **arguments)
        except Exception as exc:  # lightgbm raises LightGBMError and ValueError
            raise FlavorError(f"model {type(model).__name__}: fit failed: {exc}") from exc
        self.booster_ = model.booster_
        return model

    def _predict_native(self, X: Array) -> Array:
        scores = np.asarray(self.booster_.predict(X))
        if self.task == "classification" and scores.ndim == 1:
            return np.column_stack([1.0 - scores, scores])
        return scores

    def _save_native(self, path: Path) -> None:
        self.booster_.save_model(str(path))

    def _load_native(self, path: Path, content: JSON) -> None:
        lightgbm = import_library("lightgbm", flavor=self.flavor)
        try:
            self.booster_ = lightgbm.Booster(model_file=str(path))
        except Exception as exc:  # lightgbm.basic.LightGBMError for damaged files
            raise FlavorError(f"{path.name}: lightgbm cannot load it ({exc})") from exc
        self.model_ = self.booster_


def build(
    *,
    estimator: str | None,
    params: dict[str, Any],
    entry_point: str | None,
    task: Task,
    categorical: Sequence[str],
    numeric: Sequence[str],
    seed: int,
    allow_pickle: bool = False,
) -> LightGBMModel:
    """Build the adapter from spec fields (see :func:`readyml.flavors.build_model`)."""
    lightgbm = import_library("lightgbm", flavor="lightgbm")
    if entry_point is not None:
        raise FlavorError(
            "model.entry_point: flavor 'lightgbm' expected an estimator class path, found an "
            "entry_point (use flavor 'sklearn' for a function returning a fitted estimator)"
        )
    path = estimator or DEFAULT_ESTIMATORS[task]
    klass = import_object(path, field="model.estimator", kind="class")
    check_library_class(klass, lightgbm.LGBMModel, flavor="lightgbm", path=path)
    check_params(klass, params, allowed=lightgbm_parameter_names(), strict=True)
    arguments = {"verbose": -1, "deterministic": True, **params}
    instance = make_estimator(path, arguments, task=task, seed=seed)
    return LightGBMModel(estimator=instance, task=task, categorical=categorical, numeric=numeric)
