"""The scikit-learn flavor: any sklearn-compatible estimator, persisted with skops.

skops stores estimators without pickle, but a file can still name types whose loading runs
code. We never trust the list a file gives: :data:`TRUSTED_TYPES` is the set of types beyond
skops' own defaults that we reviewed, and a file naming anything else is refused, unless the
caller vouches for it with ``trusted_types`` (a project's ``model.trusted_types``: its own
classes, which its config names and training already ran). Models skops cannot store that way
are saved with joblib (pickle) only when ``allow_pickle=True`` was given at save *and* at load;
``flavor.json`` records the ``format``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, clone, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

from readyml.errors import FlavorError
from readyml.flavors._base import (
    Array,
    Features,
    Task,
    check_sample_weight,
    check_task,
    classes_from_json,
    not_fitted,
    write_flavor_file,
)
from readyml.flavors._imports import check_params, import_object, parameter_names
from readyml.flavors._signature import infer_inputs, make_signature
from readyml.flavors._skops import skops_io
from readyml.flavors._tabular import split_columns
from readyml.types import JSON

# Types skops does not trust by default that we reviewed: compiled tree and neighbour
# structures of scikit-learn which hold arrays only and run no user code when loaded.
TRUSTED_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    }
)
SKOPS_FILE = "model.skops"
JOBLIB_FILE = "model.joblib"
_LIBRARIES = ("scikit-learn", "skops", "numpy", "pandas")


def _name(estimator: Any) -> str:
    return type(estimator).__name__


def _is_fitted(model: Any) -> bool:
    """Whether scikit-learn judges ``model`` fitted; a duck-typed model it cannot judge is."""
    if not (isinstance(model, BaseEstimator) or hasattr(model, "__sklearn_is_fitted__")):
        return True
    try:
        check_is_fitted(model)
    except SklearnNotFittedError:
        return False
    return True


def untrusted_types(path: Path, trusted_types: Sequence[str] = ()) -> list[str]:
    """Types in a skops file outside skops' defaults, :data:`TRUSTED_TYPES` and
    ``trusted_types`` (those the caller vouches for)."""
    found = set(skops_io().get_untrusted_types(file=path))
    return sorted(found - TRUSTED_TYPES - set(trusted_types))


def _refused_message(refused: list[str]) -> str:
    """The way out of a refusal: the project key that vouches for the types."""
    example = ", ".join(name for name in refused if not name.startswith("<")) or "module.Class"
    return (
        f"if the project's own code defines them, declare them in readyml.yaml as "
        f"model.trusted_types: [{example}] (Python: trusted_types=[...])"
    )


def preprocessing_pipeline(
    estimator: Any, X: pd.DataFrame, categorical: Sequence[str], numeric: Sequence[str]
) -> Pipeline:
    """``estimator`` behind a ColumnTransformer that one-hot encodes the categoricals.

    Numeric columns pass through; columns in neither list are dropped. When both lists are
    empty, they are inferred from the dtypes of ``X``.
    """
    categorical_columns, numeric_columns = split_columns(X, categorical, numeric)
    transformers: list[tuple[str, Any, list[str]]] = []
    if categorical_columns:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        transformers.append(("categorical", encoder, categorical_columns))
    if numeric_columns:
        transformers.append(("numeric", "passthrough", numeric_columns))
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def weight_params(estimator: Any, weights: Array) -> dict[str, Any]:
    """The fit keyword that hands ``weights`` to the final estimator of (nested) pipelines.

    Raises:
        FlavorError: The final estimator's ``fit`` has no ``sample_weight`` parameter.
    """
    if isinstance(estimator, Pipeline):
        step, final = estimator.steps[-1]
        inner = weight_params(final, weights)
        return {f"{step}__{name}": value for name, value in inner.items()}
    if not has_fit_parameter(estimator, "sample_weight"):
        raise FlavorError(
            f"model {_name(estimator)}: does not accept sample weights (its fit has no "
            "sample_weight parameter); fit without sample_weight or choose an estimator that "
            "supports them"
        )
    return {"sample_weight": weights}


class SklearnModel:
    """Adapter for a scikit-learn estimator, or for a user function that fits one.

    Args:
        estimator: An unfitted sklearn-compatible estimator (cloned at fit).
        entry_point: ``"module:function"`` called as ``fn(X, y, params, seed)`` that returns a
            fitted estimator; used instead of ``estimator`` when given.
        params: Passed to the entry point.
        task: ``"classification"`` or ``"regression"``.
        categorical: Columns to one-hot encode (with ``preprocess``).
        numeric: Columns to pass through (with ``preprocess``).
        seed: Passed to the entry point.
        preprocess: Put ``estimator`` behind the one-hot ColumnTransformer so raw frames go in.
        allow_pickle: Save with joblib when skops cannot store the model safely.
        trusted_types: Class paths beyond the reviewed allow-list that skops may store (the
            caller's own classes, e.g. ``["mymodels.MyClassifier"]``).

    >>> from sklearn.linear_model import LogisticRegression
    >>> frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    >>> model = SklearnModel(estimator=LogisticRegression()).fit(frame, ["lo", "lo", "hi", "hi"])
    >>> model.predict(frame).tolist()
    ['lo', 'lo', 'hi', 'hi']
    """

    flavor: str = "sklearn"

    def __init__(
        self,
        *,
        estimator: Any = None,
        entry_point: str | None = None,
        params: dict[str, Any] | None = None,
        task: Task = "classification",
        categorical: Sequence[str] = (),
        numeric: Sequence[str] = (),
        seed: int = 0,
        preprocess: bool = True,
        allow_pickle: bool = False,
        trusted_types: Sequence[str] = (),
    ) -> None:
        self.estimator = estimator
        self.entry_point = entry_point
        self.params = params
        self.task = task
        self.categorical = categorical
        self.numeric = numeric
        self.seed = seed
        self.preprocess = preprocess
        self.allow_pickle = allow_pickle
        self.trusted_types = trusted_types

    def fit(
        self,
        X: pd.DataFrame,
        y: npt.ArrayLike,
        *,
        X_valid: pd.DataFrame | None = None,
        y_valid: npt.ArrayLike | None = None,
        sample_weight: npt.ArrayLike | None = None,
    ) -> Self:
        """Fit the estimator (or call the entry point); the validation pair is not used.

        ``sample_weight`` goes to the final estimator's ``fit`` (through the pipeline as
        ``<step>__sample_weight``); entry points take no weights.

        Raises:
            FlavorError: The weights are invalid, or weights other than all ones were given
                for an entry point or an estimator whose ``fit`` takes no ``sample_weight``.
        """
        labels = np.asarray(y)
        weights = check_sample_weight(sample_weight, len(X))
        if self.entry_point is not None:
            if weights is not None:
                raise FlavorError(
                    f"model.entry_point {self.entry_point!r}: entry points do not take sample "
                    "weights; fit without sample_weight or configure an estimator class"
                )
            function = import_object(self.entry_point, field="model.entry_point", kind="function")
            model = function(X, labels, dict(self.params or {}), self.seed)
            if not (hasattr(model, "predict") and hasattr(model, "fit")):
                raise FlavorError(
                    f"model.entry_point {self.entry_point!r}: expected a fitted estimator with "
                    f"fit/predict, found {type(model).__name__}"
                )
            if not _is_fitted(model):
                raise FlavorError(
                    f"model.entry_point {self.entry_point!r}: expected a fitted estimator, "
                    f"found an unfitted {_name(model)}; call its fit before returning it"
                )
        else:
            if self.estimator is None:
                raise FlavorError("model.estimator: expected an estimator or an entry_point")
            estimator = clone(self.estimator)
            if self.preprocess:
                estimator = preprocessing_pipeline(estimator, X, self.categorical, self.numeric)
            fit_params = {} if weights is None else weight_params(estimator, weights)
            try:
                model = estimator.fit(X, labels, **fit_params)
            except (TypeError, ValueError) as exc:
                raise FlavorError(f"model {_name(self.estimator)}: fit failed: {exc}") from exc
        self.model_ = model
        self.features_ = infer_inputs(X)
        return self

    def _model(self, attribute: str) -> Any:
        if not hasattr(self, "model_"):
            raise not_fitted(self, attribute)
        return self.model_

    def predict(self, X: Features) -> Array:
        """Predicted labels (original label space) or values."""
        return np.asarray(self._model("predict").predict(X))

    @property
    def has_proba(self) -> bool:
        """Whether the fitted (or configured) estimator has ``predict_proba``."""
        model = getattr(self, "model_", self.estimator)
        return self.task == "classification" and hasattr(model, "predict_proba")

    def predict_proba(self, X: Features) -> Array:
        """Class probabilities, columns in ``classes_`` order."""
        model = self._model("predict_proba")
        if not self.has_proba:
            raise FlavorError(
                f"model {_name(model)}: expected a classifier with predict_proba, found none"
            )
        return np.asarray(model.predict_proba(X))

    @property
    def classes_(self) -> Array:
        """Class labels of the fitted classifier."""
        if self.task != "classification":
            raise AttributeError("a regression model has no classes_")
        return np.asarray(self._model("classes_").classes_)

    def signature(self) -> JSON:
        """Inputs seen at fit and the output description."""
        self._model("signature")
        classes = self.classes_ if self.task == "classification" else None
        return make_signature(self.features_, task=self.task, classes=classes, proba=self.has_proba)

    def save(self, directory: Path) -> list[Path]:
        """Save with skops (joblib only with ``allow_pickle``) and write ``flavor.json``."""
        model = self._model("save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / SKOPS_FILE
        refused: list[str]
        try:
            skops_io().dump(model, path)
            refused = untrusted_types(path, self.trusted_types)
        except (TypeError, ValueError, AttributeError) as exc:
            refused = [f"<skops cannot serialize: {exc}>"]
        file_format = "skops"
        if refused:
            path.unlink(missing_ok=True)
            if not self.allow_pickle:
                raise FlavorError(
                    f"model {_final_name(model)}: skops can store it only with types outside "
                    f"the reviewed allow-list {refused}; {_refused_message(refused)}, or pass "
                    "allow_pickle=True to save it with joblib (pickle)"
                )
            import joblib

            path = directory / JOBLIB_FILE
            joblib.dump(model, path)
            file_format = "joblib"
        classes = self.classes_ if self.task == "classification" else None
        meta = write_flavor_file(
            directory,
            flavor=self.flavor,
            task=self.task,
            files=[path],
            features=self.features_,
            classes=classes,
            libraries=_LIBRARIES,
            extra={"format": file_format, "estimator": _qualified_name(model)},
        )
        return [path, meta]

    @classmethod
    def load(
        cls,
        directory: Path,
        content: JSON,
        *,
        allow_pickle: bool = False,
        trusted_types: Sequence[str] = (),
    ) -> SklearnModel:
        """Load a saved model described by a verified ``flavor.json``.

        ``trusted_types`` are class paths the caller vouches for beyond the reviewed
        allow-list (never a list read from the model's files); their modules must be
        importable.

        Raises:
            FlavorError: The skops file names an untrusted type or cannot be loaded, or the
                model was saved with joblib and ``allow_pickle`` is false.
        """
        directory = Path(directory)
        file_format = content.get("format")
        if file_format == "skops":
            path = directory / SKOPS_FILE
            refused = untrusted_types(path, trusted_types)
            if refused:
                raise FlavorError(
                    f"{SKOPS_FILE}: refusing to load types outside the reviewed allow-list: "
                    f"{refused}; {_refused_message(refused)}"
                )
            sio = skops_io()
            try:
                model = sio.load(path, trusted=sorted(set(sio.get_untrusted_types(file=path))))
            except (ImportError, AttributeError, TypeError, ValueError) as exc:
                # A trusted class whose module is not importable here, or has changed.
                raise FlavorError(f"{SKOPS_FILE}: cannot load it ({exc})") from exc
        elif file_format == "joblib":
            if not allow_pickle:
                raise FlavorError(
                    f"{JOBLIB_FILE}: the model was saved with joblib (pickle), which runs code "
                    "when loaded; pass allow_pickle=True only if you trust its source"
                )
            import joblib

            model = joblib.load(directory / JOBLIB_FILE)
        else:
            raise FlavorError(
                f"flavor.json: format expected 'skops' or 'joblib', found {file_format!r}"
            )
        adapter = cls(
            task=check_task(str(content["task"])),
            allow_pickle=allow_pickle,
            trusted_types=trusted_types,
        )
        adapter.model_ = model
        adapter.features_ = list(content["features"])
        stored = classes_from_json(content)
        model_classes = getattr(model, "classes_", None)
        if (
            adapter.task == "classification"
            and stored is not None
            and model_classes is not None
            and np.asarray(model_classes).tolist() != stored.tolist()
        ):
            raise FlavorError("flavor.json: classes differ from the saved model's classes_")
        return adapter


def _qualified_name(model: Any) -> str:
    final = model.steps[-1][1] if isinstance(model, Pipeline) else model
    return f"{type(final).__module__}.{type(final).__qualname__}"


def _final_name(model: Any) -> str:
    """The class name of the estimator at the end of a (preprocessing) pipeline."""
    return _qualified_name(model).rsplit(".", 1)[-1]


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
    trusted_types: Sequence[str] = (),
) -> SklearnModel:
    """Build the adapter from spec fields (see :func:`readyml.flavors.build_model`)."""
    if entry_point is not None:
        import_object(entry_point, field="model.entry_point", kind="function")
        return SklearnModel(
            entry_point=entry_point,
            params=dict(params),
            task=task,
            categorical=categorical,
            numeric=numeric,
            seed=seed,
            allow_pickle=allow_pickle,
            trusted_types=trusted_types,
        )
    if estimator is None:
        raise FlavorError(
            "model.estimator: flavor 'sklearn' expected an estimator class path "
            "(e.g. 'sklearn.ensemble.RandomForestClassifier') or an entry_point, found neither"
        )
    instance = make_estimator(estimator, params, task=task, seed=seed)
    return SklearnModel(
        estimator=instance,
        task=task,
        categorical=categorical,
        numeric=numeric,
        seed=seed,
        allow_pickle=allow_pickle,
        trusted_types=trusted_types,
    )


def make_estimator(
    path: str, params: dict[str, Any], *, task: Task, seed: int, strict: bool = False
) -> Any:
    """Instantiate the estimator class ``path`` with checked ``params`` and the seed.

    ``random_state`` is set from ``seed`` when the class accepts it and ``params`` does not
    set it. The estimator must be a classifier for classification and a regressor for
    regression, when it declares which it is.
    """
    klass = import_object(path, field="model.estimator", kind="class")
    if not isinstance(klass, type) or not hasattr(klass, "fit"):
        raise FlavorError(
            f"model.estimator {path!r}: expected an estimator class with fit/predict, "
            f"found {type(klass).__name__}"
        )
    check_params(klass, params, strict=strict)
    arguments = dict(params)
    if "random_state" in parameter_names(klass)[0] and "random_state" not in arguments:
        arguments["random_state"] = seed
    try:
        instance = klass(**arguments)
    except (TypeError, ValueError) as exc:
        raise FlavorError(f"model.params for {path!r}: {exc}") from exc
    if task == "classification" and is_regressor(instance):
        raise FlavorError(f"model.estimator {path!r}: expected a classifier, found a regressor")
    if task == "regression" and is_classifier(instance):
        raise FlavorError(f"model.estimator {path!r}: expected a regressor, found a classifier")
    return instance
