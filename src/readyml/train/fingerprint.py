"""Fingerprints of what a run depends on: data, code, config and environment.

A fingerprint is a sha256 hex digest. Files are hashed by content in 1 MiB blocks
(``hashlib.file_digest``), frames by pandas' vectorised row hashes, so both stay fast on
large inputs. Two runs with equal fingerprints are expected to give the same model.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import json
import platform
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from readyml import _project_imports as project_imports
from readyml.errors import ConfigError

# Packages whose versions change what a model computes; recorded in the environment fingerprint.
ENVIRONMENT_PACKAGES = (
    "readyml",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "scikit-learn",
    "skops",
    "xgboost",
    "xgboost-cpu",
    "lightgbm",
    "torch",
    "onnx",
    "onnxruntime",
)


def hash_bytes(data: bytes) -> str:
    """sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def hash_json(value: Any) -> str:
    """sha256 of a JSON-serialisable value in canonical form (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hash_bytes(text.encode("utf-8"))


def hash_file(path: Path) -> str:
    """sha256 of a file's content."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def hash_files(paths: Iterable[Path], *, root: Path) -> str:
    """One fingerprint for several files, covering their names relative to ``root``."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path).encode())
        digest.update(bytes.fromhex(hash_file(path)))
    return digest.hexdigest()


def hash_frame(frame: pd.DataFrame) -> str:
    """Fingerprint of a frame's columns, dtypes and values (row order matters)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    if len(frame):
        rows = pd.util.hash_pandas_object(frame, index=False, categorize=True).to_numpy()
        digest.update(np.ascontiguousarray(rows).tobytes())
    return digest.hexdigest()


def hash_callable_source(target: str, *, root: Path) -> str:
    """Fingerprint of the source file that defines ``module:function`` in project ``root``.

    The whole module is hashed, not only the function, because helpers it calls live there.
    """
    module_name = target.split(":", 1)[0]
    project_imports.prepare(root, target)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import module '{module_name}' named by '{target}' ({exc})"
        ) from exc
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return hash_bytes(module_name.encode())
    return hash_bytes(source.encode("utf-8"))


def package_versions(names: Iterable[str] = ENVIRONMENT_PACKAGES) -> dict[str, str]:
    """Installed versions of the given distributions (absent ones are left out)."""
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def environment() -> dict[str, Any]:
    """What the environment fingerprint covers: Python, platform and package versions."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": f"{platform.system()}-{platform.machine()}",
        "packages": package_versions(),
    }
