"""Import classes and functions named in a project spec, with errors that say what to fix.

Two spellings are accepted: a dotted path (``sklearn.ensemble.RandomForestClassifier``) and an
entry point (``my_package.models:build``). Parameter names are checked against the constructor
signature before anything is fitted, so a typo fails in milliseconds with a suggestion.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from readyml._project_imports import describe_error
from readyml.errors import FlavorError

# The pip extra that provides each optional flavor's library.
EXTRAS = {"xgboost": "xgboost", "lightgbm": "lightgbm", "torch": "torch", "onnx": "onnx"}


def split_path(path: str, *, field: str) -> tuple[str, str]:
    """Split ``"module:name"`` or ``"module.name"`` into its module and attribute.

    Args:
        path: The spelled path.
        field: The spec field it came from (named in errors).

    Returns:
        The module name and the attribute name.

    Raises:
        FlavorError: The path has no module part or an empty name.
    """
    module, sep, name = path.partition(":")
    if not sep:
        module, _, name = path.rpartition(".")
    if not module or not name or ":" in name:
        raise FlavorError(
            f"{field} {path!r}: expected a dotted path 'package.module.Name' or "
            f"'package.module:function', found no module part"
        )
    return module, name


def import_object(path: str, *, field: str, kind: str = "class") -> Any:
    """Import the object a dotted path or entry point names.

    Args:
        path: ``"package.module.Name"`` or ``"package.module:name"``.
        field: The spec field it came from, e.g. ``"model.estimator"``.
        kind: What the object should be (``"class"`` or ``"function"``), for messages.

    Returns:
        The imported object.

    Raises:
        FlavorError: The module cannot be imported (missing, or its code raised: a syntax
            error, an exception at its top level) or has no such attribute.

    >>> import_object("collections:OrderedDict", field="model.estimator").__name__
    'OrderedDict'
    """
    module_name, name = split_path(path, field=field)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # importing runs the module's code: any error is the user's
        raise FlavorError(
            f"{field} {path!r}: cannot import module {module_name!r} ({describe_error(exc)})"
        ) from exc
    try:
        return getattr(module, name)
    except AttributeError as exc:
        raise FlavorError(f"{field} {path!r}: no such {kind} in module {module_name!r}") from exc


def import_library(module: str, *, flavor: str) -> Any:
    """Import an optional flavor's library, naming the extra to install when it is missing.

    Raises:
        FlavorError: ``flavor 'xgboost' needs the extra: pip install 'readyml[xgboost]'``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(flavor, flavor)
        raise FlavorError(
            f"flavor {flavor!r} needs the extra: pip install 'readyml[{extra}]' ({exc})"
        ) from exc


def _signature_names(function: Callable[..., Any]) -> tuple[set[str], bool]:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return set(), True
    names = {
        parameter.name
        for parameter in parameters
        if parameter.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    }
    names.discard("self")
    open_ended = any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters)
    return names, open_ended


def parameter_names(target: Callable[..., Any]) -> tuple[set[str], bool]:
    """Names a class constructor (over its bases) or function accepts by keyword.

    Returns:
        The explicit names, and whether the target also takes ``**kwargs``.
    """
    if not inspect.isclass(target):
        return _signature_names(target)
    # The class's own constructor decides; when it forwards **kwargs to its bases (XGBoost),
    # the bases' explicit names are accepted too.
    names, open_ended = _signature_names(target)
    if open_ended:
        for klass in inspect.getmro(target)[1:]:
            if klass is not object and "__init__" in vars(klass):
                names |= _signature_names(vars(klass)["__init__"])[0]
    return names, open_ended


def check_params(
    target: Callable[..., Any],
    params: Mapping[str, Any],
    *,
    field: str = "model.params",
    allowed: Iterable[str] = (),
    strict: bool = False,
) -> None:
    """Fail when ``params`` holds a name that ``target`` does not accept.

    Args:
        target: The class or function the parameters are for.
        params: The parameters from the spec.
        field: The spec field, named in errors.
        allowed: Extra names known to be valid (e.g. a library's own aliases).
        strict: Check even when the target takes ``**kwargs``.

    Raises:
        FlavorError: ``model.params: RandomForestClassifier has no parameter 'n_estimator'``.
    """
    names, open_ended = parameter_names(target)
    names.update(allowed)
    if open_ended and not strict:
        return
    for key in params:
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise FlavorError(
                f"{field}: {getattr(target, '__name__', target)} has no parameter {key!r}{hint}"
            )
