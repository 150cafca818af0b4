"""Prometheus alerting rules for the metric-based checks: latency, errors, queue, shedding.

The server exports (names are the contract with :mod:`readyml.serve`):

* ``readyml_request_latency_seconds`` — histogram, labels ``model``, ``version``, ``route``;
* ``readyml_requests_total`` — counter, labels ``model``, ``version``, ``route``, ``status``;
* ``readyml_queue_rows`` — gauge of rows waiting for a batch, label ``model``;
* ``readyml_rejected_requests_total`` — counter of shed requests, labels ``model``, ``reason``.

:func:`alert_rules` turns ``monitoring.performance`` into a rules file for Prometheus (checked by
``promtool check rules``); its alerts reach Alertmanager like the monitor's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from readyml.config import PerformanceMonitorSpec

# p99 latency bound when monitoring.performance.max_p99_latency_ms is not set.
DEFAULT_P99_MS = 500.0
RATE_WINDOW = "5m"
# Series of a model: the server also counts routes of no model (/ui/score, /v2/feedback,
# health) and requests refused before routing, with model="".
MODEL = 'model!=""'


def alert_rules(spec: PerformanceMonitorSpec, *, project: str) -> dict[str, Any]:
    """The rules document (a mapping ready for YAML)."""
    p99_s = (spec.max_p99_latency_ms or DEFAULT_P99_MS) / 1000.0
    labels = {"project": project}
    rules = [
        {
            "alert": "ReadymlHighLatencyP99",
            "expr": (
                "histogram_quantile(0.99, sum by (le, model, version) "
                f"(rate(readyml_request_latency_seconds_bucket{{{MODEL}}}[{RATE_WINDOW}]))) "
                f"> {p99_s:g}"
            ),
            "for": spec.rule_for,
            "labels": {
                **labels,
                "severity": "warning",
                "check": "performance",
                "test_id": "monitor-6",
            },
            "annotations": {
                "summary": "p99 latency of {{ $labels.model }}:{{ $labels.version }} is "
                "{{ $value | humanizeDuration }}",
                "description": f"above {p99_s * 1000:g} ms for {spec.rule_for}",
            },
        },
        {
            "alert": "ReadymlHighErrorRate",
            "expr": (
                "sum by (model, version) "
                f'(rate(readyml_requests_total{{{MODEL},status=~"5.."}}[{RATE_WINDOW}])) / '
                f"sum by (model, version) (rate(readyml_requests_total{{{MODEL}}}[{RATE_WINDOW}])) "
                f"> {spec.max_error_rate:g}"
            ),
            "for": spec.rule_for,
            "labels": {
                **labels,
                "severity": "critical",
                "check": "performance",
                "test_id": "monitor-6",
            },
            "annotations": {
                "summary": "{{ $labels.model }}:{{ $labels.version }} answers "
                "{{ $value | humanizePercentage }} of requests with 5xx",
                "description": f"error rate above {spec.max_error_rate:.2%} for {spec.rule_for}",
            },
        },
        {
            "alert": "ReadymlQueueBacklog",
            "expr": f"max by (model) (readyml_queue_rows{{{MODEL}}}) > {spec.max_queue_depth}",
            "for": spec.rule_for,
            "labels": {
                **labels,
                "severity": "warning",
                "check": "performance",
                "test_id": "monitor-6",
            },
            "annotations": {
                "summary": "{{ $value }} rows queued for {{ $labels.model }}",
                "description": f"queue depth above {spec.max_queue_depth} for {spec.rule_for}",
            },
        },
        {
            "alert": "ReadymlShedding",
            "expr": (
                "sum by (model, reason) "
                f"(rate(readyml_rejected_requests_total{{{MODEL}}}[{RATE_WINDOW}])) > 0"
            ),
            "for": spec.rule_for,
            "labels": {
                **labels,
                "severity": "warning",
                "check": "performance",
                "test_id": "monitor-6",
            },
            "annotations": {
                "summary": "{{ $labels.model }} rejects requests ({{ $labels.reason }})",
                "description": f"requests shed for {spec.rule_for}",
            },
        },
    ]
    return {"groups": [{"name": f"readyml-{project}", "rules": rules}]}


def alert_rules_text(spec: PerformanceMonitorSpec, *, project: str) -> str:
    """The rules file's text (YAML, with a header comment)."""
    return "# Prometheus alerting rules written by `readyml monitor --prometheus-rules`.\n" + (
        yaml.safe_dump(alert_rules(spec, project=project), sort_keys=False)
    )


def write_alert_rules(spec: PerformanceMonitorSpec, path: Path, *, project: str) -> Path:
    """Write the rules file (YAML) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(alert_rules_text(spec, project=project), encoding="utf-8")
    return path
