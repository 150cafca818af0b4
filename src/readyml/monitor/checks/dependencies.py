"""Monitor 1: dependency changes — serving packages, served input schema, upstream sources.

Three comparisons against what the served version was trained with: the installed version of
every package recorded in its lineage (``environment.packages``); the columns and types of the
logged inputs against its signature; and the columns and types of each upstream data source
against the checked-in schema. Every difference is a finding naming the thing and both sides
(ML Test Score monitor-1: "dependency changes result in notification").
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pandas as pd

from readyml.data import infer_schema, read_table
from readyml.errors import ReadymlError
from readyml.monitor.checks._base import CheckResult, Finding, verdict
from readyml.monitor.inputs import EXTRA_COLUMNS, LOG_COLUMNS, PROBA_PREFIX, MonitorInputs

# Rows of an upstream source read to infer its column types.
SOURCE_SAMPLE_ROWS = 10_000
_NUMERIC = {"float", "int"}


def installed_versions(names: list[str]) -> dict[str, str]:
    """Installed versions of ``names`` in this process (absent ones are left out)."""
    import importlib.metadata

    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


class DependencyCheck:
    """Compare serving packages, served input columns and upstream schemas with training.

    Args:
        packages: distributions compared (default: all recorded at training).
        sources: upstream files or globs, relative to the project.
        versions: how serving package versions are found (a seam for tests).
    """

    name: ClassVar[str] = "dependencies"
    test_id: ClassVar[str] = "monitor-1"

    def __init__(
        self,
        *,
        packages: list[str] | None = None,
        sources: list[str] | None = None,
        versions: Callable[[list[str]], dict[str, str]] = installed_versions,
    ) -> None:
        self.packages = packages
        self.sources = sources
        self.versions = versions

    def run(self, inputs: MonitorInputs) -> CheckResult:
        ref = inputs.reference
        findings: list[Finding] = []
        trained = {
            n: v for n, v in ref.packages.items() if self.packages is None or n in self.packages
        }
        serving = self.versions(sorted(trained))
        changed = {}
        for name, version in sorted(trained.items()):
            now = serving.get(name, "absent")
            if now != version:
                changed[name] = {"training": version, "serving": now}
                findings.append(
                    Finding(
                        key=f"package:{name}",
                        message=f"package {name}: {version} at training, {now} serving",
                        labels={"package": name},
                    )
                )
        schema_changes = self._served_columns(inputs, findings)
        source_changes = self._sources(inputs, findings)
        summary = (
            f"{len(changed)} package(s), {len(schema_changes)} served column(s), "
            f"{len(source_changes)} upstream column(s) changed since training"
        )
        return verdict(
            self.name,
            self.test_id,
            findings,
            summary,
            details={
                "packages_compared": len(trained),
                "packages_changed": changed,
                "served_schema_changes": schema_changes,
                "source_changes": source_changes,
            },
        )

    def _served_columns(self, inputs: MonitorInputs, findings: list[Finding]) -> list[str]:
        frame = inputs.traffic()
        if frame.empty:
            return []
        ref = inputs.reference
        fixed = {*LOG_COLUMNS, *EXTRA_COLUMNS, "label"}
        present = [
            str(c) for c in frame.columns if c not in fixed and not str(c).startswith(PROBA_PREFIX)
        ]
        changes: list[str] = []
        for name in ref.features:
            if name not in present:
                changes.append(f"{name}: in the signature, not in the served inputs")
            else:
                expected = _family(ref.dtypes.get(name, ""))
                found = _family(str(frame[name].dtype))
                if expected and found and expected != found:
                    changes.append(
                        f"{name}: {ref.dtypes[name]} at training, {frame[name].dtype} served"
                    )
        changes += [f"{n}: served, not in the signature" for n in present if n not in ref.features]
        for change in changes:
            column = change.split(":", 1)[0]
            findings.append(
                Finding(
                    key=f"input:{column}",
                    message=f"served input {change}",
                    labels={"feature": column},
                )
            )
        return changes

    def _sources(self, inputs: MonitorInputs, findings: list[Finding]) -> list[str]:
        schema = inputs.reference.schema
        root = inputs.root
        if schema is None or root is None:
            return []
        changes: list[str] = []
        for source in self.sources or []:
            paths = sorted(glob.glob(str(root / source)))
            if not paths:
                changes.append(f"{source}: source not found")
                continue
            try:
                frame = read_table(Path(paths[-1])).head(SOURCE_SAMPLE_ROWS)
            except ReadymlError as exc:
                changes.append(f"{source}: unreadable ({exc})")
                continue
            if frame.empty:
                changes.append(f"{source}: no rows (a header only)")
                continue
            found = {f.name: f.type for f in infer_schema(frame).features}
            for feature in schema.features:
                if feature.name not in found:
                    if feature.required:
                        changes.append(f"{source}: column {feature.name} ({feature.type}) missing")
                elif not _same_type(feature.type, found[feature.name]):
                    changes.append(
                        f"{source}: column {feature.name}: {feature.type} in the schema, "
                        f"{found[feature.name]} now"
                    )
            known = {f.name for f in schema.features} | ({schema.label} if schema.label else set())
            changes += [
                f"{source}: new column {n} ({t})" for n, t in found.items() if n not in known
            ]
        for change in changes:
            source = change.split(":", 1)[0]
            findings.append(
                Finding(
                    key=f"source:{change}", message=f"upstream {change}", labels={"source": source}
                )
            )
        return changes


def _family(dtype: str) -> str:
    """A coarse type family, so int32 and int64 (or str and string) compare equal."""
    text = dtype.lower()
    if not text:
        return ""
    if text.startswith(("float", "int", "uint", "double")):
        return "number"
    if text.startswith("bool"):
        return "bool"
    if "datetime" in text or text.startswith("timestamp"):
        return "datetime"
    return "text"


def _same_type(expected: str, found: str) -> bool:
    if expected == found:
        return True
    return expected in _NUMERIC and found in _NUMERIC and expected == "float"


__all__ = ["DependencyCheck", "installed_versions", "pd"]
