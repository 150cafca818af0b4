"""The monitoring report: JSON shape, and the HTML page's charts drawn in headless Chromium."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from readyml.monitor import (
    LogSink,
    Monitor,
    MonitorReport,
    record_feedback,
    render_monitoring_html,
    write_report,
)

from .helpers import inputs_for, log_traffic, make_log

CHARTS = ("drift", "quality", "latency", "latency_versions", "memory", "memory_versions")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _report(workspace: Path) -> MonitorReport:
    log_traffic(workspace, make_log(version=1, seed=4, latency_ms=4.0))
    log = log_traffic(
        workspace, make_log(n=600, version=2, shift=1.0, rss_mb=lambda h: 300 + 100 * h)
    )
    truth = log.attrs["truth"]
    record_feedback(
        workspace,
        [{"request_id": r, "label": y} for r, y in zip(log["request_id"], truth, strict=True)],
    )
    inputs = inputs_for(workspace, version=2, previous_version=1)
    return Monitor(sinks=[LogSink(stream=io.StringIO())]).run(inputs)


def test_report_json_has_checks_and_alerts(workspace: Path) -> None:
    data = _report(workspace).to_dict()
    assert [c["test_id"] for c in data["checks"]] == [f"monitor-{i}" for i in range(1, 8)]
    assert data["alerts"] and all("fingerprint" in a for a in data["alerts"])
    quality = next(c for c in data["checks"] if c["check"] == "quality")
    assert quality["details"]["labelled"] == 600
    assert np.isfinite(quality["details"]["estimate_error"]["error"])


def test_report_page_draws_every_chart_with_data_in_chromium(workspace: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (scripts/services.sh start installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    path = write_report(_report(workspace), workspace / "report.html")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(path.as_uri())
            for name in CHARTS:
                chart = page.locator(f'svg[data-chart="{name}"]')
                box = chart.bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 100, name
                points = chart.locator(".series").evaluate_all(
                    "nodes => nodes.map(n => Number(n.dataset.points))"
                )
                assert points and all(p > 0 for p in points), (name, points)
                drawn = chart.locator(".series").first.bounding_box()
                assert drawn is not None and drawn["width"] > 0, name
            assert page.locator("#alerts tr").count() > 1
            assert "drift:x1" in page.locator("#alerts").inner_text()
        finally:
            browser.close()


def test_a_run_without_logged_requests_says_its_checks_were_skipped(workspace: Path) -> None:
    report = Monitor(sinks=[LogSink(stream=io.StringIO())]).run(inputs_for(workspace))
    assert report.ok  # skipped is not failed: exit code 0
    why = f"no logged requests of m:1 in the last 7d at {workspace / 'logs'}"
    assert report.verdict == f"2 passed, 5 skipped ({why})"
    data = report.to_dict()
    assert (
        data["skipped"] == 5
        and data["headline"] == f"0 logged rows · 0 open alert(s) · {report.verdict}"
    )
    page = render_monitoring_html(report)
    assert "all checks passed" not in page
    assert f'<span id="verdict" class="skipped">2 passed, 5 skipped ({why})</span>' in page


def test_a_run_whose_checks_all_passed_says_so(workspace: Path) -> None:
    log_traffic(workspace, make_log())
    report = Monitor(sinks=[LogSink(stream=io.StringIO())]).run(inputs_for(workspace))
    assert report.verdict == "all checks passed", [(c.check, c.status) for c in report.checks]
    assert report.to_dict()["skipped"] == 0
