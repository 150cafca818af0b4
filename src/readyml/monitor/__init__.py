"""Monitoring: the seven ML Test Score monitoring checks over served traffic, with alerts.

Entry points: :func:`run_monitor` (one run for a project: checks, evidence, alerts),
:class:`Monitor` (the same over hand-built :class:`MonitorInputs`), :func:`record_feedback` and
:func:`feedback_app` (labels that arrive later), :func:`render_monitoring_html` (the report
page), :func:`alert_rules` (Prometheus rules for the server's metrics) and
:func:`monitor_demo`.
"""

from __future__ import annotations

from readyml.monitor.alerts import (
    Alert,
    AlertBook,
    AlertmanagerSink,
    DeliveryError,
    LogSink,
    Sink,
    WebhookSink,
)
from readyml.monitor.checks import (
    CheckResult,
    DependencyCheck,
    Finding,
    InvariantCheck,
    NumericalInstability,
    PerformanceCheck,
    QualityCheck,
    SkewCheck,
    StabilityCheck,
    StalenessCheck,
    TrainingGuard,
    checks_from_spec,
)
from readyml.monitor.demo import monitor_demo, replay_offline, write_log
from readyml.monitor.feedback import FeedbackResult, feedback_app, record_feedback
from readyml.monitor.inputs import MonitorInputs, Reference, load_inputs, read_traffic
from readyml.monitor.monitor import Monitor, MonitorReport, report_path, run_every, run_monitor
from readyml.monitor.prometheus import alert_rules, write_alert_rules
from readyml.monitor.report import render_monitoring_html, write_report
from readyml.monitor.settings import check_settings

__all__ = [
    "Alert",
    "AlertBook",
    "AlertmanagerSink",
    "CheckResult",
    "DeliveryError",
    "DependencyCheck",
    "FeedbackResult",
    "Finding",
    "InvariantCheck",
    "LogSink",
    "Monitor",
    "MonitorInputs",
    "MonitorReport",
    "NumericalInstability",
    "PerformanceCheck",
    "QualityCheck",
    "Reference",
    "Sink",
    "SkewCheck",
    "StabilityCheck",
    "StalenessCheck",
    "TrainingGuard",
    "WebhookSink",
    "alert_rules",
    "check_settings",
    "checks_from_spec",
    "feedback_app",
    "load_inputs",
    "monitor_demo",
    "read_traffic",
    "record_feedback",
    "render_monitoring_html",
    "replay_offline",
    "report_path",
    "run_every",
    "run_monitor",
    "write_alert_rules",
    "write_log",
    "write_report",
]
