"""The seven monitoring checks (ML Test Score monitor-1 … monitor-7), one module each.

Every check is an object holding its thresholds with ``run(inputs) -> CheckResult``;
:func:`checks_from_spec` builds them from ``readyml.yaml``'s ``monitoring`` section.
"""

from __future__ import annotations

from readyml.config import MonitoringSpec, duration_seconds
from readyml.monitor.checks._base import Check, CheckResult, Finding, Severity
from readyml.monitor.checks.dependencies import DependencyCheck
from readyml.monitor.checks.invariants import InvariantCheck
from readyml.monitor.checks.performance import PerformanceCheck
from readyml.monitor.checks.quality import QualityCheck
from readyml.monitor.checks.skew import SkewCheck
from readyml.monitor.checks.stability import NumericalInstability, StabilityCheck, TrainingGuard
from readyml.monitor.checks.staleness import StalenessCheck


def checks_from_spec(spec: MonitoringSpec, *, data_source: str | None = None) -> list[Check]:
    """The enabled checks with the thresholds of ``spec``, in rubric order.

    ``data_source`` (the training data file) is the default upstream source of Monitor 1.
    """
    checks: list[Check] = []
    dep = spec.dependencies
    if dep.enabled:
        sources = dep.sources if dep.sources is not None else ([data_source] if data_source else [])
        checks.append(DependencyCheck(packages=dep.packages, sources=sources))
    if spec.invariants.enabled:
        inv = spec.invariants
        checks.append(InvariantCheck(max_errors=inv.max_errors, max_null_share=inv.max_null_share))
    if spec.skew.enabled:
        skew = spec.skew
        checks.append(
            SkewCheck(
                offline_features=skew.offline_features,
                tolerance=skew.tolerance,
                max_skewed_share=skew.max_skewed_share,
                drift_method=skew.drift_method,
                drift_thresholds=dict(skew.drift_thresholds),
                max_drifted_features=skew.max_drifted_features,
            )
        )
    if spec.staleness.enabled:
        st = spec.staleness
        checks.append(
            StalenessCheck(
                max_model_age=st.max_model_age,
                default_max_age=st.default_max_age,
                max_stage_age=dict(st.max_stage_age),
            )
        )
    if spec.stability.enabled:
        checks.append(StabilityCheck(max_nonfinite_share=spec.stability.max_nonfinite_share))
    if spec.performance.enabled:
        perf = spec.performance
        checks.append(
            PerformanceCheck(
                max_p99_latency_ms=perf.max_p99_latency_ms,
                max_jump=perf.max_jump,
                max_error_rate=perf.max_error_rate,
                max_memory_growth_mb_per_h=perf.max_memory_growth_mb_per_h,
                min_memory_span_h=duration_seconds(perf.min_memory_span) / 3600,
                min_requests=perf.min_requests,
            )
        )
    if spec.quality.enabled:
        q = spec.quality
        checks.append(
            QualityCheck(
                metric=q.metric,
                max_drop=q.max_drop,
                min_labels=q.min_labels,
                max_prediction_shift=q.max_prediction_shift,
                max_slice_bias=q.max_slice_bias,
                slice_columns=q.slice_columns,
                min_slice_rows=q.min_slice_rows,
                slice_bias_alpha=q.slice_bias_alpha,
            )
        )
    return checks


__all__ = [
    "Check",
    "CheckResult",
    "DependencyCheck",
    "Finding",
    "InvariantCheck",
    "NumericalInstability",
    "PerformanceCheck",
    "QualityCheck",
    "Severity",
    "SkewCheck",
    "StabilityCheck",
    "StalenessCheck",
    "TrainingGuard",
    "checks_from_spec",
]
