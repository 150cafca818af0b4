"""Turn a raw frame into a float matrix, with state that persists as JSON, never pickle.

Categorical columns are one-hot encoded against the categories seen at fit (unknown and
missing values encode as all zeros); numeric columns pass through, optionally standardized
(mean/std), with missing values kept as NaN for tree libraries or set to the mean (zero after
standardizing) for neural networks. Which columns are which comes from the spec; when the spec
names none, numeric and boolean dtypes are numeric and everything else categorical.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from readyml.errors import FlavorError, NotFittedError
from readyml.types import JSON

Array = npt.NDArray[Any]


def split_columns(
    X: pd.DataFrame, categorical: Sequence[str], numeric: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The categorical and numeric feature columns of ``X``.

    Raises:
        FlavorError: A declared column is missing, or an undeclared datetime column would
            have to be guessed at.
    """
    if not isinstance(X, pd.DataFrame):
        raise FlavorError(f"features: expected a pandas DataFrame, found {type(X).__name__}")
    columns = [str(name) for name in X.columns]
    if categorical or numeric:
        for kind, names in (("categorical", categorical), ("numeric", numeric)):
            for name in names:
                if name not in columns:
                    raise FlavorError(
                        f"column {name!r} (declared {kind}): missing from the training frame, "
                        f"which has columns {columns}"
                    )
        return list(categorical), list(numeric)
    inferred_categorical: list[str] = []
    inferred_numeric: list[str] = []
    for name in columns:
        dtype = X[name].dtype
        if pd.api.types.is_datetime64_any_dtype(dtype):
            raise FlavorError(
                f"column {name!r}: {dtype} cannot be a model feature as is; declare the "
                "categorical and numeric columns, or derive numeric features from it"
            )
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            inferred_numeric.append(name)
        else:
            inferred_categorical.append(name)
    return inferred_categorical, inferred_numeric


class TabularEncoder:
    """One-hot categoricals and (optionally standardized) numerics as one float32 matrix.

    Args:
        categorical: Columns to one-hot encode.
        numeric: Columns to pass through as numbers.
        standardize: Subtract the mean and divide by the standard deviation, and fill missing
            numbers with zero (for neural networks).

    >>> frame = pd.DataFrame({"x": [1.0, 3.0], "city": ["Oslo", "Rome"]})
    >>> TabularEncoder(categorical=["city"], numeric=["x"]).fit(frame).transform(frame).tolist()
    [[1.0, 0.0, 1.0], [0.0, 1.0, 3.0]]
    """

    def __init__(
        self,
        *,
        categorical: Sequence[str] = (),
        numeric: Sequence[str] = (),
        standardize: bool = False,
    ) -> None:
        self.categorical = categorical
        self.numeric = numeric
        self.standardize = standardize

    def fit(self, X: pd.DataFrame) -> TabularEncoder:
        """Learn the category lists (and means and scales) from a training frame."""
        categorical, numeric = split_columns(X, self.categorical, self.numeric)
        self.categorical_ = categorical
        self.numeric_ = numeric
        self.categories_ = {
            name: sorted(set(X[name].astype("string").dropna().tolist())) for name in categorical
        }
        values = self._numbers(X)
        if self.standardize and len(values):
            means = np.nanmean(values, axis=0) if values.size else np.zeros(len(numeric))
            scales = np.nanstd(values, axis=0) if values.size else np.ones(len(numeric))
            means = np.where(np.isfinite(means), means, 0.0)
            scales = np.where(np.isfinite(scales) & (scales > 0), scales, 1.0)
        else:
            means, scales = np.zeros(len(numeric)), np.ones(len(numeric))
        self.means_ = [float(value) for value in means]
        self.scales_ = [float(value) for value in scales]
        return self

    def _numbers(self, X: pd.DataFrame) -> Array:
        names = getattr(self, "numeric_", None)
        if names is None:
            names = split_columns(X, self.categorical, self.numeric)[1]
        if not names:
            return np.zeros((len(X), 0))
        try:
            return X[names].astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise FlavorError(
                f"numeric columns {names}: cannot convert to numbers ({exc})"
            ) from exc

    @property
    def n_features_(self) -> int:
        """Width of the encoded matrix."""
        self._check_fitted()
        return len(self.numeric_) + sum(len(values) for values in self.categories_.values())

    def _check_fitted(self) -> None:
        if not hasattr(self, "categories_"):
            raise NotFittedError("TabularEncoder is not fitted yet: call 'fit' before 'transform'")

    def transform(self, X: pd.DataFrame) -> Array:
        """Encode a frame; columns: one-hot blocks in ``categorical_`` order, then numerics."""
        self._check_fitted()
        missing = [name for name in [*self.categorical_, *self.numeric_] if name not in X.columns]
        if missing:
            raise FlavorError(
                f"features: expected columns {missing}, found only {[str(c) for c in X.columns]}"
            )
        blocks: list[Array] = []
        for name in self.categorical_:
            categories = self.categories_[name]
            values = pd.Index(X[name].astype("string").to_numpy(dtype=object), dtype=object)
            codes = pd.Index(categories, dtype=object).get_indexer(values)
            onehot = np.zeros((len(X), len(categories)), dtype=np.float32)
            known = codes >= 0
            onehot[np.flatnonzero(known), codes[known]] = 1.0
            blocks.append(onehot)
        numbers = self._numbers(X)
        if self.standardize:
            numbers = (numbers - np.asarray(self.means_)) / np.asarray(self.scales_)
            numbers = np.nan_to_num(numbers, nan=0.0)
        blocks.append(numbers.astype(np.float32))
        return np.hstack(blocks) if blocks else np.zeros((len(X), 0), dtype=np.float32)

    def to_json(self) -> JSON:
        """The fitted state as plain JSON."""
        self._check_fitted()
        return {
            "categorical": self.categorical_,
            "numeric": self.numeric_,
            "standardize": self.standardize,
            "categories": self.categories_,
            "means": self.means_,
            "scales": self.scales_,
        }

    @classmethod
    def from_json(cls, state: JSON) -> TabularEncoder:
        """Rebuild a fitted encoder from :meth:`to_json` output."""
        try:
            encoder = cls(
                categorical=list(state["categorical"]),
                numeric=list(state["numeric"]),
                standardize=bool(state["standardize"]),
            )
            encoder.categorical_ = [str(name) for name in state["categorical"]]
            encoder.numeric_ = [str(name) for name in state["numeric"]]
            encoder.categories_ = {
                str(name): [str(value) for value in values]
                for name, values in dict(state["categories"]).items()
            }
            encoder.means_ = [float(value) for value in state["means"]]
            encoder.scales_ = [float(value) for value in state["scales"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise FlavorError(f"preprocessing state in flavor.json is malformed ({exc})") from exc
        return encoder


def encode_labels(y: npt.ArrayLike) -> tuple[Array, Array]:
    """Sorted class labels and each row's integer code.

    The classes round-trip through JSON scalars, so a loaded model answers with the same
    labels (strings stay strings) as the fitted one.

    >>> classes, codes = encode_labels(["b", "a", "b"])
    >>> classes.tolist(), codes.tolist()
    (['a', 'b'], [1, 0, 1])
    """
    labels = np.asarray(y)
    if labels.ndim != 1:
        labels = labels.ravel()
    if pd.isna(labels).any():
        raise FlavorError("y: expected a label for every row, found missing labels")
    classes = np.asarray(np.unique(labels).tolist())
    return classes, label_codes(classes, labels, field="y")


def label_codes(classes: Array, y: npt.ArrayLike, *, field: str) -> Array:
    """Integer codes of ``y`` against known ``classes``; unseen labels are an error."""
    labels = np.asarray(y).ravel()
    codes = np.searchsorted(classes, labels)
    codes = np.clip(codes, 0, len(classes) - 1)
    unseen = classes[codes] != labels
    if np.any(unseen):
        raise FlavorError(
            f"{field}: labels must be among the training classes {classes.tolist()}, "
            f"found {labels[unseen][:5].tolist()}"
        )
    return codes.astype(np.int64)
