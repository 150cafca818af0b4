"""Shared adapter for gradient-boosting libraries used through their scikit-learn API.

Labels are encoded to ``0..K-1`` (the classes go to ``flavor.json``, so string labels come
back as strings); categorical columns are one-hot encoded by a :class:`TabularEncoder` whose
category lists are stored as JSON. The model itself is saved in the library's native text
format, never pickled. Subclasses say how to fit, predict and save natively.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import clone

from readyml.errors import FlavorError
from readyml.flavors._base import (
    Array,
    Task,
    check_sample_weight,
    check_task,
    classes_from_json,
    not_fitted,
    write_flavor_file,
)
from readyml.flavors._signature import infer_inputs, make_signature
from readyml.flavors._tabular import TabularEncoder, encode_labels, label_codes
from readyml.types import JSON


def check_library_class(klass: Any, base: type, *, flavor: str, path: str) -> None:
    """``klass`` (named ``path`` by model.estimator) must be ``base`` or a subclass of it:
    another library's estimator would fail later with an unexpected keyword (``eval_set``).

    Raises:
        FlavorError: It is not.
    """
    if isinstance(klass, type) and issubclass(klass, base):
        return
    raise FlavorError(
        f"model.estimator: flavor {flavor!r} expected a subclass of "
        f"{base.__module__.split('.')[0]}.{base.__qualname__}, found {path!r} (use flavor: "
        "sklearn for it, or leave model.estimator out for the default)"
    )


class BoostingModel:
    """Base adapter: preprocessing, label encoding, persistence; subclasses add the library.

    Args:
        estimator: An unfitted estimator of the library's sklearn API (cloned at fit).
        task: ``"classification"`` or ``"regression"``.
        categorical: Columns to one-hot encode (inferred from dtypes when both lists are empty).
        numeric: Columns passed through as numbers.
    """

    flavor: str = ""
    model_file: str = ""
    libraries: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        estimator: Any = None,
        task: Task = "classification",
        categorical: Sequence[str] = (),
        numeric: Sequence[str] = (),
    ) -> None:
        self.estimator = estimator
        self.task = task
        self.categorical = categorical
        self.numeric = numeric

    # Library-specific steps.
    def _fit_native(
        self,
        model: Any,
        X: Array,
        y: Array,
        eval_set: list[Any] | None,
        sample_weight: Array | None,
    ) -> Any:
        raise NotImplementedError

    def _predict_native(self, X: Array) -> Array:
        """Probabilities ``(n, K)`` for classifiers, values ``(n,)`` for regressors."""
        raise NotImplementedError

    def _save_native(self, path: Path) -> None:
        raise NotImplementedError

    def _load_native(self, path: Path, content: JSON) -> None:
        raise NotImplementedError

    def fit(
        self,
        X: pd.DataFrame,
        y: npt.ArrayLike,
        *,
        X_valid: pd.DataFrame | None = None,
        y_valid: npt.ArrayLike | None = None,
        sample_weight: npt.ArrayLike | None = None,
    ) -> Self:
        """Encode, fit, and use the validation pair as the library's ``eval_set``.

        ``sample_weight`` goes to the library's fit; the validation pair stays unweighted.
        """
        if self.estimator is None:
            raise FlavorError(f"flavor {self.flavor!r}: expected an estimator, found None")
        weights = check_sample_weight(sample_weight, len(X))
        encoder = TabularEncoder(categorical=self.categorical, numeric=self.numeric).fit(X)
        target: Array
        if self.task == "classification":
            classes, target = encode_labels(y)
        else:
            classes, target = None, np.asarray(y, dtype=np.float64).ravel()
        eval_set = None
        if X_valid is not None and y_valid is not None:
            valid_target = (
                label_codes(classes, y_valid, field="y_valid")
                if classes is not None
                else np.asarray(y_valid, dtype=np.float64).ravel()
            )
            eval_set = [(encoder.transform(X_valid), valid_target)]
        self.encoder_ = encoder
        self._classes = classes
        self.model_ = self._fit_native(
            clone(self.estimator), encoder.transform(X), target, eval_set, weights
        )
        self.features_ = infer_inputs(X)
        return self

    def _check_fitted(self, attribute: str) -> None:
        if not hasattr(self, "model_"):
            raise not_fitted(self, attribute)

    def predict_proba(self, X: pd.DataFrame) -> Array:
        """Class probabilities, columns in ``classes_`` order."""
        self._check_fitted("predict_proba")
        if self.task != "classification":
            raise FlavorError(f"flavor {self.flavor!r}: a regression model has no predict_proba")
        return self._predict_native(self.encoder_.transform(X))

    def predict(self, X: pd.DataFrame) -> Array:
        """Labels in the original label space, or regression values."""
        self._check_fitted("predict")
        scores = self._predict_native(self.encoder_.transform(X))
        if self.task == "classification":
            return np.asarray(self.classes_[np.argmax(scores, axis=1)])
        return scores

    @property
    def has_proba(self) -> bool:
        """Classifiers have probabilities; regressors do not."""
        return self.task == "classification"

    @property
    def classes_(self) -> Array:
        """Class labels seen at fit (or read from ``flavor.json``)."""
        if self.task != "classification":
            raise AttributeError("a regression model has no classes_")
        self._check_fitted("classes_")
        if self._classes is None:
            raise FlavorError(f"flavor {self.flavor!r}: classifier has no stored classes")
        return self._classes

    def signature(self) -> JSON:
        """Inputs seen at fit and the output description."""
        self._check_fitted("signature")
        return make_signature(
            self.features_, task=self.task, classes=self._classes, proba=self.has_proba
        )

    def save(self, directory: Path) -> list[Path]:
        """Save the native model file and ``flavor.json`` (with the preprocessing state)."""
        self._check_fitted("save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / self.model_file
        self._save_native(path)
        meta = write_flavor_file(
            directory,
            flavor=self.flavor,
            task=self.task,
            files=[path],
            features=self.features_,
            classes=self._classes,
            libraries=self.libraries,
            extra={
                "format": "native",
                "estimator": f"{type(self.model_).__module__}.{type(self.model_).__qualname__}",
                "preprocessing": self.encoder_.to_json(),
            },
        )
        return [path, meta]

    @classmethod
    def load(cls, directory: Path, content: JSON) -> Self:
        """Load a saved model described by a verified ``flavor.json``."""
        adapter = cls(task=check_task(str(content["task"])))
        adapter.encoder_ = TabularEncoder.from_json(dict(content.get("preprocessing") or {}))
        adapter._classes = classes_from_json(content)
        adapter.features_ = list(content["features"])
        adapter._load_native(Path(directory) / cls.model_file, content)
        return adapter
