"""The XGBoost flavor: ``XGBClassifier``/``XGBRegressor`` saved as native JSON.

XGBoost accepts any booster parameter by keyword and only warns about names it does not use;
that warning is turned into a ``FlavorError`` naming the parameters, so typos do not pass
silently.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from readyml.errors import FlavorError
from readyml.flavors._base import Array, Task
from readyml.flavors._boosting import BoostingModel, check_library_class
from readyml.flavors._imports import import_library, import_object
from readyml.flavors.sklearn import make_estimator
from readyml.types import JSON

_UNUSED = re.compile(r"Parameters: \{(?P<names>[^}]*)\} are not used")
DEFAULT_ESTIMATORS = {
    "classification": "xgboost.XGBClassifier",
    "regression": "xgboost.XGBRegressor",
}


class XGBoostModel(BoostingModel):
    """Adapter for XGBoost's scikit-learn API (see :class:`BoostingModel` for arguments).

    >>> import pandas as pd, xgboost
    >>> frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    >>> model = XGBoostModel(estimator=xgboost.XGBClassifier(n_estimators=2))
    >>> model.fit(frame, ["lo", "lo", "hi", "hi"]).classes_.tolist()
    ['hi', 'lo']
    """

    flavor = "xgboost"
    model_file = "model.json"
    libraries = ("xgboost-cpu", "xgboost", "numpy", "pandas", "scikit-learn")

    def _fit_native(
        self,
        model: Any,
        X: Array,
        y: Array,
        eval_set: list[Any] | None,
        sample_weight: Array | None,
    ) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                model.fit(X, y, sample_weight=sample_weight, eval_set=eval_set, verbose=False)
            except Exception as exc:  # xgboost raises its own XGBoostError and ValueError
                raise FlavorError(f"model {type(model).__name__}: fit failed: {exc}") from exc
        for warning in caught:
            match = _UNUSED.search(str(warning.message))
            if match:
                names = [name.strip().strip('"') for name in match.group("names").split(",")]
                raise FlavorError(
                    f"model.params: {type(model).__name__} has no parameter "
                    f"{', '.join(repr(name) for name in names if name)}"
                )
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
        return model

    def _predict_native(self, X: Array) -> Array:
        if self.task == "classification":
            return np.asarray(self.model_.predict_proba(X))
        return np.asarray(self.model_.predict(X))

    def _save_native(self, path: Path) -> None:
        self.model_.save_model(path)

    def _load_native(self, path: Path, content: JSON) -> None:
        name = str(content.get("estimator", DEFAULT_ESTIMATORS[self.task]))
        if not name.startswith("xgboost."):
            raise FlavorError(f"flavor.json: estimator expected an xgboost class, found {name!r}")
        import_library("xgboost", flavor=self.flavor)
        model = import_object(name, field="flavor.json estimator")()
        try:
            model.load_model(path)
        except Exception as exc:  # xgboost.core.XGBoostError for damaged files
            raise FlavorError(f"{path.name}: xgboost cannot load it ({exc})") from exc
        self.model_ = model


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
) -> XGBoostModel:
    """Build the adapter from spec fields (see :func:`readyml.flavors.build_model`)."""
    xgboost = import_library("xgboost", flavor="xgboost")
    if entry_point is not None:
        raise FlavorError(
            "model.entry_point: flavor 'xgboost' expected an estimator class path, found an "
            "entry_point (use flavor 'sklearn' for a function returning a fitted estimator)"
        )
    path = estimator or DEFAULT_ESTIMATORS[task]
    klass = import_object(path, field="model.estimator", kind="class")
    check_library_class(klass, xgboost.XGBModel, flavor="xgboost", path=path)
    instance = make_estimator(path, params, task=task, seed=seed)
    return XGBoostModel(estimator=instance, task=task, categorical=categorical, numeric=numeric)
