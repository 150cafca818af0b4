"""Data 4: features adhere to meta-level requirements, declared per feature in schema.yaml.

Each feature of the checked-in schema may carry a ``meta`` mapping; the project's
``score`` section says what every feature needs. The rules checked:

* ``description``: every feature used by the model has a non-empty description;
* ``meta_required`` keys (default ``owner``): present and non-empty in every feature's meta;
* ``allowed_sources``: when given, ``meta.source`` must be one of them (data from an
  unapproved upstream is a violation);
* deprecation: a feature whose ``meta.deprecated`` is ``true`` or a date not after today must
  not be a model feature any more (list it under ``exclude`` in readyml.yaml or drop it).

The label is exempt: it is not an input feature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from readyml.config import Project
from readyml.data import Schema, load_schema
from readyml.types import JSON, Evidence

SCHEMA_FILE = "schema.yaml"


@dataclass(frozen=True)
class MetaViolation:
    """One feature breaking one meta-level rule."""

    feature: str
    rule: str
    message: str


@dataclass
class MetaReport:
    """The outcome of the meta-level rules over a schema."""

    features: int
    checked: list[str]
    violations: list[MetaViolation] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every used feature follows every rule."""
        return not self.violations

    def to_dict(self) -> JSON:
        """JSON form."""
        return {
            "features": self.features,
            "rules": self.checked,
            "violations": [asdict(v) for v in self.violations],
            "passed": self.passed,
        }


def _deprecated(value: object, today: date) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, datetime):
        return value.date() <= today
    if isinstance(value, date):
        return value <= today
    if isinstance(value, str):
        try:
            return date.fromisoformat(value) <= today
        except ValueError:
            return bool(value.strip())
    return False


def check_meta_rules(
    schema: Schema,
    *,
    required: list[str],
    allowed_sources: list[str] | None = None,
    used: set[str] | None = None,
    today: date | None = None,
) -> MetaReport:
    """Check each feature's description and ``meta`` against the rules.

    Args:
        schema: The checked-in schema.
        required: Meta keys every feature must give (e.g. ``["owner"]``).
        allowed_sources: Approved values of ``meta.source``; ``None``: any.
        used: Names the model uses; deprecated features outside it are fine.
        today: The date deprecations are judged against.

    >>> from readyml.data import FeatureSchema
    >>> schema = Schema([FeatureSchema("age", "int", description="years", meta={"owner": "a"}),
    ...                  FeatureSchema("zip", "string", meta={"deprecated": True})])
    >>> [v.rule for v in check_meta_rules(schema, required=["owner"]).violations]
    ['description', 'required:owner', 'deprecated']
    """
    today = today or datetime.now(UTC).date()
    rules = ["description", *(f"required:{key}" for key in required)]
    if allowed_sources is not None:
        rules.append("allowed_sources")
    rules.append("deprecated")
    report = MetaReport(features=0, checked=rules)
    for feature in schema.features:
        if feature.name == schema.label:
            continue
        report.features += 1
        in_use = used is None or feature.name in used
        meta = feature.meta
        name = feature.name
        if in_use and not feature.description.strip():
            report.violations.append(
                MetaViolation(name, "description", f"feature '{name}': description is empty")
            )
        for key in required:
            value = meta.get(key)
            if value is None or (isinstance(value, str) and not value.strip()):
                report.violations.append(
                    MetaViolation(
                        name, f"required:{key}", f"feature '{name}': meta.{key} is missing"
                    )
                )
        if allowed_sources is not None and meta.get("source") not in allowed_sources:
            report.violations.append(
                MetaViolation(
                    name,
                    "allowed_sources",
                    f"feature '{name}': meta.source expected one of {allowed_sources}, "
                    f"found {meta.get('source')!r}",
                )
            )
        if in_use and _deprecated(meta.get("deprecated"), today):
            report.violations.append(
                MetaViolation(
                    name,
                    "deprecated",
                    f"feature '{name}': deprecated ({meta.get('deprecated')}) but still used "
                    "by the model; add it to exclude in readyml.yaml",
                )
            )
    return report


def used_features(project: Project, schema: Schema) -> set[str]:
    """The schema features the model will use: declared features, else all minus excluded."""
    spec = project.spec
    declared = spec.feature_specs()
    if declared is not None:
        return {f.name for f in declared}
    return {n for n in schema.names if n != spec.label and n not in spec.exclude}


def check_project_meta(project: Project, *, today: date | None = None) -> tuple[Evidence, str]:
    """Run the meta-level rules on the project's schema.yaml; return evidence and a summary."""
    spec = project.spec
    path = project.root / SCHEMA_FILE
    if not path.exists():
        details: JSON = {"error": f"{SCHEMA_FILE} not found; run 'readyml run' to infer it"}
        summary = str(details["error"])
        passed = False
    else:
        schema = load_schema(path)
        report = check_meta_rules(
            schema,
            required=list(spec.score.meta_required),
            allowed_sources=spec.score.allowed_sources,
            used=used_features(project, schema),
            today=today,
        )
        details = report.to_dict()
        passed = report.passed
        if passed:
            summary = f"{report.features} features follow {len(report.checked)} rules"
        else:
            first = report.violations[0].message
            summary = f"{len(report.violations)} violation(s); first: {first}"
            details["reason"] = summary
    evidence = Evidence(
        test_id="data-4",
        passed=passed,
        automated=True,
        project=spec.name,
        details=details,
        artifact=str(Path(SCHEMA_FILE)),
    )
    return evidence, summary
