"""The project spec, ``readyml.yaml``, as pydantic models.

Every key is declared; an unknown key, a wrong type or an impossible combination becomes a
:class:`~readyml.errors.ConfigError` whose one-line message names the key, what was expected
and what was found. Checks that need the data (does the label column exist?) happen when the
data is loaded, in :mod:`readyml.train.steps`.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Hashable
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from readyml.errors import ConfigError
from readyml.types import is_test_id

SPEC_FILE = "readyml.yaml"
_LOADER = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_TYPE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")  # module.Class
WORKSPACE_DIR = ".readyml"

FeatureType = Literal["float", "int", "bool", "category", "string", "datetime"]
_DATE_OR_DATETIME: TypeAdapter[date | datetime] = TypeAdapter(date | datetime)
# Seeds reach numpy and scikit-learn, which take 0 <= seed < 2**32.
MAX_SEED = 2**32


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProductionDataSpec(_Spec):
    """Labelled production examples (``readyml review import``) added to the training data.

    ``weight``: each example counts this many times in training; ``max_age``: examples whose
    request is older than this (at run time) are left out; ``datasets``: which production
    dataset versions (default: all, the newest label of an example winning); ``window``: the
    newest production examples within this span of the latest one are reported apart in
    evaluation, candidate against champion.
    """

    enabled: bool = True
    weight: float = Field(default=1.0, gt=0.0, le=1000.0)
    max_age: str | None = None
    datasets: list[int] | None = None
    window: str = "7d"

    @field_validator("max_age", "window")
    @classmethod
    def _duration(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _check_duration(value, f"data.production.{info.field_name}")


class DataSpec(_Spec):
    """Where the training data comes from: a file, a glob, or a ``module:function`` loader."""

    source: str = Field(
        description="CSV or Parquet path or glob (relative to the project), or module:function"
    )
    format: Literal["auto", "csv", "parquet"] = Field(
        default="auto",
        description="how every file is read: csv, parquet, or auto (by its extension)",
    )
    production: ProductionDataSpec | None = None

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
    # Strict: "0.25" and "yes" are typos of a number and a boolean, not values to coerce.
    test_size: float = Field(default=0.25, gt=0.0, lt=1.0, strict=True)
    stratify: bool = Field(default=True, strict=True)
    time_column: str | None = None
    cutoff: date | datetime | None = None

    @field_validator("cutoff", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        if value is None or isinstance(value, date):  # a datetime is a date too
            return value
        if isinstance(value, str):
            with contextlib.suppress(ValidationError):
                return _DATE_OR_DATETIME.validate_python(value)
        raise ValueError(f"expected a date (YYYY-MM-DD) or datetime, found {value!r}")

    @model_validator(mode="after")
    def _time_needs_column(self) -> SplitSpec:
        if self.method == "time" and (self.time_column is None or self.cutoff is None):
            raise ValueError("split.method 'time' needs split.time_column and split.cutoff")
        if self.method == "random" and self.cutoff is not None:
            raise ValueError(
                "split.cutoff: expected only with split.method 'time', found it with 'random' "
                "(where it would be ignored)"
            )
        return self


class ModelSpec(_Spec):
    """The model: a flavor plus an estimator class and its params, or a training entry point."""

    flavor: Literal["sklearn", "xgboost", "lightgbm", "torch"] = "sklearn"
    estimator: str | None = None
    entry_point: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    trusted_types: list[str] = Field(
        default_factory=list,
        description="classes of the project's own code (module.Class) that skops may store "
        "and load with the model; the list is read from here, never from a model file",
    )

    @field_validator("trusted_types")
    @classmethod
    def _type_names(cls, value: list[str]) -> list[str]:
        names = []
        for index, name in enumerate(value):
            dotted = name.replace(":", ".")  # as model.estimator names it: module:Class
            if not _TYPE_NAME.match(dotted):
                raise ValueError(
                    f"model.trusted_types[{index}]: expected a class path such as "
                    f"mymodels.MyClassifier, found {name!r}"
                )
            names.append(dotted)
        return names

    @model_validator(mode="after")
    def _one_of_estimator_or_entry_point(self) -> ModelSpec:
        if self.estimator is not None and self.entry_point is not None:
            raise ValueError("model: give exactly one of model.estimator or model.entry_point")
        # xgboost and lightgbm pick their classifier or regressor by task, torch an MLP.
        if self.flavor == "sklearn" and self.estimator is None and self.entry_point is None:
            raise ValueError(
                "model: give exactly one of model.estimator or model.entry_point (flavor "
                "sklearn has no default estimator)"
            )
        if self.entry_point is not None and ":" not in self.entry_point:
            raise ValueError(
                f"model.entry_point: expected 'module:function', found {self.entry_point!r}"
            )
        return self


CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "calibration_error",
)
REGRESSION_METRICS = ("mae", "rmse", "r2", "mape")
# The values each metric can take (lowest, highest): a rule beyond them can never pass.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    **{name: (0.0, 1.0) for name in CLASSIFICATION_METRICS if name != "log_loss"},
    "log_loss": (0.0, math.inf),
    "mae": (0.0, math.inf),
    "rmse": (0.0, math.inf),
    "mape": (0.0, math.inf),
    "r2": (-math.inf, 1.0),
}


# Disparities fairness rules can bound besides the primary metric's ``<metric>_difference``.
_CLASS_DISPARITIES = ("demographic_parity_difference", "equalized_odds_difference")


def _known_metric(name: str) -> str:
    known = sorted({*CLASSIFICATION_METRICS, *REGRESSION_METRICS})
    if name not in known:
        raise ValueError(f"unknown metric {name!r}; expected one of {known}")
    return name


class MetricsSpec(_Spec):
    """The primary metric (used by gates) and others shown beside it in ``readyml run``'s
    summary (every metric of the task is computed and recorded either way).

    ``bootstrap`` resamples of the validation rows give the primary metric's confidence
    interval at level ``confidence``; ``auto_slices`` adds one slice per value of every
    categorical feature (up to ``max_auto_slice_values`` values).
    """

    primary: str | None = None
    others: list[str] = Field(default_factory=list)
    bootstrap: int = Field(default=200, ge=0, le=100_000)
    confidence: float = Field(default=0.95, gt=0.0, lt=1.0)
    auto_slices: bool = True
    max_auto_slice_values: int = Field(default=20, ge=1)

    @field_validator("primary", "others")
    @classmethod
    def _known(cls, value: str | list[str] | None) -> str | list[str] | None:
        for name in [value] if isinstance(value, str) else value or []:
            _known_metric(name)
        return value


class SliceSpec(_Spec):
    """A named subset of rows, judged on its own by the gate.

    One of: ``column`` + ``values`` (rows whose value is listed), ``column`` + ``min``/``max``
    (a numeric range, min inclusive, max exclusive), ``column`` alone (one slice per value),
    or ``column`` + ``cross`` (one slice per pair of values of the two columns).
    """

    name: str
    column: str
    values: list[str | int | float | bool] | None = None
    min: float | None = None
    max: float | None = None
    cross: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SliceSpec:
        if self.cross is not None and (
            self.values is not None or self.min is not None or self.max is not None
        ):
            raise ValueError("cross takes no values or min/max")
        if self.values is not None and (self.min is not None or self.max is not None):
            raise ValueError("give values or min/max, not both")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(
                "expected min < max (min inclusive, max exclusive), "
                f"found min {self.min:g} and max {self.max:g} (an empty slice)"
            )
        return self

    @property
    def columns(self) -> list[str]:
        """The data columns this slice reads."""
        return [self.column] if self.cross is None else [self.column, self.cross]


class GateRule(_Spec):
    """An absolute threshold on a metric, e.g. ``{metric: accuracy, min: 0.5}``.

    With ``slice``, the threshold applies to that declared slice's metric instead.
    """

    metric: str
    min: float | None = None
    max: float | None = None
    slice: str | None = None

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        return _known_metric(value)

    @model_validator(mode="after")
    def _has_bound(self) -> GateRule:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(
                f"expected min <= max, found min {self.min:g} > max {self.max:g} "
                "(no value could pass)"
            )
        low, high = METRIC_RANGES.get(self.metric, (-math.inf, math.inf))
        if (self.min is not None and self.min > high) or (self.max is not None and self.max < low):
            bound = (
                f"min {self.min:g}"
                if self.min is not None and self.min > high
                else f"max {self.max:g}"
            )
            raise ValueError(
                f"expected a bound within {self.metric}'s range [{low:g}, {high:g}], found "
                f"{bound} (no value could pass)"
            )
        return self


class ChampionRule(_Spec):
    """How much worse than the current champion a candidate may be, overall and per slice.

    ``max_regression`` is relative (a fraction of the champion's value) when ``relative``,
    else absolute; ``max_slice_regression`` defaults to ``max_regression``.
    """

    metric: str | None = None
    max_regression: float = Field(default=0.005, ge=0.0)
    relative: bool = True
    slices: bool = True
    max_slice_regression: float | None = Field(default=None, ge=0.0)

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        return value if value is None else _known_metric(value)


_BASELINES: tuple[Literal["dummy", "linear"], ...] = ("dummy", "linear")


class BaselineRule(_Spec):
    """The candidate must beat the simpler baselines on the primary metric by ``margin``."""

    margin: float = 0.0
    baselines: list[Literal["dummy", "linear"]] = Field(default_factory=lambda: [*_BASELINES])


class FairnessRule(_Spec):
    """A bound on a disparity across the groups of a sensitive attribute.

    ``metric`` is ``demographic_parity_difference``, ``equalized_odds_difference`` or
    ``<metric>_difference`` (largest gap of a quality metric between groups).
    """

    metric: str
    max: float = Field(ge=0.0)
    attribute: str | None = None

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value in _CLASS_DISPARITIES:
            return value
        if not value.endswith("_difference"):
            raise ValueError(
                f"expected {' or '.join(_CLASS_DISPARITIES)} or <metric>_difference, "
                f"found {value!r}"
            )
        _known_metric(value.removesuffix("_difference"))
        return value


class GatesSpec(_Spec):
    """Rules the candidate must satisfy to be blessed (ML Test Score infra-4)."""

    rules: list[GateRule] = Field(default_factory=list)
    champion: ChampionRule | None = None
    beat_baselines: BaselineRule | None = None
    max_latency_ms: float | None = Field(default=None, gt=0.0)
    max_size_mb: float | None = Field(default=None, gt=0.0)
    fairness: list[FairnessRule] = Field(default_factory=list)
    min_slice_size: int = Field(default=30, ge=1)


class SearchDimension(_Spec):
    """One hyperparameter's search range: ``int``/``float`` with ``low``/``high`` (``log``), or
    ``categorical`` with ``choices``."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[str | int | float | bool | None] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> SearchDimension:
        # No "tuning.space" prefix: the error's location, which names the parameter, leads.
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs choices")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(
                f"an {self.type} parameter needs low <= high, found low={self.low} high={self.high}"
            )
        elif self.log and (self.low < 1 if self.type == "int" else self.low <= 0):
            # Optuna samples log=true on log(low)..log(high); an int range also starts at 1.
            bound = ">= 1" if self.type == "int" else "> 0"
            raise ValueError(
                f"a log-scaled {self.type} parameter needs low {bound}, found low={self.low:g}"
            )
        if self.step is not None and self.type != "categorical":
            self._check_step(self.step)
        return self

    def _check_step(self, step: float) -> None:
        if self.log and not (self.type == "int" and step == 1):  # Optuna would ignore it
            raise ValueError(
                f"a log-scaled {self.type} parameter takes no step (an int one: 1), found {step:g}"
            )
        if not step > 0 or (self.type == "int" and not float(step).is_integer()):
            wanted = "a whole number >= 1" if self.type == "int" else "a number > 0"
            raise ValueError(f"an {self.type} parameter's step must be {wanted}, found {step:g}")


class TuningSpec(_Spec):
    """``readyml tune``: an Optuna study over ``space``, cross-validated on the training split."""

    n_trials: int = Field(default=20, ge=1)
    timeout_s: float | None = Field(default=None, gt=0.0)
    metric: str | None = None
    cv: int = Field(default=3, ge=2, le=20)
    space: dict[str, SearchDimension] = Field(default_factory=dict)
    in_pipeline: bool = Field(
        default=False, description="also run the study as a pipeline step (cached; no write-back)"
    )


class SensitiveAttribute(_Spec):
    """A sensitive attribute: a column, optionally with its values mapped to named groups."""

    name: str
    column: str | None = None
    groups: dict[str, list[str | int | float | bool]] | None = None

    @property
    def source(self) -> str:
        """The data column the attribute reads."""
        return self.column or self.name


class FairnessSpec(_Spec):
    """Sensitive attributes for per-group metrics and disparities (ML Test Score model-7)."""

    sensitive: list[SensitiveAttribute] = Field(default_factory=list)
    min_group_size: int = Field(default=20, ge=1)


class StalenessSpec(_Spec):
    """Quality against model age: train on older time windows, evaluate on the latest.

    ``time_column`` defaults to ``split.time_column``; without either, staleness is not
    measured (and the evidence says so). ``tolerance`` is the loss of the primary metric
    (absolute) accepted before retraining is recommended.
    """

    time_column: str | None = None
    windows: int = Field(default=3, ge=2, le=20)
    tolerance: float = Field(default=0.02, ge=0.0)


class ImportanceSpec(_Spec):
    """Feature importance (data-2) and feature cost (data-3) settings."""

    enabled: bool = True  # off: no importance or feature cost (and no data-2/data-3 evidence)
    repeats: int = Field(default=3, ge=1, le=100)
    drop_column_max_rows: int = Field(default=2000, ge=0)
    # Refits without each feature take n_features x one fit: 64 of a 7 s torch fit took 7 min.
    drop_column_max_s: float = Field(default=60.0, gt=0.0)
    max_rows: int = Field(default=20_000, ge=100)
    cost_rows: int = Field(default=200, ge=1)
    max_feature_ms: float | None = Field(default=None, gt=0.0)


class BatchingSpec(_Spec):
    """Adaptive batching (see :mod:`readyml.serve.batching` for the algorithm)."""

    enabled: bool = True
    max_batch_size: int = Field(default=256, ge=1, le=65536, description="rows per batch, at most")
    max_wait_ms: float = Field(
        default=0.0, ge=0.0, le=1000.0, description="wait for more rows when the worker is idle"
    )
    latency_target_ms: float = Field(default=20.0, gt=0.0, le=60000.0)
    max_queue_rows: int = Field(default=2048, ge=1, description="queued rows before shedding")
    max_queue_delay_ms: float = Field(
        default=1000.0, gt=0.0, description="predicted queueing delay before shedding"
    )


class RequestLogSpec(_Spec):
    """Request and prediction logging to Parquet partitions for monitoring."""

    enabled: bool = True
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    buffer_rows: int = Field(default=100_000, ge=1, description="rows held before dropping")
    flush_interval_s: float = Field(default=2.0, gt=0.0, le=3600.0)
    compression: Literal["snappy", "zstd", "lz4", "gzip", "none"] = Field(
        default="snappy", description="Parquet codec of the log files"
    )


# An HTTP header name: an RFC 9110 token.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class RolloutSpec(_Spec):
    """How ``readyml deploy`` rolls a candidate out (see :mod:`readyml.serve.rollout`).

    The candidate first passes infra validation, then optionally shadows the stable
    version for ``shadow_s``, then takes ``steps`` percent of the traffic in turn; each
    step lasts at least ``step_duration_s`` and until the candidate answered
    ``min_requests``. A step that breaks a limit with ``confidence`` rolls the candidate
    back (see :mod:`readyml.serve.canary`); one whose numbers are beyond a limit but not
    significantly goes on, judged again at twice the requests, and rolls back if still
    undecided after ``max_step_requests`` or ``max_step_duration_s``.
    """

    steps: list[float] = Field(
        default_factory=lambda: [5.0, 25.0, 50.0, 100.0],
        min_length=1,
        description="canary traffic percentages, increasing, the last one 100",
    )
    step_duration_s: float = Field(default=300.0, ge=0.0, description="least seconds per step")
    min_requests: int = Field(default=100, ge=1, description="candidate requests per step")
    shadow_s: float = Field(default=0.0, ge=0.0, description="mirroring before the canary")
    sticky_header: str | None = Field(
        default=None, description="request header whose value pins a caller to one version"
    )
    max_error_rate_increase: float = Field(default=0.01, ge=0.0, le=1.0)
    max_rejection_rate_increase: float = Field(default=0.05, ge=0.0, le=1.0)
    max_latency_ratio: float = Field(default=1.5, ge=1.0, description="candidate/stable p95, p99")
    latency_slack_ms: float = Field(default=5.0, ge=0.0, description="added to the latency limit")
    max_divergence: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Jensen-Shannon distance of predictions"
    )
    max_nonfinite_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    infra_latency_budget_ms: float = Field(default=1000.0, gt=0.0, description="per replay call")
    infra_log_rows: int = Field(default=20, ge=0, description="request-log rows replayed")
    tick_s: float = Field(
        default=0.5,
        gt=0.0,
        le=60.0,
        description="how often the controller checks that a step is due",
    )
    confidence: float = Field(
        default=0.95,
        gt=0.5,
        lt=1.0,
        description="how sure a failed step must be: a candidate within every limit fails a "
        "step by chance with probability at most 1 - confidence",
    )
    max_step_requests: int | None = Field(
        default=None,
        ge=1,
        description="candidate requests after which a still inconclusive step rolls back "
        "(at least min_requests; unset: 10 × min_requests)",
    )
    max_step_duration_s: float | None = Field(
        default=None,
        gt=0.0,
        description="seconds after which a still inconclusive step rolls back (at least "
        "step_duration_s; a longer shadow_s counts for the shadow; unset: no time limit)",
    )

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, steps: list[float]) -> list[float]:
        if any(not 0.0 < s <= 100.0 for s in steps) or steps != sorted(set(steps)):
            raise ValueError(f"steps: expected increasing percentages in (0, 100], found {steps}")
        if steps[-1] != 100.0:
            raise ValueError(f"steps: expected the last step to be 100, found {steps[-1]}")
        return steps

    @field_validator("sticky_header")
    @classmethod
    def _header_name(cls, header: str | None) -> str | None:
        # A request header is matched by name: one that no request can carry pins nobody.
        if header is not None and not _HEADER_NAME.fullmatch(header):
            raise ValueError(
                f"expected a header name such as x-user-id (letters, digits, -), found {header!r}"
            )
        return header

    @model_validator(mode="after")
    def _caps_after_the_least(self) -> RolloutSpec:
        if self.max_step_requests is not None and self.max_step_requests < self.min_requests:
            raise ValueError(
                f"max_step_requests: expected at least min_requests ({self.min_requests}), "
                f"found {self.max_step_requests}"
            )
        if self.max_step_duration_s is not None and (
            self.max_step_duration_s < self.step_duration_s
        ):
            raise ValueError(
                f"max_step_duration_s: expected at least step_duration_s "
                f"({self.step_duration_s:g}), found {self.max_step_duration_s:g}"
            )
        return self


class RaySpec(_Spec):
    """Ray Serve settings for ``readyml serve --engine ray`` (see :mod:`readyml.serve.ray_engine`).

    ``replicas`` is a fixed replica count; setting ``max_replicas`` turns autoscaling on,
    between ``min_replicas`` and ``max_replicas``, aiming at ``target_ongoing_requests`` per
    replica. ``address`` names an existing cluster (``ray://HOST:10001``, ``HOST:6379`` or
    ``auto``); without it a local single-node cluster is started and stopped with the server.
    """

    address: str | None = None
    replicas: int = Field(default=1, ge=1, le=1024, description="fixed number of replicas")
    min_replicas: int = Field(default=1, ge=0, le=1024, description="autoscaling lower bound")
    max_replicas: int | None = Field(
        default=None, ge=1, le=1024, description="autoscaling upper bound; unset: no autoscaling"
    )
    # Ray's default target (2) suits replicas that answer one request at a time; a batching
    # replica answers dozens at once, so it is scaled out only when its queue grows.
    target_ongoing_requests: float = Field(
        default=64.0, gt=0.0, description="autoscaling: requests in flight per replica"
    )
    replica_cpus: float = Field(default=1.0, gt=0.0, description="CPUs reserved per replica")
    app_name: str = Field(default="readyml", pattern=r"^[A-Za-z0-9_-]+$")

    @model_validator(mode="after")
    def _bounds(self) -> RaySpec:
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas: expected at least min_replicas ({self.min_replicas}), "
                f"found {self.max_replicas}"
            )
        return self


class ServingSpec(_Spec):
    """How ``readyml serve`` serves the project's models.

    The bearer token is never written here: ``token_env`` names the environment variable
    that holds it.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    engine: Literal["uvicorn", "ray"] = "uvicorn"
    http_protocol: Literal["auto", "readyml", "uvicorn"] = Field(
        default="auto",
        description="HTTP protocol: readyml's (long bodies read with fewer copies), uvicorn's "
        "own (cheaper a request for short JSON bodies), or auto: readyml's when a model served "
        "at start takes a tensor, else uvicorn's (both apply header_timeout_s and "
        "max_header_bytes)",
    )
    models: list[str] = Field(
        default_factory=list, description="model references; empty: the project's champion"
    )
    runtime: Literal["native", "onnx", "auto"] = "native"
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
        description="where PyTorch models predict: cpu, cuda, cuda:N, or auto (the first GPU "
        "when present)",
    )
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    request_log: RequestLogSpec = Field(default_factory=RequestLogSpec)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_inflight_body_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="bytes of request bodies all requests in flight may hold at once, per "
        "process, counted as they arrive; past it a request is answered 503 with Retry-After",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        description="seconds a request body may take to arrive whole once it is read; "
        "past it: 408 and the connection closed",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        description="seconds a request's head may take to arrive whole, from a connection's "
        "opening or its first bytes after a keep-alive pause; past it: 408 and the "
        "connection closed (an idle new connection is closed too)",
    )
    max_header_bytes: int = Field(
        default=65536,
        ge=1024,
        description="bytes a request's head may take when it arrives in several reads; "
        "past it: 431 and the connection closed",
    )
    token_env: str = Field(default="READYML_SERVE_TOKEN", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    protect_predict: bool = False
    access_log: bool = True
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    ray: RaySpec = Field(default_factory=RaySpec)
    alias_poll_s: float = Field(
        default=5.0,
        ge=0.0,
        description="seconds between checks of the registry for models served by alias "
        "(NAME@champion); a moved alias is validated and swapped in; 0: never check",
    )

    @model_validator(mode="after")
    def _one_body_fits_the_budget(self) -> ServingSpec:
        if self.max_inflight_body_bytes < self.max_body_bytes:
            raise ValueError(
                "serving.max_inflight_body_bytes: expected at least serving.max_body_bytes "
                f"({self.max_body_bytes}), found {self.max_inflight_body_bytes}"
            )
        return self


# Prometheus's duration format: whole numbers with units, largest first (1h30m, 90s, 500ms).
_DURATION_S = {
    "y": 31536000.0,
    "w": 604800.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
_DURATION = re.compile("".join(rf"(?:(?P<{u}>\d+){u})?" for u in _DURATION_S))


def duration_seconds(text: str, *, key: str = "duration") -> float:
    """Seconds in a duration as Prometheus writes them: ``90s``, ``5m``, ``1h30m``, ``7d``.

    >>> duration_seconds("5m")
    300.0
    """
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ConfigError(
            f"{key}: expected a duration such as 90s, 5m, 1h, 7d, found {text!r} (whole "
            "numbers with units y, w, d, h, m, s, ms, largest first, as in 1h30m)"
        )
    return sum(int(n) * _DURATION_S[unit] for unit, n in match.groupdict().items() if n)


def _check_duration(value: str | None, key: str) -> str | None:
    if value is not None:
        try:
            duration_seconds(value, key=key)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    return value


class DependencyMonitorSpec(_Spec):
    """Monitor 1: serving packages and upstream schemas against those at training.

    ``packages``: distributions compared (default: every one recorded at training);
    ``sources``: upstream data files or globs (relative to the project) whose columns and
    types are compared with the checked-in schema (default: ``data.source`` when a file).
    """

    enabled: bool = True
    packages: list[str] | None = None
    sources: list[str] | None = None


class InvariantMonitorSpec(_Spec):
    """Monitor 2: served inputs validated against the schema; ``max_errors`` anomalies allowed."""

    enabled: bool = True
    max_errors: int = Field(default=0, ge=0)
    max_null_share: float = Field(default=0.5, ge=0.0, le=1.0)


class SkewMonitorSpec(_Spec):
    """Monitor 3: training/serving skew.

    ``offline_features``: a CSV/Parquet file (relative to the project) or a ``module:function``
    (called with the logged requests) giving the features recomputed by the training code path,
    keyed by ``request_id``. ``tolerance``: relative difference above which a numeric value is
    skewed. Distribution distance uses the drift tests (``drift_method``, ``drift_thresholds``)
    against the training profile; a feature drifts past its threshold.
    """

    enabled: bool = True
    offline_features: str | None = None
    tolerance: float = Field(default=1e-6, ge=0.0)
    max_skewed_share: float = Field(default=0.0, ge=0.0, le=1.0)
    drift_method: str = "auto"
    drift_thresholds: dict[str, float] = Field(default_factory=dict)
    max_drifted_features: int = Field(default=0, ge=0)


class StalenessMonitorSpec(_Spec):
    """Monitor 4: age of the served model and of each pipeline stage's last success.

    ``max_model_age``: a duration (``30d``); default: the retraining period recommended by
    the evaluation's staleness curve, else ``default_max_age``. ``max_stage_age`` maps a step
    name (``train``, ``load``...) to a duration.
    """

    enabled: bool = True
    max_model_age: str | None = None
    default_max_age: str = "90d"
    max_stage_age: dict[str, str] = Field(default_factory=dict)

    @field_validator("max_model_age", "default_max_age")
    @classmethod
    def _duration(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _check_duration(value, f"monitoring.staleness.{info.field_name}")

    @field_validator("max_stage_age")
    @classmethod
    def _durations(cls, value: dict[str, str]) -> dict[str, str]:
        for step, text in value.items():
            _check_duration(text, f"monitoring.staleness.max_stage_age.{step}")
        return value


class StabilityMonitorSpec(_Spec):
    """Monitor 5: share of NaN/inf values allowed in served inputs and in outputs."""

    enabled: bool = True
    max_nonfinite_share: float = Field(default=0.0, ge=0.0, le=1.0)


class PerformanceMonitorSpec(_Spec):
    """Monitor 6: latency, throughput, errors and memory per version.

    A jump is the latest window's value over the previous version's (or the trailing
    baseline of earlier windows) above ``1 + max_jump``; a leak is memory growing by more than
    ``max_memory_growth_mb_per_h`` over at least ``min_memory_span`` of samples. The ``max_*``
    bounds also become Prometheus alert rules.
    """

    enabled: bool = True
    max_p99_latency_ms: float | None = Field(default=None, gt=0.0)
    max_jump: float = Field(default=0.5, gt=0.0)
    max_error_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    max_memory_growth_mb_per_h: float = Field(default=50.0, gt=0.0)
    min_memory_span: str = "30m"
    max_queue_depth: int = Field(default=1000, ge=1)
    min_requests: int = Field(default=20, ge=1)
    rule_for: str = "5m"

    @field_validator("min_memory_span", "rule_for")
    @classmethod
    def _span(cls, value: str, info: ValidationInfo) -> str:
        _check_duration(value, f"monitoring.performance.{info.field_name}")
        return value


class QualityMonitorSpec(_Spec):
    """Monitor 7: prediction quality.

    With labels: ``metric`` (default: the primary) overall and per slice against the
    training validation value; an absolute drop above ``max_drop`` fires. Before labels: the
    prediction distribution (``max_prediction_shift``, Jensen-Shannon or normalised
    Wasserstein), the change of each slice's prediction bias since validation (beyond
    ``max_slice_bias`` and significant at ``slice_bias_alpha``, Holm over the slices) and,
    for classifiers, the accuracy estimated from calibrated confidence (CBPE), later scored
    against the labels.
    """

    enabled: bool = True
    metric: str | None = None
    max_drop: float = Field(default=0.05, ge=0.0)
    min_labels: int = Field(default=30, ge=1)
    max_prediction_shift: float = Field(default=0.1, gt=0.0)
    max_slice_bias: float = Field(default=0.15, gt=0.0)
    slice_columns: list[str] | None = None
    min_slice_rows: int = Field(default=30, ge=1)
    slice_bias_alpha: float = Field(default=0.01, gt=0.0, lt=1.0)


class AlertSinksSpec(_Spec):
    """Where alerts go: a structured log line always, a webhook and Alertmanager when set.

    ``repeat_interval``: a still-firing alert is sent again after this long (else deduplicated).
    """

    log: bool = True
    webhook_url: str | None = None
    alertmanager_url: str | None = None
    retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=0.5, ge=0.0)
    timeout_s: float = Field(default=5.0, gt=0.0)
    repeat_interval: str = "4h"

    @field_validator("repeat_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        _check_duration(value, "monitoring.alerts.repeat_interval")
        return value


MONITOR_CHECKS = (
    "dependencies",
    "invariants",
    "skew",
    "staleness",
    "stability",
    "performance",
    "quality",
)


class OnAlertSpec(_Spec):
    """``monitoring.on_alert``: retrain when the monitor raises an alert, within guard rails.

    ``checks``: the checks whose alerts trigger (default: any); ``severity``: the least
    severity that triggers; at most ``max_runs`` retrains per ``period`` and none within
    ``cooldown`` of the last; with ``approval`` a blessed candidate waits for
    ``readyml approve``; ``deploy``: roll it out by canary to the server at ``server_url``
    (default: serving.host and serving.port), or only register it (``none``); ``rollout``
    overrides ``serving.rollout`` for these candidates (a retrain on drifted data is meant
    to change its answers, so a team may allow more prediction divergence here).
    """

    action: Literal["retrain"] = "retrain"
    checks: list[str] | None = None
    severity: Literal["warning", "critical"] = "warning"
    max_runs: int = Field(default=2, ge=1)
    period: str = "7d"
    cooldown: str = "1d"
    approval: bool = False
    deploy: Literal["canary", "none"] = "canary"
    server_url: str | None = None
    rollout: dict[str, Any] = Field(
        default_factory=dict, description="serving.rollout overrides for retrained candidates"
    )

    @field_validator("rollout")
    @classmethod
    def _rollout_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            RolloutSpec.model_validate(value)
        except ValidationError as exc:
            raise ValueError(
                describe_validation_error(exc, prefix="monitoring.on_alert.rollout")
            ) from None
        return value

    @field_validator("server_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
            raise ValueError(
                f"monitoring.on_alert.server_url: expected an http:// or https:// URL, found "
                f"{value!r}"
            )
        return value

    @field_validator("period", "cooldown")
    @classmethod
    def _duration(cls, value: str, info: ValidationInfo) -> str:
        _check_duration(value, f"monitoring.on_alert.{info.field_name}")
        return value

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, value: list[str] | None) -> list[str] | None:
        unknown = [c for c in value or [] if c not in MONITOR_CHECKS]
        if unknown:
            raise ValueError(
                f"monitoring.on_alert.checks: expected some of {', '.join(MONITOR_CHECKS)}, "
                f"found {unknown}"
            )
        return value


class MonitoringSpec(_Spec):
    """``readyml monitor``: the seven monitoring checks over logged traffic, and alerts.

    ``model``: the reference served (default: the project's champion); ``lookback``: how far
    back logged traffic is read; ``windows``: that traffic cut into this many equal time spans
    for the report's series (checks judge the whole lookback); ``every``: period of
    ``readyml monitor --every`` when not given on the command line.
    """

    model: str | None = None
    lookback: str = "7d"
    windows: int = Field(default=6, ge=1, le=100)
    every: str | None = None
    dependencies: DependencyMonitorSpec = Field(default_factory=DependencyMonitorSpec)
    invariants: InvariantMonitorSpec = Field(default_factory=InvariantMonitorSpec)
    skew: SkewMonitorSpec = Field(default_factory=SkewMonitorSpec)
    staleness: StalenessMonitorSpec = Field(default_factory=StalenessMonitorSpec)
    stability: StabilityMonitorSpec = Field(default_factory=StabilityMonitorSpec)
    performance: PerformanceMonitorSpec = Field(default_factory=PerformanceMonitorSpec)
    quality: QualityMonitorSpec = Field(default_factory=QualityMonitorSpec)
    alerts: AlertSinksSpec = Field(default_factory=AlertSinksSpec)
    on_alert: OnAlertSpec | None = None

    @field_validator("lookback", "every")
    @classmethod
    def _duration(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _check_duration(value, f"monitoring.{info.field_name}")


_SCORE_SECTIONS = ("data", "model", "infra", "monitor")


# The longest window evidence may count for (a century), so it is a real date span.
MAX_AGE_DAYS = 36_500


class ScoreSpec(_Spec):
    """ML Test Score settings: freshness of evidence, attestations, the automated checks.

    ``max_age_days`` maps a rubric test id (``monitor-4``) or a section (``monitor``) to the
    number of days its evidence counts; a test id wins over its section, which wins over
    the rubric's default.
    """

    attestations: str = Field(
        default="attestations.yaml", description="Manual attestations file, relative to the project"
    )
    attestation_max_age_days: float = Field(default=180.0, gt=0, le=MAX_AGE_DAYS)
    # The rubric's full point is for tests run repeatedly: one run is not a repetition.
    repeat_runs: int = Field(
        default=2, ge=2, description="Automated passing runs in the window for a full point"
    )
    max_age_days: dict[str, float] = Field(default_factory=dict)
    tests_dir: str = Field(default="tests", description="The project's own unit tests")
    feature_modules: list[str] | None = Field(
        default=None, description="Project modules that compute features (None: detect)"
    )
    meta_required: list[str] = Field(
        default_factory=lambda: ["owner"], description="Keys every feature's schema meta needs"
    )
    allowed_sources: list[str] | None = None
    sample_rows: int = Field(default=500, ge=20)
    min_versions: int = Field(default=3, ge=2)
    min_correlation: float = Field(default=0.5, ge=-1.0, le=1.0)

    @field_validator("max_age_days")
    @classmethod
    def _known_windows(cls, value: dict[str, float]) -> dict[str, float]:
        for key, days in value.items():
            if key not in _SCORE_SECTIONS and not is_test_id(key):
                raise ValueError(
                    f"score.max_age_days: expected a section ({', '.join(_SCORE_SECTIONS)}) "
                    f"or a test id such as monitor-4, found {key!r}"
                )
            if not 0 < days <= MAX_AGE_DAYS:  # also refuses nan
                raise ValueError(
                    f"score.max_age_days.{key}: expected more than 0 and at most "
                    f"{MAX_AGE_DAYS}, found {days}"
                )
        return value


class ProjectSpec(_Spec):
    """The whole ``readyml.yaml``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    description: str = ""
    seed: int = Field(default=42, strict=True)  # strict: YAML `true` is not seed 1
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
    tuning: TuningSpec | None = None
    fairness: FairnessSpec = Field(default_factory=FairnessSpec)
    staleness: StalenessSpec = Field(default_factory=StalenessSpec)
    importance: ImportanceSpec = Field(default_factory=ImportanceSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    score: ScoreSpec = Field(default_factory=ScoreSpec)

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, value: int) -> int:
        if not 0 <= value < MAX_SEED:
            raise ValueError(f"seed: expected 0 <= seed < 2**32, found {value}")
        return value

    @field_validator("features", mode="before")
    @classmethod
    def _feature_items(cls, value: Any) -> Any:
        """Each item is a column name or a feature mapping; an error names the item's key."""
        if not isinstance(value, list):
            return value
        items: list[Any] = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                try:
                    item = FeatureSpec.model_validate(item)
                except ValidationError as exc:
                    raise ValueError(
                        describe_validation_error(exc, prefix=f"features[{i}]")
                    ) from None
            elif not isinstance(item, str | FeatureSpec):
                raise ValueError(
                    f"features[{i}]: expected a column name or a mapping with name and type, "
                    f"found {item!r}"
                )
            items.append(item)
        return items

    @model_validator(mode="after")
    def _consistent(self) -> ProjectSpec:
        if self.features is not None and not self.features:
            raise ValueError(
                "features: expected at least one, found none (leave features out to use every "
                "column but the label)"
            )
        if self.label in [f.name for f in self.feature_specs() or []]:
            raise ValueError(
                f"features: {self.label!r} is the label; a model cannot take its own label as input"
            )
        problem = None if self.task == "auto" else self.metric_mismatch(self.task)
        if problem is not None:
            raise ValueError(problem)
        problem = self._slice_mismatch() or self._fairness_mismatch()
        if problem is not None:
            raise ValueError(problem)
        return self

    def _slice_mismatch(self) -> str | None:
        """A repeated slice name, or a gate rule on a slice that is never evaluated."""
        names = [s.name for s in self.slices]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            return f"slices: expected unique names, found {repeated[0]!r} repeated"
        for index, rule in enumerate(self.gates.rules):
            # "column=value" names an automatic slice or one value of a per-value slice,
            # known only once the data is read; the gate says when none was evaluated.
            if rule.slice is not None and rule.slice not in names and "=" not in rule.slice:
                return (
                    f"gates.rules[{index}].slice: expected a declared slice among {names} "
                    f"or 'column=value', found {rule.slice!r}"
                )
        return None

    def _fairness_mismatch(self) -> str | None:
        """A fairness rule without a declared attribute, or on a disparity never computed."""
        attributes = [a.name for a in self.fairness.sensitive]
        for index, rule in enumerate(self.gates.fairness):
            key = f"gates.fairness[{index}]"
            if not attributes:
                return f"{key}: expected fairness.sensitive to declare attributes, found none"
            if rule.attribute is not None and rule.attribute not in attributes:
                return (
                    f"{key}.attribute: expected one of fairness.sensitive {attributes}, "
                    f"found {rule.attribute!r}"
                )
            primary = self.metrics.primary
            if (
                primary is not None
                and rule.metric not in _CLASS_DISPARITIES
                and rule.metric != f"{primary}_difference"
            ):
                return (
                    f"{key}.metric: expected {primary}_difference (the primary metric's gap) "
                    f"or one of {list(_CLASS_DISPARITIES)}, found {rule.metric!r}"
                )
        return None

    def feature_specs(self) -> list[FeatureSpec] | None:
        """Declared features as :class:`FeatureSpec` (``None``: use every column)."""
        if self.features is None:
            return None
        return [FeatureSpec(name=f) if isinstance(f, str) else f for f in self.features]

    def metric_mismatch(self, task: str) -> str | None:
        """The first metric the spec names that ``task`` does not compute, as a message."""
        valid = list(REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS)
        named = [("metrics.primary", self.metrics.primary)]
        named += [(f"metrics.others[{i}]", m) for i, m in enumerate(self.metrics.others)]
        named += [(f"gates.rules[{i}].metric", r.metric) for i, r in enumerate(self.gates.rules)]
        if self.gates.champion is not None:
            named.append(("gates.champion.metric", self.gates.champion.metric))
        if self.tuning is not None:
            named.append(("tuning.metric", self.tuning.metric))
        for key, metric in named:
            if metric is not None and metric not in valid:
                return f"{key}: expected a {task} metric among {valid}, found {metric!r}"
        return None


class _RepeatedKey(yaml.YAMLError):
    """A mapping in the spec names one key twice (YAML would keep the last silently)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, Hashable) and key in seen:
                raise _RepeatedKey(
                    f"expected each key once in a mapping, found {key!r} at lines "
                    f"{seen[key]} and {line}"
                )
            if isinstance(key, Hashable):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


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
        spec_path = find_spec_file(path)
        try:
            text = spec_path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{spec_path.name}: expected UTF-8 text, found a byte {exc.object[exc.start]:#04x} "
                f"that is not (at byte {exc.start})"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{spec_path}: cannot be read ({exc.strerror})") from None
        try:
            raw = yaml.load(text, Loader=_UniqueKeyLoader)
        except _RepeatedKey as exc:
            raise ConfigError(f"{spec_path.name}: {exc}") from exc
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

    def trusted_types(self) -> tuple[str, ...]:
        """``model.trusted_types``, their modules made importable from the project folder:
        what to pass to :func:`readyml.flavors.load_model` for this project's models."""
        from readyml import _project_imports

        for name in self.spec.model.trusted_types:
            _project_imports.prepare(self.root, name.rsplit(".", 1)[0])
        return tuple(self.spec.model.trusted_types)

    @property
    def spec_path(self) -> Path:
        """Path of ``readyml.yaml``."""
        return self.root / SPEC_FILE


def find_spec_file(path: str | Path = ".") -> Path:
    """The ``readyml.yaml`` of a project directory (or the file itself), unread.

    Raises:
        ConfigError: There is no such file.
    """
    path = Path(path)
    spec_path = path / SPEC_FILE if path.is_dir() else path
    if not spec_path.exists():
        raise ConfigError(
            f"project spec '{spec_path}' not found; run 'readyml init DIR' to create one"
        )
    if spec_path.is_dir():
        raise ConfigError(f"project spec '{spec_path}': expected a file, found a folder")
    return spec_path


def parse_spec(raw: dict[str, Any], *, source: str = SPEC_FILE) -> ProjectSpec:
    """Validate a raw mapping as a :class:`ProjectSpec`, raising one-line ConfigErrors."""
    try:
        return ProjectSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc)}") from exc


# What a member of a union of plain types expects; pydantic's error names it by its type.
_UNION_MEMBERS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "date": "a date",
    "datetime": "a datetime",
}


def describe_validation_error(exc: ValidationError, *, prefix: str = "") -> str:
    """Turn pydantic's first error into 'key: expected X, found Y' (keys under ``prefix``)."""
    errors = exc.errors()
    error = errors[0]
    kind = error["type"]
    found = error.get("input")
    shown = repr(found)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    # A value no member of a union of plain types takes: one error per member, on one input.
    members = [
        str(e["loc"][-1])
        for e in errors
        if e["loc"] and e["loc"][:-1] == error["loc"][:-1] and e.get("input") is found
    ]
    if len(members) > 1 and all(m in _UNION_MEMBERS for m in members):
        *others, last = [_UNION_MEMBERS[m] for m in members]
        key = _key(error["loc"][:-1], prefix)
        return f"{key}: expected {', '.join(others)} or {last}, found {shown}"
    loc = _key(error["loc"], prefix)
    if kind == "extra_forbidden":
        return f"unknown key '{loc}'"
    if kind in ("model_type", "dict_type"):  # pydantic names the class: say what to write
        return f"{loc}: expected a mapping of keys, found {shown}"
    if kind == "missing":
        return f"missing required key '{loc}'"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error":
        named = message.startswith((loc.split(".")[0], "unknown key", "missing required key"))
        return f"{loc}: {message}" if loc and not named else message
    return f"{loc}: {message[:1].lower() + message[1:]}, found {shown}"


def _key(loc: tuple[int | str, ...], prefix: str) -> str:
    """``features[0].type`` from pydantic's ``('features', 0, 'type')``."""
    key = prefix
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif not part.startswith("function-"):
            key += f".{part}" if key else part
    return key
