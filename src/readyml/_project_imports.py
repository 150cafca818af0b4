"""Import a project's own modules (loaders, entry points, model factories) from its folder.

Projects name their code as ``module:function`` relative to the folder holding readyml.yaml.
Two projects may both have a ``features.py``; in one process (tests, the server, notebooks)
Python's module cache would hand the second project the first one's module, so a cached
module of a name the project defines, whose file is in another project, is evicted before
importing. Likewise a project module whose file changed since :func:`import_module`
imported it: the project's modules are imported again, so that the code a run
fingerprints is the code it runs (a notebook editing ``helpers.py`` between two runs).

Importing runs the user's module, so anything may go wrong there: a syntax error, an
exception at its top level, a missing dependency. Each becomes one ``ConfigError`` line that
names the target, the file and line, and the error, never a traceback of readyml.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

from readyml.errors import ConfigError

# readyml's own frames (the import call) are never where a user's module went wrong.
_READYML = Path(__file__).resolve().parent
# Project folders put on sys.path here: a module from one of them belongs to that project.
_ROOTS: set[str] = set()
# Module name -> (file, sha256) of each project module as import_module saw it imported.
_IMPORTED: dict[str, tuple[str, str]] = {}
# Never a project's own code, though a project folder may hold them (a repository's root
# as the project, with its virtualenv and readyml's source inside).
_INSTALLED = tuple(
    str(Path(p).resolve()) + os.sep
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, str(_READYML)}
)
_NOT_PROJECT_PARTS = ("site-packages", "dist-packages", "__pycache__")


def prepare(root: Path, target: str) -> None:
    """Make ``target``'s module importable from ``root`` and not shadowed by another project's."""
    root = root.resolve()
    if sys.path[:1] != [str(root)]:  # first, ahead of another project imported before
        if str(root) in sys.path:
            sys.path.remove(str(root))
        sys.path.insert(0, str(root))
    _ROOTS.add(str(root))
    top = target.split(":", 1)[0].split(".", 1)[0]
    cached = sys.modules.get(top)
    if _defines(root, top) and cached is not None:
        origin = getattr(cached, "__file__", None)
        if origin is None or not Path(origin).resolve().is_relative_to(root):
            _evict([n for n in sys.modules if n == top or n.startswith(top + ".")])
    # The modules it imports in turn (helpers.py), when another project's are cached.
    others = [other for other in _ROOTS if other != str(root)]
    prefixes = tuple(other.rstrip(os.sep) + os.sep for other in others)
    defined: dict[str, bool] = {}
    shadowing = []
    for name, module in list(sys.modules.items()):
        origin = _file_of(module)
        if origin is None or not origin.startswith(prefixes) or _under(origin, str(root)):
            continue
        if not any(_project_file(origin, other) for other in others):
            continue
        head = name.split(".", 1)[0]
        if defined.setdefault(head, _defines(root, head)):
            shadowing.append(name)
    _evict(shadowing)


def import_module(root: Path, target: str, *, key: str | None = None) -> ModuleType:
    """Import the module of ``target`` (``module:function``) from project ``root``.

    The project's modules are imported again when one of their files changed since they
    were imported here (see the module docstring).

    Args:
        root: The project folder.
        target: ``module:function`` or ``package.module:function``.
        key: The spec field that names ``target`` (``data.source``), for the message.

    Raises:
        ConfigError: ``model.entry_point: cannot import module 'train' named by 'train:fit'
            (SyntaxError at train.py:2: invalid syntax)``.
    """
    module_name = target.split(":", 1)[0]
    prepare(root, target)
    local = _project_modules(root.resolve())
    if any(name in _IMPORTED and _IMPORTED[name] != (f, _digest(f)) for name, f in local.items()):
        _evict(list(local))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the module's own code ran: any error is the user's to fix
        prefix = f"{key}: " if key else ""
        raise ConfigError(
            f"{prefix}cannot import module '{module_name}' named by '{target}' "
            f"({describe_error(exc, root=root)})"
        ) from exc
    for name, file in _project_modules(root.resolve()).items():
        if name not in _IMPORTED or _IMPORTED[name][0] != file:
            _IMPORTED[name] = (file, _digest(file))
    return module


def _project_modules(root: Path) -> dict[str, str]:
    """Cached modules of the project's own code in ``root``, by name."""
    found = {}
    for name, module in list(sys.modules.items()):
        origin = _file_of(module)
        if origin is not None and _project_file(origin, str(root)):
            found[name] = origin
    return found


def _project_file(path: str, root: str) -> bool:
    """Whether ``path`` is the project's own code: in ``root``, not in a hidden folder
    (``.readyml``, ``.venv``), a virtualenv, site-packages or readyml itself."""
    if not _under(path, root) or path.startswith(_INSTALLED):
        return False
    parts = Path(path[len(root.rstrip(os.sep)) + 1 :]).parts[:-1]
    return not any(part.startswith(".") or part in _NOT_PROJECT_PARTS for part in parts)


def _evict(names: list[str]) -> None:
    for name in names:
        sys.modules.pop(name, None)
        _IMPORTED.pop(name, None)


def _defines(root: Path, top: str) -> bool:
    """Whether the project defines the top-level module ``top``."""
    return (root / f"{top}.py").exists() or (root / top / "__init__.py").exists()


def _file_of(module: object) -> str | None:
    origin = getattr(module, "__file__", None)
    return origin if isinstance(origin, str) else None


def _under(path: str, folder: str) -> bool:
    """Whether ``path`` is inside ``folder``, by text: modules from a folder on ``sys.path``
    carry it as written, and resolving every cached module's file would cost a system call
    each."""
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _digest(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return ""  # deleted or unreadable: differs from what was imported


def describe_error(exc: BaseException, *, root: Path | None = None) -> str:
    """``exc`` in one line with where it was raised: ``ZeroDivisionError at train.py:1:
    division by zero``.

    The place is the innermost frame inside ``root`` (the user's code rather than a library
    it called), else the innermost frame outside readyml; a syntax error gives its own. A
    missing module without a place reads as before: ``No module named 'trainx'``.
    """
    lines = str(exc.msg if isinstance(exc, SyntaxError) else exc).strip().splitlines()
    message = lines[0] if lines else ""
    place = _place(exc, root.resolve() if root is not None else None)
    if place is None and isinstance(exc, ImportError):
        return message
    where = f" at {place}" if place else ""
    return f"{type(exc).__name__}{where}: {message}" if message else f"{type(exc).__name__}{where}"


def _place(exc: BaseException, root: Path | None) -> str | None:
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{_shown(Path(exc.filename), root)}:{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).is_file()]
    inside = [f for f in frames if root is not None and _inside(Path(f.filename), root)]
    outside = [f for f in frames if not _inside(Path(f.filename), _READYML)]
    candidates = inside or outside
    if not candidates:
        return None
    chosen = candidates[-1]
    return f"{_shown(Path(chosen.filename), root)}:{chosen.lineno}"


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root)


def _shown(path: Path, root: Path | None) -> str:
    if root is not None and _inside(path, root):
        return str(path.resolve().relative_to(root))
    return str(path)
