"""The project spec, ``readyml.yaml``, as pydantic models.

Every key is declared; an unknown key, a wrong type or an impossible combination becomes a
:class:`~readyml.errors.ConfigError` whose one-line message names the key, what was expected
and what was found. Checks that need the data (does the label column exist?) happen when the
data is loaded, in :mod:`readyml.train.steps`.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from readyml.errors import ConfigError

SPEC_FILE = "readyml.yaml"
_LOADER = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
WORKSPACE_DIR = ".readyml"

FeatureType = Literal["float", "int", "bool", "category", "string", "datetime"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Spec):
    """Where the training data comes from: a file, a glob, or a ``module:function`` loader."""

    source: str = Field(
        description="CSV or Parquet path or glob (relative to the project), or module:function"
    )
    format: Literal["auto", "csv", "parquet"] = "auto"

    @property
    def is_loader(self) -> bool:
        """Whether the source names a Python loader rather than files."""
        return _LOADER.match(self.source) is not None


class FeatureSpec(_Spec):
    """One input feature; its type is inferred from the data when not given."""

    name: str
    type: FeatureType | None = None
    description: str = ""


class SplitSpec(_Spec):
    """How rows are split into training and validation sets."""

    method: Literal["random", "time"] = "random"
    test_size: float = Field(default=0.25, gt=0.0, lt=1.0)
    stratify: bool = True
    time_column: str | None = None
    cutoff: date | datetime | None = None

    @model_validator(mode="after")
    def _time_needs_column(self) -> SplitSpec:
        if self.method == "time" and (self.time_column is None or self.cutoff is None):
            raise ValueError("split.method 'time' needs split.time_column and split.cutoff")
        return self


class ModelSpec(_Spec):
    """The model: a flavor plus an estimator class and its params, or a training entry point."""

    flavor: Literal["sklearn", "xgboost", "lightgbm", "torch"] = "sklearn"
    estimator: str | None = None
    entry_point: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_of_estimator_or_entry_point(self) -> ModelSpec:
        if (self.estimator is None) == (self.entry_point is None):
            raise ValueError("model: give exactly one of model.estimator or model.entry_point")
        if self.entry_point is not None and ":" not in self.entry_point:
            raise ValueError(
                f"model.entry_point: expected 'module:function', found {self.entry_point!r}"
            )
        return self


CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse", "r2")


class MetricsSpec(_Spec):
    """The primary metric (used by gates) and other metrics to record."""

    primary: str | None = None
    others: list[str] = Field(default_factory=list)

    @field_validator("primary", "others")
    @classmethod
    def _known(cls, value: str | list[str] | None) -> str | list[str] | None:
        known = set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS)
        for name in [value] if isinstance(value, str) else value or []:
            if name not in known:
                raise ValueError(f"unknown metric {name!r}; expected one of {sorted(known)}")
        return value


class SliceSpec(_Spec):
    """A named subset of rows: a column's values, or a numeric range of a column."""

    name: str
    column: str
    values: list[str | int | float | bool] | None = None
    min: float | None = None
    max: float | None = None


class GateRule(_Spec):
    """An absolute threshold on a metric, e.g. ``{metric: accuracy, min: 0.5}``."""

    metric: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_bound(self) -> GateRule:
        if self.min is None and self.max is None:
            raise ValueError(f"gates.rules[{self.metric}]: give min, max or both")
        return self


class GatesSpec(_Spec):
    """Rules the candidate must satisfy to be blessed."""

    rules: list[GateRule] = Field(default_factory=list)


class ServingSpec(_Spec):
    """Serving settings (filled by the serving issue)."""


class MonitoringSpec(_Spec):
    """Monitoring settings (filled by the monitoring issue)."""


class ProjectSpec(_Spec):
    """The whole ``readyml.yaml``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    description: str = ""
    seed: int = 42
    data: DataSpec
    label: str
    task: Literal["auto", "classification", "regression"] = "auto"
    features: list[str | FeatureSpec] | None = None
    exclude: list[str] = Field(default_factory=list)
    split: SplitSpec = Field(default_factory=SplitSpec)
    model: ModelSpec
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    slices: list[SliceSpec] = Field(default_factory=list)
    gates: GatesSpec = Field(default_factory=GatesSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)

    def feature_specs(self) -> list[FeatureSpec] | None:
        """Declared features as :class:`FeatureSpec` (``None``: use every column)."""
        if self.features is None:
            return None
        return [FeatureSpec(name=f) if isinstance(f, str) else f for f in self.features]


class Project:
    """A loaded project: its spec plus the directory it lives in.

    Example:
        >>> project = Project.load("readyml-demo")  # doctest: +SKIP
        >>> project.spec.label
        'weather'
    """

    def __init__(self, *, spec: ProjectSpec, root: Path, raw: dict[str, Any]) -> None:
        self.spec = spec
        self.root = root
        self.raw = raw

    @classmethod
    def load(cls, path: str | Path = ".") -> Project:
        """Load ``readyml.yaml`` from a project directory (or the file itself)."""
        path = Path(path)
        spec_path = path / SPEC_FILE if path.is_dir() else path
        if not spec_path.exists():
            raise ConfigError(
                f"project spec '{spec_path}' not found; run 'readyml init DIR' to create one"
            )
        try:
            raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{spec_path.name}: not valid YAML{where}") from exc
        if not isinstance(raw, dict):
            found = type(raw).__name__ if raw is not None else "an empty file"
            raise ConfigError(f"{spec_path.name}: expected a mapping of keys, found {found}")
        return cls(
            spec=parse_spec(raw, source=spec_path.name), root=spec_path.parent.resolve(), raw=raw
        )

    @property
    def workspace(self) -> Path:
        """The ``.readyml/`` folder holding the local stores."""
        return self.root / WORKSPACE_DIR

    @property
    def spec_path(self) -> Path:
        """Path of ``readyml.yaml``."""
        return self.root / SPEC_FILE


def parse_spec(raw: dict[str, Any], *, source: str = SPEC_FILE) -> ProjectSpec:
    """Validate a raw mapping as a :class:`ProjectSpec`, raising one-line ConfigErrors."""
    try:
        return ProjectSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from exc


def _describe(exc: ValidationError) -> str:
    """Turn pydantic's first error into 'key: expected X, found Y'."""
    error = exc.errors()[0]
    loc = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    kind = error["type"]
    found = error.get("input")
    if kind == "extra_forbidden":
        return f"unknown key '{loc}'"
    if kind == "missing":
        return f"missing required key '{loc}'"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error":
        return f"{loc}: {message}" if loc and not message.startswith(loc.split(".")[0]) else message
    shown = repr(found)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{loc}: {message.lower()}, found {shown}"
