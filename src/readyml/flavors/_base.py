"""The adapter protocol and ``flavor.json``, the small file every saved model carries.

``flavor.json`` says which adapter reads the directory, for which task, with which library
versions, classes and feature columns, and lists the sha256 of every file saved beside it.
A ``checksum`` over its own canonical content catches hand edits and truncation; the registry's
artifact sha256 is what guards against deliberate tampering.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, Protocol, Self, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd

from readyml.errors import FlavorError, NotFittedError
from readyml.types import JSON

Task = Literal["classification", "regression"]
Array = npt.NDArray[Any]
Features = pd.DataFrame | Array

FLAVOR_FILE = "flavor.json"
# Bumped when the layout of flavor.json changes incompatibly.
FORMAT_VERSION = 1
_REQUIRED_KEYS = ("flavor", "task", "files", "features", "classes", "checksum")


class ModelAdapter(Protocol):
    """One interface over every framework's model, used by training and serving.

    ``predict`` answers in the original label space (string labels stay strings);
    ``predict_proba`` columns follow ``classes_``. ``classes_`` exists on classifiers only
    (a regressor raises ``AttributeError``, as in scikit-learn), which is why this protocol is
    checked statically and not ``runtime_checkable``.
    """

    flavor: str
    task: Task

    def fit(
        self,
        X: pd.DataFrame,
        y: npt.ArrayLike,
        *,
        X_valid: pd.DataFrame | None = None,
        y_valid: npt.ArrayLike | None = None,
        sample_weight: npt.ArrayLike | None = None,
    ) -> Self:
        """Fit on a training frame; the validation pair is used where the flavor can.

        ``sample_weight`` holds one non-negative weight per row of ``X`` (2.0 counts a row
        twice); all-ones weights fit exactly as no weights. See :func:`check_sample_weight`.
        """
        ...

    def predict(self, X: pd.DataFrame) -> Array:
        """Labels (classification) or values (regression), one per row."""
        ...

    def predict_proba(self, X: pd.DataFrame) -> Array:
        """Class probabilities, shape ``(n_rows, n_classes)``; ``FlavorError`` if none."""
        ...

    @property
    def has_proba(self) -> bool:
        """Whether ``predict_proba`` is available."""
        ...

    @property
    def classes_(self) -> Array:
        """The class labels of a fitted or loaded classifier."""
        ...

    def save(self, directory: Path) -> list[Path]:
        """Write the model and ``flavor.json`` into ``directory``; return the paths written."""
        ...

    def signature(self) -> JSON:
        """The inputs (columns and dtypes seen at fit) and the output description."""
        ...


def check_task(task: str, *, field: str = "model.task") -> Task:
    """Return ``task`` typed as :data:`Task`, or raise ``FlavorError`` naming the choices."""
    choices = get_args(Task)
    if task not in choices:
        raise FlavorError(f"{field}: expected one of {list(choices)}, found {task!r}")
    return task  # type: ignore[return-value]


def check_sample_weight(sample_weight: npt.ArrayLike | None, n_rows: int) -> Array | None:
    """``sample_weight`` as float64, or ``None`` when absent or all ones (exactly unweighted).

    Raises:
        FlavorError: The weights are not one number per row, or hold NaN, infinity,
            negative values, or only zeros.
    """
    if sample_weight is None:
        return None
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FlavorError(f"sample_weight: expected numbers, found {exc}") from exc
    if weights.ndim != 1:
        raise FlavorError(
            f"sample_weight: expected a one-dimensional array, found shape {weights.shape}"
        )
    if len(weights) != n_rows:
        raise FlavorError(
            f"sample_weight: expected {n_rows} values (one per row of X), found {len(weights)}"
        )
    not_finite = int(np.count_nonzero(~np.isfinite(weights)))
    if not_finite:
        raise FlavorError(
            f"sample_weight: expected finite values, found {not_finite} NaN or infinite"
        )
    negative = int(np.count_nonzero(weights < 0))
    if negative:
        raise FlavorError(
            f"sample_weight: expected non-negative values, found {negative} negative "
            f"(smallest {weights.min():g})"
        )
    if not np.any(weights > 0):
        raise FlavorError(
            f"sample_weight: expected at least one positive value, found all {n_rows} zero"
        )
    if np.all(weights == 1.0):
        return None
    return weights


def not_fitted(owner: object, attribute: str = "fit") -> NotFittedError:
    """The error for using a model before ``fit`` (or ``load``) ran."""
    name = type(owner).__name__
    return NotFittedError(
        f"{name} is not fitted yet: call 'fit' (or load a saved model) before {attribute!r}"
    )


def library_versions(distributions: Iterable[str]) -> dict[str, str]:
    """Installed versions of the named distributions, plus Python's."""
    versions = {"python": platform.python_version()}
    for name in distributions:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checksum(content: JSON) -> str:
    body = {key: value for key, value in content.items() if key != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def classes_to_json(classes: Array | None) -> list[Any] | None:
    """Class labels as JSON scalars (numpy scalars become Python ones)."""
    return None if classes is None else np.asarray(classes).tolist()


def write_flavor_file(
    directory: Path,
    *,
    flavor: str,
    task: Task,
    files: list[Path],
    features: list[JSON],
    classes: Array | None,
    libraries: Iterable[str],
    extra: JSON | None = None,
) -> Path:
    """Write ``flavor.json`` describing the model files already saved in ``directory``.

    Args:
        directory: The model directory.
        flavor: The adapter that reads the directory back.
        task: ``classification`` or ``regression``.
        files: The model files written, each inside ``directory``.
        features: The signature inputs seen at fit.
        classes: Class labels of a classifier, else ``None``.
        libraries: Distributions whose versions to record.
        extra: Flavor-specific content (format, preprocessing, history ...).

    Returns:
        The path of ``flavor.json``.
    """
    content: JSON = {
        "format_version": FORMAT_VERSION,
        "flavor": flavor,
        "task": task,
        "versions": library_versions(libraries),
        "classes": classes_to_json(classes),
        "features": features,
        "files": {path.name: sha256_file(path) for path in files},
        **(extra or {}),
    }
    content["checksum"] = _checksum(content)
    path = directory / FLAVOR_FILE
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_flavor_file(directory: Path) -> JSON:
    """Read and verify ``flavor.json`` and the sha256 of every file it lists.

    Raises:
        FlavorError: The file is missing, not JSON, lacks a key, was edited, or a listed
            model file is missing or differs from what was saved.
    """
    path = Path(directory) / FLAVOR_FILE
    if not path.is_file():
        raise FlavorError(
            f"model directory {str(directory)!r}: expected {FLAVOR_FILE}, found none; "
            "save the model with a readyml flavor first"
        )
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FlavorError(f"{FLAVOR_FILE} in {str(directory)!r}: not valid JSON ({exc})") from exc
    if not isinstance(content, dict):
        raise FlavorError(f"{FLAVOR_FILE}: expected a JSON object, found {type(content).__name__}")
    missing = [key for key in _REQUIRED_KEYS if key not in content]
    if missing:
        raise FlavorError(f"{FLAVOR_FILE}: expected keys {missing}, found none of them")
    if content["checksum"] != _checksum(content):
        raise FlavorError(
            f"{FLAVOR_FILE} in {str(directory)!r}: content does not match its checksum; "
            "the file was edited or damaged after the model was saved"
        )
    for name, expected in dict(content["files"]).items():
        file = Path(directory) / name
        if Path(name).name != name or not file.is_file():
            raise FlavorError(f"{FLAVOR_FILE}: model file {name!r} is missing")
        if sha256_file(file) != expected:
            raise FlavorError(
                f"model file {name!r}: sha256 differs from the one in {FLAVOR_FILE}; "
                "the file was changed after the model was saved"
            )
    return dict(content)


def classes_from_json(content: JSON) -> Array | None:
    """The class labels stored in ``flavor.json``, as a numpy array (or ``None``)."""
    classes = content.get("classes")
    return None if classes is None else np.asarray(classes)
