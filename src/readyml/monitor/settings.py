"""``monitoring:`` values that need the project or the served version to check, checked at start.

The spec's types check each value alone; these need more: a drift method or quality metric
must exist (for the served version's task), ``max_drop`` of a metric bounded by 1 must be a
share, slice columns must be the served version's inputs, ``skew.offline_features`` as
``module:function`` must import, drift thresholds must be a p-value level or a positive
distance, ``max_stage_age`` must name pipeline steps, alert URLs must be http(s). Each problem is a
:class:`~readyml.errors.ConfigError` naming its key, raised before any work.
"""

from __future__ import annotations

import math
from typing import Final
from urllib.parse import urlsplit

from readyml.config import AlertSinksSpec, Project, QualityMonitorSpec, SkewMonitorSpec
from readyml.data import METHODS
from readyml.data.io import data_paths
from readyml.errors import ConfigError, DataError
from readyml.evaluate.metrics import DEFAULT_PRIMARY, HIGHER_IS_BETTER, REGRESSION
from readyml.monitor.alerts import redact_url
from readyml.monitor.checks.skew import offline_function, project_imports_target
from readyml.monitor.inputs import served_target, served_task
from readyml.registry import ModelVersion, Registry

# Classification metrics not bounded by 1, whose drop may exceed 1.
_UNBOUNDED: Final = ("log_loss",)
# Names shown in a message listing what was expected.
_SHOWN: Final = 10


def check_settings(project: Project, registry: Registry, *, ref: str | None = None) -> None:
    """Check the ``monitoring`` section against the served version.

    Raises:
        ConfigError: a value names something that does not exist, or is out of range.
        VersionNotFound: the served version (``monitoring.model`` or the champion) is missing.
    """
    spec = project.spec.monitoring
    version = registry.get(served_target(project, ref))
    _check_skew(spec.skew, project)
    _check_stages(spec.staleness.max_stage_age)
    _check_quality(spec.quality, version)
    _check_alerts(spec.alerts)


def _check_stages(limits: dict[str, str]) -> None:
    from readyml.train.steps import default_steps

    steps = [step.name for step in default_steps()]
    unknown = [name for name in limits if name not in steps]
    if unknown:
        raise ConfigError(
            f"monitoring.staleness.max_stage_age: expected pipeline steps among {steps}, "
            f"found {unknown[0]!r}"
        )


def _check_skew(skew: SkewMonitorSpec, project: Project) -> None:
    if skew.drift_method != "auto" and skew.drift_method not in METHODS:
        raise ConfigError(
            f"monitoring.skew.drift_method: expected auto or one of {', '.join(METHODS)}, "
            f"found {skew.drift_method!r}"
        )
    unknown = [m for m in skew.drift_thresholds if m not in METHODS]
    if unknown:
        raise ConfigError(
            f"monitoring.skew.drift_thresholds: expected keys among {', '.join(METHODS)}, "
            f"found {unknown[0]!r}"
        )
    for name, threshold in skew.drift_thresholds.items():
        key = f"monitoring.skew.drift_thresholds.{name}"
        if METHODS[name].uses_p_value and not 0.0 < threshold < 1.0:
            raise ConfigError(f"{key}: expected a p-value level between 0 and 1, found {threshold}")
        if not METHODS[name].uses_p_value and not 0.0 < threshold < math.inf:
            raise ConfigError(f"{key}: expected a distance above 0, found {threshold}")
    source = skew.offline_features
    if source is not None and project_imports_target(source):
        offline_function(project.root, source)
    elif source is not None:
        try:
            data_paths(project.root / source)
        except DataError as exc:
            raise ConfigError(f"monitoring.skew.offline_features: {exc}") from None


def _check_quality(quality: QualityMonitorSpec, version: ModelVersion) -> None:
    task = served_task(version)
    metrics = (
        REGRESSION
        if task == "regression"
        else tuple(m for m in HIGHER_IS_BETTER if m not in REGRESSION)
    )
    if quality.metric is not None and quality.metric not in metrics:
        raise ConfigError(
            f"monitoring.quality.metric: expected a {task} metric among {', '.join(metrics)}, "
            f"found {quality.metric!r}"
        )
    metric = quality.metric or (version.metrics or {}).get("primary") or DEFAULT_PRIMARY[task]
    if task != "regression" and metric not in _UNBOUNDED and quality.max_drop > 1:
        raise ConfigError(
            f"monitoring.quality.max_drop: expected a drop of {metric} between 0 and 1, "
            f"found {quality.max_drop:g}"
        )
    features = [str(c["name"]) for c in version.signature.get("inputs", [])]
    unknown = [c for c in quality.slice_columns or [] if c not in features]
    if features and unknown:
        shown = ", ".join(features[:_SHOWN]) + (" …" if len(features) > _SHOWN else "")
        raise ConfigError(
            f"monitoring.quality.slice_columns: expected input features of "
            f"{version.name}:{version.version} ({shown}), found {unknown[0]!r}"
        )


def _check_alerts(alerts: AlertSinksSpec) -> None:
    for key, url in (
        ("webhook_url", alerts.webhook_url),
        ("alertmanager_url", alerts.alertmanager_url),
    ):
        if url and not _http_url(url):
            raise ConfigError(
                f"monitoring.alerts.{key}: expected an http(s) URL, found {redact_url(url)!r}"
            )


def _http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
