"""The demo's feedback loop: capture, label, retrain on the alert, compare, canary.

After the demo's monitor reports drift on the replayed 2014–2015 traffic, this captures
examples from the request log, labels them from the data set's own ground truth (standing
in for a reviewer: the demo says so), imports them as a production dataset, and lets the
alert retrain the model through ``monitoring.on_alert`` while a real server runs and takes
traffic, so the blessed candidate is rolled out by canary exactly as in production.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from readyml import _console as console
from readyml.config import Project
from readyml.data import load_schema, write_schema
from readyml.errors import ReadymlError
from readyml.feedback.capture import capture
from readyml.feedback.retrain import RetrainRecord, retrain_on_alerts
from readyml.feedback.review_import import import_review
from readyml.feedback.review_sets import read_examples, review_root
from readyml.monitor import record_feedback
from readyml.monitor.alerts import Alert
from readyml.registry import Registry
from readyml.serve.demo import STOP_TIMEOUT_S, demo_server
from readyml.serve.management_client import management_call
from readyml.types import JSON

SCHEMA_FILE = "schema.yaml"
# Longest wait for the canary's final decision (s).
DECISION_TIMEOUT_S = 90.0
_FINAL = ("promoted", "rolled_back")
# Requests the promoted version answers alone before the demo stops the server, so that the
# monitor's next run sees a sample of it large enough to judge drift and quality.
AFTER_PROMOTION_REQUESTS = 400


def feedback_demo(
    project: Project,
    registry: Registry,
    alerts: Sequence[Alert],
    *,
    labels: Mapping[str, str],
    traffic_rows: list[dict[str, Any]],
    traffic_labels: Sequence[str] | None = None,
    runner: Any,
    reporter: Any = None,
    budget: Mapping[str, int] | None = None,
    commit: Callable[[str], None] | None = None,
) -> JSON:
    """Run the loop once; print each stage; return what happened.

    Args:
        alerts: the monitor's firing alerts (the trigger).
        labels: the true label of each replayed request id (the stand-in reviewer).
        traffic_rows: input rows sent to the server (one per request, in a seeded random
            order) while the candidate is canaried.
        traffic_labels: their true labels, fed back by request id after the rollout (as
            labels arrive later in production); ``None``: none arrive.
        runner: :func:`readyml.train.run_project`.
        budget: examples per capture reason (see :func:`readyml.feedback.capture.capture`).
        commit: checks in the reviewed schema.yaml with a message (the spec is reviewed and
            submitted before a run, ML Test Score model-1); ``None``: leave it uncommitted.
    """
    captured = capture(project, registry, budget=budget)
    console.table(
        f"capture: {captured.total} examples from {captured.rows_scanned:,} logged rows",
        ["reason", "selected", "matched"],
        [[r, captured.counts[r], captured.matched.get(r, 0)] for r in captured.counts],
    )
    outcome: JSON = {"capture": captured.to_dict()}
    if captured.set_id is None:
        console.stdout.print("  nothing new to review (every example was captured before)")
    else:
        filled = read_examples(project.workspace, captured.set_id)
        filled["label"] = [labels.get(str(r)) for r in filled["request_id"]]
        path = review_root(project.workspace) / captured.set_id / "examples.labelled.csv"
        filled.to_csv(path, index=False)
        imported = import_review(project.workspace, path, label=project.spec.label)
        outcome["import"] = imported.to_dict()
        dataset = imported.dataset
        console.stdout.print(
            f"  labelled {imported.kept} examples from the data set's own ground truth "
            "(standing in for a reviewer) → "
            + (f"{dataset.ref} (sha256 {dataset.fingerprint[:12]})" if dataset else "nothing")
            + (f"; {imported.blank} left blank (no ground truth here)" if imported.blank else "")
        )
        changes = _review_schema(project, filled)
        for change in changes:
            console.stdout.print(f"  schema.yaml reviewed: {change}")
        if changes and commit is not None:
            commit("Widen schema ranges to reviewed production values\n\n" + "\n".join(changes))
    token = secrets.token_hex(16)
    token_env = project.spec.serving.token_env
    with (
        _environment(token_env, token),
        demo_server(project, env={**os.environ, token_env: token}) as url,
        _traffic(url, traffic_rows, seed=project.spec.seed) as sent,
    ):
        spec = project.spec
        assert spec.monitoring.on_alert is not None, "the demo spec sets monitoring.on_alert"
        on_alert = spec.monitoring.on_alert.model_copy(update={"server_url": url})
        monitoring = spec.monitoring.model_copy(update={"on_alert": on_alert})
        served = Project(
            spec=spec.model_copy(update={"monitoring": monitoring}), root=project.root, raw={}
        )
        console.stdout.print(f"  the alert triggers a retrain ({len(alerts)} alert(s) firing)")
        record = retrain_on_alerts(served, registry, alerts, runner=runner, reporter=reporter)
        rollout = _await_rollout(url, spec.name, token_env) if _rolling(record) else {}
        if rollout.get("state") == "promoted":  # the new champion serves alone for a while
            _await_requests(sent, len(sent) + AFTER_PROMOTION_REQUESTS)
    outcome["retrain"] = record.to_dict() if record is not None else None
    outcome["rollout"] = rollout
    _print_outcome(record, rollout, len(sent), spec.metrics.primary or "accuracy")
    if traffic_labels is not None and sent:
        fed = record_feedback(
            project.workspace,
            [{"request_id": rid, "label": traffic_labels[i]} for rid, i in sent.items()],
        )
        console.stdout.print(
            f"  labels for the rollout's traffic arrive later: {fed.new + fed.relabelled:,}"
        )
    return outcome


def _review_schema(project: Project, examples: pd.DataFrame) -> list[str]:
    """Widen schema.yaml's ranges and categories to the reviewed examples; say what changed.

    The data gate refuses training data outside the checked-in schema, and 2014–2015 has
    days wetter and warmer than 2012–2013. A reviewer who confirms such values are real
    widens the schema (in a real project: a reviewed change to schema.yaml); the demo does
    it for them, and prints each change.
    """
    path = project.root / SCHEMA_FILE
    if not path.exists():
        return []
    schema = load_schema(path)
    changes: list[str] = []
    features = []
    for feature in schema.features:
        if feature.name not in examples.columns:
            features.append(feature)
            continue
        values = examples[feature.name].dropna()
        updated = feature
        if feature.min is not None and len(values) and float(values.min()) < feature.min:
            updated = replace(updated, min=float(values.min()))
        if feature.max is not None and len(values) and float(values.max()) > feature.max:
            updated = replace(updated, max=float(values.max()))
        if feature.categories is not None:
            unseen = sorted({str(v) for v in values} - set(feature.categories))
            if unseen:
                updated = replace(updated, categories=[*feature.categories, *unseen])
        if updated != feature:
            changes.append(
                f"{feature.name} [{feature.min:.4g}, {feature.max:.4g}] → "
                f"[{updated.min:.4g}, {updated.max:.4g}]"
                if updated.categories == feature.categories
                else f"{feature.name} categories + {', '.join(unseen)}"
            )
        features.append(updated)
    if changes:
        write_schema(replace(schema, features=features), path, overwrite=True)
    return changes


def _rolling(record: RetrainRecord | None) -> bool:
    return record is not None and record.state == "canary"


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for the block (the management client reads the token)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextlib.contextmanager
def _traffic(url: str, rows: list[dict[str, Any]], *, seed: int) -> Iterator[dict[str, int]]:
    """Send ``rows`` to ``/predict`` one per request, in a seeded random order (so that a
    short rollout sees every season), until the block ends; yield request id → row index."""
    stop = threading.Event()
    sent: dict[str, int] = {}
    order = np.random.default_rng(seed).permutation(len(rows)) if rows else np.array([], int)
    prefix = f"loop-{secrets.token_hex(4)}"

    def loop() -> None:
        number = 0
        while not stop.is_set() and len(order):
            index = int(order[number % len(order)])
            request_id = f"{prefix}-{number:06d}"
            request = urllib.request.Request(
                f"{url}/predict",
                data=json.dumps([rows[index]]).encode(),
                headers={"Content-Type": "application/json", "X-Request-Id": request_id},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    answer.read()
                sent[request_id] = index
            except (urllib.error.URLError, OSError):
                time.sleep(0.01)
            number += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield sent
    finally:
        stop.set()
        thread.join(timeout=STOP_TIMEOUT_S)


def _await_requests(sent: dict[str, int], count: int) -> None:
    """Wait (bounded) until ``count`` requests were answered."""
    deadline = time.monotonic() + DECISION_TIMEOUT_S
    while len(sent) < count and time.monotonic() < deadline:
        time.sleep(0.1)


def _await_rollout(url: str, name: str, token_env: str) -> JSON:
    """Poll the server until the rollout of ``name`` is promoted or rolled back."""
    state: JSON = {}
    deadline = time.monotonic() + DECISION_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            rollouts = management_call(url, "/v2/management/rollout", token_env=token_env)
        except ReadymlError:
            time.sleep(0.2)
            continue
        state = next((r for r in rollouts["rollouts"] if r["model"] == name), state)
        if state.get("state") in _FINAL:
            break
        time.sleep(0.2)
    return state


def _print_outcome(record: RetrainRecord | None, rollout: JSON, sent: int, metric: str) -> None:
    if record is None:
        console.stdout.print("  no alert matched monitoring.on_alert: nothing retrained")
        return
    console.stdout.print(f"  retrain {record.id}: {record.state} — {record.reason}")
    window = record.production_window or {}
    old, new = window.get("champion") or {}, window.get("candidate") or {}
    if metric in old and metric in new:
        console.stdout.print(
            f"  {metric} on the newest production window ({window['rows']} held-out examples): "
            f"v{window.get('champion_version')} {old[metric]:.3f} → v{record.version} "
            f"{new[metric]:.3f}"
        )
    for decision in rollout.get("decisions", []):
        console.stdout.print(
            f"  canary {decision['action']:8} at {decision['weight']:g}%: {decision['reason']}"
        )
    if rollout:
        console.stdout.print(
            f"  rollout {rollout.get('state')} with {sent:,} requests of live traffic"
        )
