"""Import a project's own modules (loaders, entry points, model factories) from its folder.

Projects name their code as ``module:function`` relative to the folder holding readyml.yaml.
Two projects may both have a ``features.py``; in one process (tests, the server, notebooks)
Python's module cache would hand the second project the first one's module, so a cached
module whose file is not inside the project is evicted before importing.
"""

from __future__ import annotations

import sys
from pathlib import Path


def prepare(root: Path, target: str) -> None:
    """Make ``target``'s module importable from ``root`` and not shadowed by another project's."""
    root = root.resolve()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    top = target.split(":", 1)[0].split(".", 1)[0]
    local = (root / f"{top}.py").exists() or (root / top / "__init__.py").exists()
    cached = sys.modules.get(top)
    if not local or cached is None:
        return
    origin = getattr(cached, "__file__", None)
    if origin is None or not Path(origin).resolve().is_relative_to(root):
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]
