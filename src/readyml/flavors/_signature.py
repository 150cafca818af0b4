"""Describe a model's inputs and output as plain JSON: the signature serving checks against.

Dtype names are stable strings independent of the pandas version (``float64``, ``int64``,
``string``, ``bool``, ``category``, ``datetime64[ns]``): pandas 3 calls its default string dtype
``str`` and older pandas ``object``; both are ``string`` here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from readyml.types import JSON


def dtype_name(dtype: Any) -> str:
    """The signature's name for a pandas or numpy dtype.

    >>> dtype_name(pd.Series(["a"]).dtype)
    'string'
    >>> dtype_name(np.dtype("int32"))
    'int32'
    """
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if isinstance(dtype, pd.StringDtype) or dtype == np.dtype(object):
        return "string"
    if isinstance(dtype, np.dtype) and dtype.kind in "US":
        return "string"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return str(dtype)
    if pd.api.types.is_numeric_dtype(dtype):
        return str(np.dtype(dtype.numpy_dtype if hasattr(dtype, "numpy_dtype") else dtype))
    return str(dtype)


def infer_inputs(X: pd.DataFrame | npt.NDArray[Any]) -> list[JSON]:
    """One ``{"name", "dtype"}`` entry per column of a frame, in order.

    A numpy array (images, tensors) is one input named ``input`` that also records its
    shape, with ``None`` for the batch dimension.

    >>> infer_inputs(pd.DataFrame({"age": [31], "city": ["Oslo"]}))
    [{'name': 'age', 'dtype': 'int64'}, {'name': 'city', 'dtype': 'string'}]
    """
    if isinstance(X, pd.DataFrame):
        return [{"name": str(name), "dtype": dtype_name(X[name].dtype)} for name in X.columns]
    array = np.asarray(X)
    return [{"name": "input", "dtype": dtype_name(array.dtype), "shape": [None, *array.shape[1:]]}]


def make_signature(
    inputs: list[JSON], *, task: str, classes: npt.NDArray[Any] | None, proba: bool
) -> JSON:
    """Assemble the signature dict every adapter's ``signature()`` returns.

    >>> make_signature([], task="regression", classes=None, proba=False)
    {'inputs': [], 'output': {'task': 'regression', 'proba': False}}
    """
    output: JSON = {"task": task}
    if classes is not None:
        output["classes"] = np.asarray(classes).tolist()
    output["proba"] = proba
    return {"inputs": [dict(entry) for entry in inputs], "output": output}
