"""Model flavors: one adapter protocol over scikit-learn, XGBoost, LightGBM, PyTorch and ONNX.

Training builds an adapter with :func:`build_model` and calls ``fit``/``save``; serving calls
:func:`load_model` on a saved directory, which reads ``flavor.json`` and dispatches to the
adapter that wrote it. Every adapter answers ``predict`` in the original label space, gives
``predict_proba`` where it can, and describes its inputs with ``signature()``.

Libraries of optional flavors are imported only when that flavor is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from readyml.errors import FlavorError
from readyml.flavors._base import FLAVOR_FILE, ModelAdapter, check_task, read_flavor_file

__all__ = [
    "FLAVORS",
    "FLAVOR_FILE",
    "ModelAdapter",
    "available_flavors",
    "build_model",
    "load_model",
]

# Flavor name -> (adapter module, the library it needs to import).
FLAVORS: dict[str, tuple[str, str]] = {
    "sklearn": ("readyml.flavors.sklearn", "sklearn"),
    "xgboost": ("readyml.flavors.xgboost", "xgboost"),
    "lightgbm": ("readyml.flavors.lightgbm", "lightgbm"),
    "torch": ("readyml.flavors.torch", "torch"),
    "onnx": ("readyml.flavors.onnx", "onnxruntime"),
}
_ADAPTER_CLASSES = {
    "sklearn": "SklearnModel",
    "xgboost": "XGBoostModel",
    "lightgbm": "LightGBMModel",
    "torch": "TorchModel",
    "onnx": "OnnxModel",
}


def available_flavors() -> list[str]:
    """Flavors whose library is installed, in a fixed order.

    >>> "sklearn" in available_flavors()
    True
    """
    return [
        name
        for name, (_, library) in FLAVORS.items()
        if importlib.util.find_spec(library) is not None
    ]


def _flavor_module(flavor: str, *, field: str) -> Any:
    if flavor not in FLAVORS:
        raise FlavorError(f"{field}: expected one of {sorted(FLAVORS)}, found {flavor!r}")
    module_name, library = FLAVORS[flavor]
    if importlib.util.find_spec(library) is None:
        extra = "onnx" if flavor == "onnx" else flavor
        raise FlavorError(f"flavor {flavor!r} needs the extra: pip install 'readyml[{extra}]'")
    return importlib.import_module(module_name)


def build_model(
    *,
    flavor: str,
    estimator: str | None,
    params: dict[str, Any],
    entry_point: str | None,
    task: str,
    categorical: Sequence[str],
    numeric: Sequence[str],
    seed: int,
    allow_pickle: bool = False,
    trusted_types: Sequence[str] = (),
) -> ModelAdapter:
    """Build an unfitted adapter from the ``model`` section of a project spec.

    Args:
        flavor: ``sklearn``, ``xgboost``, ``lightgbm`` or ``torch``.
        estimator: Dotted class path (``sklearn.ensemble.RandomForestClassifier``); for torch
            a module factory ``"module:function"``. Optional for xgboost/lightgbm (the
            classifier or regressor by task) and torch (a default MLP).
        params: Estimator parameters; for torch, training parameters (``epochs``,
            ``batch_size``, ``lr``, ``patience``, ``weight_decay``, ``validation_fraction``)
            and factory arguments.
        entry_point: ``"module:function"``: for sklearn a function ``fn(X, y, params, seed)``
            returning a fitted estimator; for torch the module factory.
        task: ``classification`` or ``regression``.
        categorical: Columns to one-hot encode (inferred from dtypes when both lists are empty).
        numeric: Numeric columns.
        seed: Random seed (``random_state`` where the estimator accepts it).
        allow_pickle: Let the sklearn flavor save with joblib when skops cannot.
        trusted_types: Class paths (``model.trusted_types``) the sklearn flavor may store
            with skops beyond the reviewed allow-list; other flavors do not use skops.

    Returns:
        An adapter following :class:`ModelAdapter`.

    Raises:
        FlavorError: Unknown flavor, class path or parameter name, or a missing library.

    >>> model = build_model(flavor="sklearn", estimator="sklearn.tree.DecisionTreeClassifier",
    ...     params={"max_depth": 2}, entry_point=None, task="classification",
    ...     categorical=[], numeric=[], seed=0)
    >>> model.flavor
    'sklearn'
    """
    module = _flavor_module(flavor, field="model.flavor")
    if flavor == "onnx":
        raise FlavorError("flavor 'onnx' cannot be trained; export a trained model to ONNX instead")
    if not isinstance(params, dict):
        raise FlavorError(f"model.params: expected a mapping, found {type(params).__name__}")
    builder = cast(Callable[..., ModelAdapter], module.build)
    trust = {"trusted_types": tuple(trusted_types)} if flavor == "sklearn" else {}
    return builder(
        estimator=estimator,
        params=dict(params),
        entry_point=entry_point,
        task=check_task(task),
        categorical=list(categorical),
        numeric=list(numeric),
        seed=int(seed),
        allow_pickle=allow_pickle,
        **trust,
    )


def load_model(
    directory: Path, *, allow_pickle: bool = False, trusted_types: Sequence[str] = ()
) -> ModelAdapter:
    """Load a model saved by any adapter's ``save``, verifying ``flavor.json`` and file hashes.

    Args:
        directory: The directory ``save`` wrote.
        allow_pickle: Allow loading a sklearn model saved with joblib (runs code from the file;
            only for models whose source you trust).
        trusted_types: Class paths a sklearn model's skops file may hold beyond the reviewed
            allow-list: the project's ``model.trusted_types``, never a list from the model's
            own files. Their modules must be importable.

    Raises:
        FlavorError: ``flavor.json`` is missing, damaged or names an unknown flavor; a model
            file is missing or changed; the model holds types we do not trust.
    """
    directory = Path(directory)
    content = read_flavor_file(directory)
    flavor = str(content["flavor"])
    module = _flavor_module(flavor, field=f"{FLAVOR_FILE} flavor")
    adapter_class = getattr(module, _ADAPTER_CLASSES[flavor])
    if flavor == "sklearn":
        return cast(
            ModelAdapter,
            adapter_class.load(
                directory, content, allow_pickle=allow_pickle, trusted_types=tuple(trusted_types)
            ),
        )
    return cast(ModelAdapter, adapter_class.load(directory, content))
