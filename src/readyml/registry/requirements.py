"""What a registered version needs installed: pinned requirements from its lineage and flavor.

The pipeline's export (``requirements.txt`` beside the model files) and ``readyml build``
(the image's ``requirements.txt``) pin by one rule, :func:`version_pins`: ``readyml`` with
the extras the reader needs, its dependency closure and the model's own libraries (its
``flavor.json``) with theirs, each at the version the training environment recorded in the
lineage where it did, else at the version installed here. Packages the training environment
merely had installed (torch beside a scikit-learn model) are left out.

A version with a local label (``torch 2.13.0+cpu``, ``+cu121``) is a vendor's own build that
no default package index serves: it is pinned by its public version (``torch==2.13.0``, which
the local build also satisfies), under a comment naming the build it was trained with.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from packaging.requirements import Requirement

from readyml.errors import ConfigError
from readyml.flavors import FLAVOR_FILE
from readyml.flavors._imports import EXTRAS
from readyml.registry.records import ModelVersion
from readyml.registry.registry import Registry
from readyml.types import JSON

# What flavor.json records for a distribution that was not installed when the model was saved.
_NOT_INSTALLED = "unknown"


def canonical(name: str) -> str:
    """A distribution name as packaging normalises it (``Scikit_Learn`` -> ``scikit-learn``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_version(name: str) -> str | None:
    """The version of ``name`` installed here, or ``None``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def training_packages(version: ModelVersion) -> dict[str, str]:
    """The package versions a version was trained with (its environment fingerprint)."""
    packages = version.lineage.get("fingerprints", {}).get("environment", {}).get("packages", {})
    return {canonical(str(name)): str(value) for name, value in packages.items()}


def model_flavor(registry: Registry, version: ModelVersion) -> JSON:
    """A version's ``flavor.json``, verified by sha256; empty when it has none."""
    for artifact in version.artifacts:
        if artifact.name == FLAVOR_FILE:
            data = registry.artifacts.get_bytes(
                artifact.key,
                sha256=artifact.sha256,
                size=artifact.size,
                label=f"model {version.name!r} version {version.version}, file {FLAVOR_FILE!r}",
            )
            content = json.loads(data)
            return content if isinstance(content, dict) else {}
    return {}


def model_libraries(flavor: JSON) -> list[str]:
    """The distributions a version's flavor loads it with (from its ``flavor.json``).

    A distribution the flavor recorded as not installed when it saved the model (the xgboost
    flavor records both ``xgboost`` and ``xgboost-cpu``; one of them is) is left out.
    """
    versions = flavor.get("versions") or {}
    return sorted(
        canonical(str(name))
        for name, value in versions.items()
        if name != "python" and value != _NOT_INSTALLED
    )


def flavor_extras(flavor: JSON) -> list[str]:
    """readyml's extra for the version's flavor (``torch``), when it installs only libraries
    the model was saved with.

    A model saved with the ``xgboost`` distribution gets no ``readyml[xgboost]``, which
    requires ``xgboost-cpu``: both would install into one ``xgboost`` package. Its libraries
    are pinned on their own lines either way (:func:`version_pins`).
    """
    extra = EXTRAS.get(str(flavor.get("flavor", "")))
    if not extra:
        return []
    libraries = set(model_libraries(flavor))
    return [extra] if extra_requirements(extra) <= libraries else []


def extra_requirements(extra: str) -> set[str]:
    """The distributions readyml's ``extra`` requires, as installed metadata says."""
    try:
        lines = importlib.metadata.requires("readyml") or []
    except importlib.metadata.PackageNotFoundError:
        return set()
    wanted = set()
    for line in lines:
        requirement = Requirement(line)
        marker = requirement.marker
        if (
            marker is not None
            and marker.evaluate({"extra": extra})
            and not marker.evaluate({"extra": ""})
        ):
            wanted.add(canonical(requirement.name))
    return wanted


def dependency_closure(name: str, extras: Sequence[str] = ()) -> dict[str, str]:
    """Installed versions of ``name`` and everything it requires here, recursively.

    Markers are evaluated for this interpreter and platform; requirements that are not
    installed (optional or excluded by a marker) are left out.
    """
    pins: dict[str, str] = {}
    pending: list[tuple[str, tuple[str, ...]]] = [(name, tuple(extras))]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while pending:
        current, current_extras = pending.pop()
        key = (canonical(current), current_extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            distribution = importlib.metadata.distribution(current)
        except importlib.metadata.PackageNotFoundError:
            continue
        pins[canonical(distribution.metadata["Name"])] = distribution.version
        for line in distribution.requires or []:
            requirement = Requirement(line)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in ("", *current_extras)
            )
            if wanted:
                pending.append((requirement.name, tuple(sorted(requirement.extras))))
    return pins


def public_version(value: str) -> str:
    """``value`` without its local label: ``2.13.0+cpu`` -> ``2.13.0``."""
    return value.partition("+")[0]


@dataclass(frozen=True)
class Pin:
    """One pinned distribution.

    Example:
        >>> Pin("torch", "2.13.0+cpu", "training").line
        'torch==2.13.0'
    """

    name: str
    """The requirement's name, with extras for readyml (``readyml[serve]``)."""
    version: str
    """The version as recorded or installed, local label included."""
    origin: Literal["training", "installed"]
    """Where the version came from: the lineage, or this environment."""

    @property
    def line(self) -> str:
        """``NAME==PUBLIC_VERSION``: installable from a default package index."""
        return f"{self.name}=={public_version(self.version)}"

    @property
    def local(self) -> str:
        """The local label (``cpu`` of ``2.13.0+cpu``), empty for a public version."""
        return self.version.partition("+")[2]

    def text(self) -> str:
        """The ``requirements.txt`` lines of this pin: a comment above a local build's pin."""
        if not self.local:
            return f"{self.line}\n"
        had = "trained with" if self.origin == "training" else "installed here as"
        bare = self.name.split("[")[0]
        return (
            f"# {bare}: {had} {self.version}, a local build (+{self.local}) that default "
            f"package indexes do not serve; =={public_version(self.version)} also accepts it, "
            "and the matching build comes from the vendor's own index\n"
            f"{self.line}\n"
        )


def requirements_text(pins: Iterable[Pin]) -> str:
    """A ``requirements.txt`` of ``pins``, in order."""
    return "".join(pin.text() for pin in pins)


def version_pins(
    version: ModelVersion, libraries: Collection[str] = (), extras: Sequence[str] = ()
) -> list[Pin]:
    """Pins of ``readyml[EXTRAS]``, then of every distribution it and ``libraries`` need.

    ``readyml[EXTRAS]`` is pinned with its dependency closure, the model's ``libraries`` (its
    flavor's, see :func:`model_libraries`) with theirs. Versions come from the training
    environment (the lineage) where it recorded them, else from this environment, so the
    pins are as reproducible as the machine that wrote them. Packages the training
    environment merely had installed (torch beside a scikit-learn model) are left out.

    Raises:
        ConfigError: readyml's version, or a model library's, is known neither from the
            lineage nor here.
    """
    trained = training_packages(version)
    readyml_trained = trained.pop("readyml", None)
    readyml_version = readyml_trained or installed_version("readyml")
    if readyml_version is None:
        raise ConfigError("readyml: expected its version in the lineage or installed here")
    pins = dependency_closure("readyml", extras)
    pins.pop("readyml", None)
    wanted = [canonical(name) for name in libraries]
    for library in wanted:
        # A compressed or API-registered version has no lineage: the model's own library
        # (torch, onnxruntime, xgboost) is pinned as installed here, with what it needs.
        if library not in pins:
            pins.update(dependency_closure(library))
    needed = set(pins) | set(wanted)
    origin: dict[str, Literal["training", "installed"]] = dict.fromkeys(pins, "installed")
    for name, pinned in trained.items():
        if name in needed:
            pins[name], origin[name] = pinned, "training"
    missing = sorted(name for name in wanted if name not in pins)
    if missing:
        raise ConfigError(
            f"model libraries: expected {', '.join(missing)} in the version's lineage or "
            "installed here, to pin them, found neither"
        )
    head = f"readyml[{','.join(extras)}]" if extras else "readyml"
    first = Pin(head, readyml_version, "training" if readyml_trained else "installed")
    return [first] + [Pin(name, pins[name], origin[name]) for name in sorted(pins)]
