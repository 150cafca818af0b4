"""Alerts: dedup by fingerprint, resolution, webhook retries, a real Alertmanager, promtool."""

from __future__ import annotations

import base64
import contextlib
import http.server
import io
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from conftest import _unavailable, free_port
from readyml.config import MonitoringSpec, PerformanceMonitorSpec, duration_seconds
from readyml.errors import DataError
from readyml.monitor import (
    Alert,
    AlertBook,
    AlertmanagerSink,
    DeliveryError,
    LogSink,
    Monitor,
    WebhookSink,
    alert_rules,
    write_alert_rules,
)
from readyml.monitor.alerts import Sink

from .helpers import NOW, inputs_for, log_traffic, make_log


def _alert(key: str = "drift:x1", check: str = "skew") -> Alert:
    return Alert(
        labels={"alertname": f"readyml_{check}", "check": check, "key": key, "severity": "warning"},
        annotations={"summary": key},
        status="firing",
        starts_at=NOW,
    )


def test_alert_book_deduplicates_repeats_and_resolves_cleared_alerts(tmp_path: Path) -> None:
    book = AlertBook(path=tmp_path / "alerts.json", repeat_interval=timedelta(hours=1))
    first = book.update([_alert()], checks_run={"skew"}, now=NOW)
    assert len(first.notify) == 1 and first.deduplicated == 0
    book.mark_sent(first.notify, now=NOW)
    again = AlertBook(path=tmp_path / "alerts.json", repeat_interval=timedelta(hours=1)).update(
        [_alert()], checks_run={"skew"}, now=NOW + timedelta(minutes=5)
    )
    assert again.notify == [] and again.deduplicated == 1
    assert again.firing[0].starts_at == NOW  # the alert keeps its start
    repeat = book.update([_alert()], checks_run={"skew"}, now=NOW + timedelta(hours=2))
    assert len(repeat.notify) == 1  # sent again after repeat_interval
    book.mark_sent(repeat.notify, now=NOW + timedelta(hours=2))
    untouched = book.update([], checks_run={"quality"}, now=NOW + timedelta(hours=3))
    assert untouched.resolved == [] and len(untouched.firing) == 1  # its check did not run
    cleared = book.update([], checks_run={"skew"}, now=NOW + timedelta(hours=4))
    (done,) = cleared.resolved
    assert done.status == "resolved" and done.ends_at == NOW + timedelta(hours=4)
    assert book.firing() == []
    book.mark_sent(cleared.notify, now=NOW + timedelta(hours=4))
    assert book.update([], checks_run={"skew"}, now=NOW + timedelta(hours=5)).notify == []


def test_alerts_of_a_disabled_check_are_resolved_and_a_skipped_ones_kept(tmp_path: Path) -> None:
    book = AlertBook(path=tmp_path / "alerts.json")
    first = book.update([_alert(), _alert("q", "quality")], checks_run={"skew", "quality"}, now=NOW)
    book.mark_sent(first.notify, now=NOW)
    later = NOW + timedelta(hours=1)
    # skew is disabled; quality is enabled but was skipped (no labels in the lookback).
    update = book.update([], checks_run=set(), now=later, enabled={"quality"})
    assert [(a.labels["check"], a.status) for a in update.resolved] == [("skew", "resolved")]
    assert [a.labels["check"] for a in update.firing] == ["quality"]
    assert update.notify == update.resolved


def test_a_monitor_with_a_check_disabled_sends_its_alerts_resolved(workspace: Path) -> None:
    stream = io.StringIO()
    sinks: list[Sink] = [LogSink(stream=stream)]
    log_traffic(workspace, make_log(shift=2.0))
    first = Monitor(sinks=sinks).run(inputs_for(workspace, spec=MonitoringSpec(windows=1)))
    skew = {a.fingerprint for a in first.alerts if a.labels["check"] == "skew"}
    assert skew
    spec = MonitoringSpec.model_validate({"windows": 1, "skew": {"enabled": False}})
    second = Monitor(sinks=sinks).run(inputs_for(workspace, spec=spec))
    assert {a.fingerprint for a in second.resolved} == skew
    assert {a.fingerprint for a in second.sent if a.status == "resolved"} == skew
    assert not any(a.labels["check"] == "skew" for a in second.alerts)


@pytest.mark.parametrize(
    ("content", "found"),
    [("[]", "found a JSON array"), ('{"x": 1}', "found entry 'x' = 1")],
)
def test_an_alert_state_of_the_wrong_shape_is_one_line_and_kept(
    tmp_path: Path, content: str, found: str
) -> None:
    path = tmp_path / "alerts.json"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        AlertBook(path=path).update([_alert()], checks_run={"skew"}, now=NOW)
    message = str(info.value)
    assert message.startswith(f"alert state {path}: expected a JSON object {{fingerprint: ")
    assert found in message and "\n" not in message
    assert path.read_text() == content  # the state is not thrown away


def test_monitor_run_fires_then_resolves_when_the_condition_clears(workspace: Path) -> None:
    stream = io.StringIO()
    spec = MonitoringSpec(windows=1)
    log_traffic(workspace, make_log(shift=2.0))
    first = Monitor(sinks=[LogSink(stream=stream)]).run(inputs_for(workspace, spec=spec))
    assert any(a.labels["key"] == "drift:x1" for a in first.alerts)
    second = Monitor(sinks=[LogSink(stream=stream)]).run(inputs_for(workspace, spec=spec))
    assert second.sent == [] and second.deduplicated == len(first.alerts)
    shutil.rmtree(workspace / "logs")
    log_traffic(workspace, make_log())
    third = Monitor(sinks=[LogSink(stream=stream)]).run(inputs_for(workspace, spec=spec))
    assert "drift:x1" in {a.labels["key"] for a in third.resolved}
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert {line["status"] for line in lines} == {"firing", "resolved"}


class _Receiver(http.server.BaseHTTPRequestHandler):
    failures = 0
    bodies: ClassVar[list[Any]] = []
    auth: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).auth.append(self.headers.get("Authorization"))
        if type(self).failures > 0:
            type(self).failures -= 1
            self.send_response(503)
        else:
            type(self).bodies.append(json.loads(body))
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def _handler() -> type[_Receiver]:
    return type("Receiver", (_Receiver,), {"failures": 0, "bodies": [], "auth": []})


@contextlib.contextmanager
def _serving(handler: type[_Receiver], port: int = 0) -> Iterator[str]:
    """A receiver up on ``port`` (0: any) while the block runs; yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = _handler()
    with _serving(handler) as url:
        yield url, handler


def test_an_alert_not_delivered_is_sent_again_at_the_next_run(workspace: Path) -> None:
    handler, port = _handler(), free_port()
    sinks: list[Sink] = [
        LogSink(stream=io.StringIO()),
        WebhookSink(url=f"http://127.0.0.1:{port}/hook", retries=0),
    ]
    spec = MonitoringSpec(windows=1)
    log_traffic(workspace, make_log(shift=2.0))
    down = Monitor(sinks=sinks).run(inputs_for(workspace, spec=spec))
    assert [d["delivered"] for d in down.deliveries] == [True, False]  # logged, not delivered
    assert down.sent == [] and down.pending == down.alerts != []
    # Raised at once, delivered or not: a retrain on alert does not wait for the webhook.
    assert down.raised == down.alerts
    with _serving(handler, port):
        up = Monitor(sinks=sinks).run(inputs_for(workspace, spec=spec))
        again = Monitor(sinks=sinks).run(inputs_for(workspace, spec=spec))
    # Sent at last, as firing alerts, but not raised again; then deduplicated.
    assert up.sent == up.alerts and up.pending == [] and up.deduplicated == 0
    assert up.raised == [] and again.raised == []
    assert {a.status for a in up.sent} == {"firing"}
    assert again.sent == [] and again.deduplicated == len(up.alerts)
    (body,) = handler.bodies
    assert {a["labels"]["key"] for a in body["alerts"]} == {a.labels["key"] for a in up.alerts}
    # A resolution not delivered is sent again too.
    shutil.rmtree(workspace / "logs")
    log_traffic(workspace, make_log())
    cleared = Monitor(sinks=sinks).run(inputs_for(workspace, spec=spec))
    assert cleared.sent == [] and cleared.pending == cleared.resolved != []
    with _serving(handler, port):
        told = Monitor(sinks=sinks).run(inputs_for(workspace, spec=spec))
        quiet = Monitor(sinks=sinks).run(inputs_for(workspace, spec=spec))
    assert {a.labels["key"] for a in told.sent} == {a.labels["key"] for a in cleared.resolved}
    assert handler.bodies[-1]["status"] == "resolved"
    assert quiet.sent == quiet.pending == [] and len(handler.bodies) == 2


def test_alertmanager_hears_every_firing_alert_at_each_run_with_a_future_end(
    workspace: Path, receiver: tuple[str, Any]
) -> None:
    url, handler = receiver
    spec = MonitoringSpec(windows=1, every="1h")
    log_traffic(workspace, make_log(shift=2.0))
    sinks: list[Sink] = [LogSink(stream=io.StringIO()), AlertmanagerSink(url=url, retries=0)]
    first = Monitor(sinks=sinks).run(inputs_for(workspace, spec=spec))
    second = Monitor(sinks=sinks).run(inputs_for(workspace, spec=spec))
    assert second.sent == [] and second.deduplicated == len(first.alerts) > 0
    # Deduplicated for the log, yet sent again to Alertmanager, which would end it otherwise.
    assert len(handler.bodies) == 2
    for body, report in zip(handler.bodies, (first, second), strict=True):
        assert {a["labels"]["key"] for a in body} == {a.labels["key"] for a in first.alerts}
        ends = {datetime.fromisoformat(a["endsAt"].replace("Z", "+00:00")) for a in body}
        assert ends == {report.at + timedelta(hours=3)}


def test_alertmanager_end_follows_the_period_this_monitor_runs_at(
    workspace: Path, receiver: tuple[str, Any]
) -> None:
    url, handler = receiver
    spec = MonitoringSpec(windows=1, every="1h")
    log_traffic(workspace, make_log(shift=2.0))
    sinks: list[Sink] = [AlertmanagerSink(url=url, retries=0)]
    report = Monitor(sinks=sinks).run(inputs_for(workspace, spec=spec), period_s=60.0)
    ends = {datetime.fromisoformat(a["endsAt"].replace("Z", "+00:00")) for a in handler.bodies[0]}
    assert ends == {report.at + timedelta(minutes=3)}  # --every 1m, not monitoring.every


def test_webhook_retries_with_backoff_until_delivered(receiver: tuple[str, Any]) -> None:
    url, handler = receiver
    handler.failures = 2
    waits: list[float] = []
    sink = WebhookSink(url=url, retries=3, backoff_s=0.1, sleep=waits.append)
    sink.send([_alert()])
    assert sink.attempts_ == 3 and waits == [0.1, 0.2]
    (body,) = handler.bodies
    assert body["status"] == "firing" and body["alerts"][0]["labels"]["key"] == "drift:x1"


def test_webhook_gives_up_after_its_retries(receiver: tuple[str, Any]) -> None:
    url, handler = receiver
    handler.failures = 10
    sink = WebhookSink(url=url, retries=2, backoff_s=0.0)
    with pytest.raises(DeliveryError, match="HTTP 503"):
        sink.send([_alert()])
    assert sink.attempts_ == 3


def test_a_password_in_a_sink_url_is_basic_auth_and_never_shown(
    receiver: tuple[str, Any],
) -> None:
    url, handler = receiver
    secret_url = url.replace("http://", "http://admin:s3cret%2FPW@") + "?token=t0ken"
    AlertmanagerSink(url=secret_url, retries=0).send([_alert()])
    assert handler.auth == ["Basic " + base64.b64encode(b"admin:s3cret/PW").decode()]
    handler.failures = 10
    with pytest.raises(DeliveryError) as info:
        WebhookSink(url=secret_url, retries=0).send([_alert()])
    assert "s3cret" not in str(info.value) and "t0ken" not in str(info.value)
    assert "admin:***@127.0.0.1" in str(info.value)


def _binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    _unavailable(f"{names[0]} is not installed (scripts/services.sh start installs it)")


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    binary = _binary("prometheus-alertmanager", "alertmanager")
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        yaml.safe_dump({"route": {"receiver": "null"}, "receivers": [{"name": "null"}]})
    )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("alertmanager did not start")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_alertmanager_receives_and_resolves_an_alert(alertmanager: str) -> None:
    sink = AlertmanagerSink(url=alertmanager)
    sink.send([_alert()])
    with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts", timeout=5) as response:
        alerts = json.loads(response.read())
    (received,) = [a for a in alerts if a["labels"].get("key") == "drift:x1"]
    assert received["status"]["state"] == "active"
    assert received["annotations"]["summary"] == "drift:x1"
    sink.send([_alert().__class__(**{**_alert().__dict__, "status": "resolved", "ends_at": NOW})])
    with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts?active=true", timeout=5) as response:
        active = [a for a in json.loads(response.read()) if a["labels"].get("key") == "drift:x1"]
    assert active == []


PROMTOOL_TEST = Path(__file__).with_name("rules_test.yml")


def test_every_rule_reads_only_series_of_a_model() -> None:
    rules = alert_rules(PerformanceMonitorSpec(), project="demo")["groups"][0]["rules"]
    for rule in rules:
        selectors = re.findall(r"readyml_\w+(\{[^}]*\})?", rule["expr"])
        assert selectors and all(s.startswith('{model!=""') for s in selectors), rule["expr"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90.0), ("1h30m", 5400.0), ("500ms", 0.5), ("2w1d", 1296000.0)]
)
def test_durations_are_read_as_prometheus_writes_them(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["1.5h", "5 m", " 5m", "30m1h", "5", "h"])
def test_a_duration_prometheus_would_refuse_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration such as 90s, 5m, 1h, 7d, found"):
        PerformanceMonitorSpec(rule_for=text)


def test_prometheus_rules_pass_promtool_check_and_unit_tests(tmp_path: Path) -> None:
    promtool = _binary("promtool")
    spec = PerformanceMonitorSpec(max_p99_latency_ms=500, max_error_rate=0.05)
    rules = write_alert_rules(spec, tmp_path / "rules.yml", project="demo")
    names = [r["alert"] for r in alert_rules(spec, project="demo")["groups"][0]["rules"]]
    assert names == [
        "ReadymlHighLatencyP99",
        "ReadymlHighErrorRate",
        "ReadymlQueueBacklog",
        "ReadymlShedding",
    ]
    checked = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    shutil.copy(PROMTOOL_TEST, tmp_path / "rules_test.yml")
    tested = subprocess.run(
        [promtool, "test", "rules", "rules_test.yml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
