"""Alerts: findings turned into deduplicated, resolvable alerts, and the sinks that carry them.

Rule: every finding of a check is an alert named ``readyml_<check>`` with labels ``alertname``,
``project``, ``model``, ``version``, ``check``, ``test_id``, ``severity``, ``key`` and the
finding's own labels. Its fingerprint is the sha256 of the sorted labels, so the same condition
found again is the same alert.

State (:class:`AlertBook`, a JSON file in the workspace) remembers what is firing. On each run:
a new fingerprint fires and is sent; one still firing is sent again only after
``repeat_interval`` (deduplicated otherwise); one no longer found by a check that ran is
resolved and the resolution sent, and so is every alert of a check that is disabled. A check
that was skipped (no traffic, no labels yet, an error) resolves nothing: it could not see
whether the condition cleared, and resolving would make alerts flap with every quiet period.
An alert counts as sent only once a sink delivered it (:meth:`AlertBook.mark_sent`): one whose
delivery failed stays pending and is sent again at the next run, a resolution included.

Sinks share one method, ``send(alerts)``: :class:`LogSink` writes one JSON line per alert,
:class:`WebhookSink` POSTs a JSON document (retrying 5xx, 429 and connection errors with
exponential back-off), :class:`AlertmanagerSink` POSTs to Alertmanager's ``/api/v2/alerts``
every firing alert at each run, with ``endsAt`` a few runs ahead (as Prometheus does), and
the resolved ones with ``endsAt`` now.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final, Literal, Protocol

from readyml.errors import DataError
from readyml.monitor.checks._base import CheckResult, Finding
from readyml.registry.store import redact_url as redact_password
from readyml.types import JSON

AlertStatus = Literal["firing", "resolved"]
STATE_FILE: Final = "monitor/alerts.json"
_LOG = logging.getLogger("readyml.monitor.alerts")
# HTTP statuses worth retrying: the receiver may recover.
_RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Alert:
    """One alert: labels identify it, annotations describe it."""

    labels: dict[str, str]
    annotations: dict[str, str]
    status: AlertStatus
    starts_at: datetime
    ends_at: datetime | None = None
    value: float | None = None
    threshold: float | None = None

    @property
    def fingerprint(self) -> str:
        """sha256 of the sorted labels (first 16 hex digits)."""
        return fingerprint(self.labels)

    @property
    def name(self) -> str:
        """The ``alertname`` label."""
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str:
        """The ``severity`` label."""
        return self.labels.get("severity", "warning")

    def to_dict(self) -> JSON:
        """JSON-ready dict."""
        return {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "value": self.value,
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, data: JSON) -> Alert:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            labels=dict(data["labels"]),
            annotations=dict(data.get("annotations", {})),
            status="resolved" if data.get("status") == "resolved" else "firing",
            starts_at=datetime.fromisoformat(data["starts_at"]),
            ends_at=datetime.fromisoformat(data["ends_at"]) if data.get("ends_at") else None,
            value=data.get("value"),
            threshold=data.get("threshold"),
        )


def fingerprint(labels: dict[str, str]) -> str:
    """Identity of an alert: a hash of its sorted labels."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def alert_for(
    result: CheckResult, found: Finding, *, project: str, model: str, version: int, now: datetime
) -> Alert:
    """The alert rule: a finding of a check becomes a firing alert."""
    labels = {
        "alertname": f"readyml_{result.check}",
        "project": project,
        "model": model,
        "version": str(version),
        "check": result.check,
        "test_id": result.test_id,
        "severity": found.severity,
        "key": found.key,
        **{k: v for k, v in found.labels.items() if v},
    }
    return Alert(
        labels=labels,
        annotations={"summary": found.message, "description": result.summary},
        status="firing",
        starts_at=now,
        value=found.value,
        threshold=found.threshold,
    )


@dataclass
class AlertUpdate:
    """What one evaluation changed: alerts to send, and every alert still firing."""

    notify: list[Alert] = field(default_factory=list)
    # Firing alerts new this run or due to repeat; not those offered again after a failed
    # delivery (``readyml monitor``'s on_alert retrains on these, delivered or not).
    raised: list[Alert] = field(default_factory=list)
    firing: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    deduplicated: int = 0


class AlertBook:
    """Firing alerts by fingerprint, kept in a JSON file between runs.

    Args:
        path: the state file (``None``: in memory only).
        repeat_interval: a still-firing alert is sent again after this long.
    """

    def __init__(
        self, *, path: Path | None = None, repeat_interval: timedelta = timedelta(hours=4)
    ) -> None:
        self.path = path
        self.repeat_interval = repeat_interval
        self._state: dict[str, JSON] | None = None

    def _load(self) -> dict[str, JSON]:
        if self._state is None:
            self._state = {}
            if self.path is not None and self.path.exists():
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                except json.JSONDecodeError:
                    _LOG.warning("alert state %s unreadable; starting afresh", self.path)
                else:
                    self._state = _checked_state(self.path, data)
        return self._state

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(self._load(), indent=1), encoding="utf-8")
        os.replace(partial, self.path)

    def firing(self) -> list[Alert]:
        """Alerts firing now."""
        alerts = [Alert.from_dict(entry["alert"]) for entry in self._load().values()]
        return [alert for alert in alerts if alert.status == "firing"]

    def update(
        self,
        found: Sequence[Alert],
        *,
        checks_run: set[str],
        now: datetime,
        enabled: set[str] | None = None,
    ) -> AlertUpdate:
        """Fire new alerts, deduplicate repeats, resolve what cleared (see the module doc).

        ``checks_run``: the checks that ran; ``enabled``: those configured to run (``None``:
        any). An alert of a check that ran and no longer found it, or of a check not enabled,
        is resolved. Alerts to send are left pending until :meth:`mark_sent` records their
        delivery.
        """
        state = self._load()
        update = AlertUpdate()
        seen: set[str] = set()
        for alert in found:
            key = alert.fingerprint
            seen.add(key)
            entry = state.get(key)
            if entry is None or entry["alert"].get("status") == "resolved":
                state[key] = {"alert": alert.to_dict(), "last_sent": None, "pending": True}
                update.notify.append(alert)
                update.raised.append(alert)
                update.firing.append(alert)
                continue
            started = Alert.from_dict(entry["alert"]).starts_at
            current = replace(alert, starts_at=started)
            entry["alert"] = current.to_dict()
            update.firing.append(current)
            last_sent = entry.get("last_sent")
            if entry.get("pending"):  # raised before, not delivered yet: offered again
                update.notify.append(current)
            elif (
                last_sent is None or now - datetime.fromisoformat(last_sent) >= self.repeat_interval
            ):
                entry["pending"] = True
                update.notify.append(current)
                update.raised.append(current)
            else:
                update.deduplicated += 1
        for key in list(state):
            if key in seen:
                continue
            alert = Alert.from_dict(state[key]["alert"])
            if alert.status == "resolved":  # a resolution not delivered yet
                update.notify.append(alert)
                update.resolved.append(alert)
                continue
            check = alert.labels.get("check", "")
            if check not in checks_run and (enabled is None or check in enabled):
                update.firing.append(alert)  # skipped for lack of data: it may still hold
                continue
            done = replace(alert, status="resolved", ends_at=now)
            state[key] = {"alert": done.to_dict(), "last_sent": None, "pending": True}
            update.notify.append(done)
            update.resolved.append(done)
        self._save()
        return update

    def mark_sent(self, alerts: Sequence[Alert], *, now: datetime) -> None:
        """Record ``alerts`` as delivered: repeats of a firing one are deduplicated from
        ``now``, a resolution is forgotten."""
        state = self._load()
        for alert in alerts:
            entry = state.get(alert.fingerprint)
            if entry is None or entry["alert"].get("status") != alert.status:
                continue
            if alert.status == "resolved":
                del state[alert.fingerprint]
            else:
                entry["last_sent"] = now.isoformat()
                entry.pop("pending", None)
        self._save()


def _checked_state(path: Path, data: Any) -> dict[str, JSON]:
    """The state file's content, or a one-line error: it is kept, never overwritten blindly,
    as it holds the alerts still firing."""
    shape = '{fingerprint: {"alert": {"labels": {...}, "starts_at": ...}}}'
    if not isinstance(data, dict):
        raise DataError(
            f"alert state {path}: expected a JSON object {shape}, found a JSON "
            f"{_json_kind(data)}; fix or remove the file"
        )
    for key, entry in data.items():
        try:
            Alert.from_dict(entry["alert"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DataError(
                f"alert state {path}: expected a JSON object {shape}, found entry {key!r} "
                f"= {json.dumps(entry)[:80]}; fix or remove the file"
            ) from None
    return data


def _json_kind(value: Any) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


# -- sinks -----------------------------------------------------------------------------


class Sink(Protocol):
    """Where alerts go: ``send`` delivers a batch or raises :class:`DeliveryError`.

    ``resends_firing`` marks a receiver that must hear of every firing alert at each run and
    ends one it stops hearing about (Alertmanager); the others get only new, repeated and
    resolved alerts.
    """

    name: str
    resends_firing: bool

    def send(self, alerts: Sequence[Alert]) -> None: ...


class DeliveryError(RuntimeError):
    """A sink could not deliver after its retries (reported, never fatal to a run)."""


class LogSink:
    """One JSON line per alert on a stream (stderr by default)."""

    name = "log"
    resends_firing = False

    def __init__(self, *, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def send(self, alerts: Sequence[Alert]) -> None:
        stream = self.stream or sys.stderr
        for alert in alerts:
            stream.write(json.dumps({"event": "alert", **alert.to_dict()}) + "\n")
        stream.flush()


Poster = Callable[[str, bytes, float], int]


def redact_url(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part and its query values hidden."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a port that is not a number: hide what looks like a password
        return redact_password(url.split("?", 1)[0])
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username}:***@{host}{port}"
    query = "&".join(
        f"{key}=***" for key, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def post_json(url: str, body: bytes, timeout_s: float) -> int:
    """POST a JSON body; return the HTTP status (raises ``OSError`` on connection errors).

    A ``user:password@`` part of the URL is sent as HTTP basic authentication.
    """
    headers = {"Content-Type": "application/json"}
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
        netloc = parts.netloc.rsplit("@", 1)[1]
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class _HttpSink:
    name = "http"
    resends_firing = False

    def __init__(
        self,
        *,
        url: str,
        retries: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        poster: Poster = post_json,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.poster = poster
        self.sleep = sleep
        self.attempts_ = 0

    def _target(self) -> str:
        return self.url

    def _body(self, alerts: Sequence[Alert]) -> bytes:
        raise NotImplementedError

    def send(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        body = self._body(alerts)
        problem = ""
        for attempt in range(self.retries + 1):
            self.attempts_ += 1
            try:
                status = self.poster(self._target(), body, self.timeout_s)
            except OSError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            except ValueError as exc:  # a malformed URL: retrying cannot help
                problem = f"invalid URL ({exc})"
                break
            else:
                if 200 <= status < 300:
                    return
                problem = f"HTTP {status}"
                if status not in _RETRY_STATUSES:
                    break
            if attempt < self.retries:
                self.sleep(self.backoff_s * 2**attempt)
        target = redact_url(self._target())
        raise DeliveryError(f"{self.name} {target}: not delivered ({problem})")


class WebhookSink(_HttpSink):
    """POST ``{"version", "status", "alerts": [...]}`` as JSON, retrying with back-off.

    Args:
        url: the receiver.
        retries: further attempts after the first (5xx, 429, 408, connection errors).
        backoff_s: first wait; doubles on each retry.
        timeout_s: per attempt.
    """

    name = "webhook"

    def _body(self, alerts: Sequence[Alert]) -> bytes:
        firing = any(a.status == "firing" for a in alerts)
        return json.dumps(
            {
                "version": "readyml.alerts/1",
                "status": "firing" if firing else "resolved",
                "alerts": [a.to_dict() for a in alerts],
            }
        ).encode()


class AlertmanagerSink(_HttpSink):
    """POST alerts to Alertmanager's API v2 (``{url}/api/v2/alerts``).

    Alertmanager resolves an alert it has not heard of within its ``resolve_timeout``, so
    it is sent every firing alert at each run, each valid until a given ``endsAt``.
    """

    name = "alertmanager"
    resends_firing = True

    def _target(self) -> str:
        return self.url.rstrip("/") + "/api/v2/alerts"

    def _body(self, alerts: Sequence[Alert]) -> bytes:
        return json.dumps(
            [
                {
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": _rfc3339(a.starts_at),
                    **({"endsAt": _rfc3339(a.ends_at)} if a.ends_at else {}),
                }
                for a in alerts
            ]
        ).encode()


def _rfc3339(stamp: datetime) -> str:
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def deliver_update(
    sinks: Sequence[Sink], update: AlertUpdate, *, now: datetime, valid_for: timedelta
) -> tuple[list[JSON], list[Alert]]:
    """Send one run's alerts: what changed to most sinks, and to a sink that
    ``resends_firing`` every firing alert (valid until ``now + valid_for``) and the resolved.

    Returns the outcome per sink, and the alerts of ``update.notify`` that count as sent:
    delivered by a sink other than the log (by the log when it is the only sink; all of them
    when there is no sink, as nothing would ever deliver them).
    """
    current = [replace(alert, ends_at=now + valid_for) for alert in update.firing]
    ordered = [s for s in sinks if not s.resends_firing] + [s for s in sinks if s.resends_firing]
    # A line on stderr tells no one who was not watching: it counts only when alone.
    counting = [s for s in sinks if not isinstance(s, LogSink)] or list(sinks)
    outcomes: list[JSON] = []
    delivered: set[str] = set()
    for sink in ordered:
        alerts = current + update.resolved if sink.resends_firing else update.notify
        if not alerts:
            continue
        outcome = _send(sink, alerts)
        outcomes.append(outcome)
        if outcome["delivered"] and any(sink is s for s in counting):
            delivered.update(alert.fingerprint for alert in alerts)
    sent = [a for a in update.notify if not counting or a.fingerprint in delivered]
    return outcomes, sent


def deliver(sinks: Sequence[Sink], alerts: Sequence[Alert]) -> list[JSON]:
    """Send ``alerts`` to every sink; a failing sink is reported, the others still get them."""
    return [_send(sink, alerts) for sink in sinks] if alerts else []


def _send(sink: Sink, alerts: Sequence[Alert]) -> JSON:
    """One sink's delivery of ``alerts``, as an outcome (a failure is logged, not raised)."""
    try:
        sink.send(alerts)
    except DeliveryError as exc:
        _LOG.warning("%s", exc)
        return {"sink": sink.name, "delivered": False, "error": str(exc)}
    return {"sink": sink.name, "delivered": True, "alerts": len(alerts)}


def sinks_from_spec(spec: Any) -> list[Sink]:
    """Sinks declared in ``monitoring.alerts`` (an :class:`~readyml.config.AlertSinksSpec`)."""
    sinks: list[Sink] = []
    if spec.log:
        sinks.append(LogSink())
    http = {"retries": spec.retries, "backoff_s": spec.backoff_s, "timeout_s": spec.timeout_s}
    if spec.webhook_url:
        sinks.append(WebhookSink(url=spec.webhook_url, **http))
    if spec.alertmanager_url:
        sinks.append(AlertmanagerSink(url=spec.alertmanager_url, **http))
    return sinks
