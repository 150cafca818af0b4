"""Fingerprints of what a run depends on: data, code, config, environment, and of models.

A fingerprint is a sha256 hex digest. Files are hashed by content in 1 MiB blocks
(``hashlib.file_digest``), frames by pandas' vectorised row hashes, so both stay fast on
large inputs. Two runs with equal fingerprints are expected to give the same model.

Code is the project's own modules that the named ``module:function`` can import: its module
and, followed through the ``import`` statements they contain (at the top or inside
functions, absolute or relative), every module whose file lies in the project folder, plus
the ``__init__.py`` of each package on the way. Read from the source rather than from
``sys.modules``, so that an import inside a function that has not run yet counts and the
fingerprint does not depend on what else this process imported. Modules outside the project
(site-packages) are not hashed; the versions of :data:`ENVIRONMENT_PACKAGES` are. An import
by a computed name (``importlib.import_module(name)``) is not seen: ``--force`` retrains
after such an edit.

A model is fingerprinted by what it is, not by what produced it: the sha256 of its saved
files, so that a retrained model that differs is registered as a new version. Two saves of
one fitted model are not byte-equal, though: skops names the arrays in its archive by
``id()`` and stamps the time, and ``flavor.json`` lists the sha256 of those bytes. Archives
are therefore hashed by their members' content (skops' ``schema.json`` with each array's
file name replaced by the hash of its bytes and ids renumbered in order), and
``flavor.json`` without its file hashes and checksum.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import io
import json
import platform
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from readyml import _project_imports as project_imports
from readyml.flavors import FLAVOR_FILE

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
    """Fingerprint of the code ``module:function`` runs: its module and the project's modules
    it imports, directly or not (see the module docstring).

    Raises:
        ConfigError: The module cannot be imported: missing, a syntax error, an exception at
            its top level (one line naming the file and line).
    """
    module = project_imports.import_module(root, target)
    origin = getattr(module, "__file__", None)
    if origin is None:  # a built-in or namespace module has no source to hash
        return hash_bytes(module.__name__.encode())
    path, root = Path(origin).resolve(), root.resolve()
    if not path.is_relative_to(root):  # installed code: its own file, as a library's version
        return hash_file(path)
    return hash_files(project_modules(path, root=root), root=root)


def project_modules(path: Path, *, root: Path) -> list[Path]:
    """The files of module ``path`` and of every project module it imports, transitively.

    Args:
        path: A module's file inside ``root``.
        root: The project folder (on ``sys.path``).

    Returns:
        Resolved paths, sorted, ``path`` included.
    """
    root = root.resolve()
    found: set[Path] = set()
    pending = [path.resolve(), *_packages_of(path.resolve(), root)]
    while pending:
        current = pending.pop()
        if current in found:
            continue
        found.add(current)
        pending.extend(_imported_files(current, root))
    return sorted(found)


def _packages_of(path: Path, root: Path) -> list[Path]:
    """The ``__init__.py`` files Python runs before the module at ``path``."""
    inits = []
    folder = path.parent
    while folder != root and folder.is_relative_to(root):
        if (folder / "__init__.py").is_file():
            inits.append(folder / "__init__.py")
        folder = folder.parent
    return inits


def _imported_files(path: Path, root: Path) -> list[Path]:
    """Project files named by the import statements of the module at ``path``."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return []  # hashed as it is; an import that fails says why itself
    package = path.parent.relative_to(root).parts  # what a relative import starts from
    names: list[tuple[str, ...]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(tuple(alias.name.split(".")) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > len(package):
                    continue
                base = package[: len(package) - (node.level - 1)]
            else:
                base = ()
            base += tuple(node.module.split(".")) if node.module else ()
            names.append(base)
            # ``from pkg import name`` may name a submodule as well as an attribute.
            names.extend((*base, alias.name) for alias in node.names if alias.name != "*")
    files: list[Path] = []
    for parts in names:
        files.extend(_module_files(parts, root))
    return files


def _module_files(parts: tuple[str, ...], root: Path) -> list[Path]:
    """The project files importing ``a.b.c`` runs: each package's ``__init__.py`` and the
    module itself; none when ``a`` is not in the project."""
    files: list[Path] = []
    folder = root
    for index, part in enumerate(parts):
        if not part.isidentifier():
            break
        module = folder / f"{part}.py"
        package = folder / part
        if (package / "__init__.py").is_file():
            files.append(package / "__init__.py")
        elif module.is_file():
            files.append(module)
            break  # a module has no submodules
        elif not package.is_dir() or index == len(parts) - 1:
            break  # not in the project, or a namespace folder without code
        folder = package
    return [f.resolve() for f in files]


def hash_model_files(files: Mapping[str, bytes]) -> str:
    """Fingerprint of a saved model's content, equal for two saves of one fitted model.

    Args:
        files: What the flavor's ``save`` wrote: relative name to bytes.

    Returns:
        sha256 over each file's name and content digest (see the module docstring).
    """
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(bytes.fromhex(_content_digest(name, files[name])))
    return digest.hexdigest()


def _content_digest(name: str, data: bytes) -> str:
    if name == FLAVOR_FILE:
        content = json.loads(data)
        # The hashes of the other files vary with their bytes; their content is hashed itself.
        return hash_json({k: v for k, v in content.items() if k not in ("files", "checksum")})
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return _archive_digest(archive)
        except (zipfile.BadZipFile, KeyError, ValueError):
            pass  # not an archive after all: its bytes are its content
    return hash_bytes(data)


def _archive_digest(archive: zipfile.ZipFile) -> str:
    """An archive's members by name and content, leaving out times and order; a skops
    archive by its schema with array files replaced by their content."""
    members = {
        info.filename: _content_digest(info.filename, archive.read(info))
        for info in archive.infolist()
        if not info.is_dir()
    }
    if "schema.json" not in members:
        return hash_json(sorted(members.items()))
    ids: dict[int, int] = {}
    referenced: set[str] = set()

    def canonical(node: Any) -> Any:
        if isinstance(node, list):
            return [canonical(item) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int):
                out[key] = ids.setdefault(value, len(ids))
            elif key == "file" and isinstance(value, str) and value in members:
                referenced.add(value)
                out[key] = members[value]
            else:
                out[key] = canonical(value)
        return out

    schema = canonical(json.loads(archive.read("schema.json")))
    others = sorted(d for n, d in members.items() if n != "schema.json" and n not in referenced)
    return hash_json({"schema": schema, "unreferenced": others})


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
