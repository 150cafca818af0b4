"""skops.io, imported without pulling PyTorch into processes that do not use it.

At import, skops lists scikit-learn's estimators as trusted types with
``sklearn.utils.all_estimators``, which walks every scikit-learn package. The walk imports
scikit-learn's array-API shim for torch, and with it torch itself, wherever torch is installed:
1.5 s and about 190 MB resident per process (measured), in every server worker and CLI
command of a scikit-learn project. The walk ignores packages whose import fails with an
ImportError, and the shim holds no estimator, so torch is hidden from the importing thread for
the length of that one import; the trusted types are the same either way.
"""

from __future__ import annotations

import importlib
import sys
import threading
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any


class _HideTorch:
    """A meta-path finder that makes ``torch`` unimportable in one thread."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if threading.get_ident() == self.thread and name.partition(".")[0] == "torch":
            raise ModuleNotFoundError(f"{name} is hidden while skops.io is imported", name=name)
        return None


def skops_io() -> ModuleType:
    """The ``skops.io`` module, imported on first use (see the module docstring)."""
    if "skops.io" in sys.modules or "torch" in sys.modules:
        return importlib.import_module("skops.io")
    finder = _HideTorch()
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module("skops.io")
    finally:
        sys.meta_path.remove(finder)
