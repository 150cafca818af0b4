"""Rollouts: shadow, canary steps, automated analysis, promotion and rollback.

A rollout moves one model name from its *stable* version to a *candidate*. The candidate
first passes infra validation (:mod:`readyml.serve.infra_validation`) and never serves
if it fails. Then, optionally, it *shadows* the stable version: every request is answered
by the stable version and mirrored to the candidate, whose answers are only recorded. Then
it takes ``steps`` percent of the traffic in turn (5 → 25 → 50 → 100 by default; a
``sticky_header`` pins a caller to one side). Each step lasts at least ``step_duration_s``
and until the candidate answered ``min_requests``; the controller then judges the
candidate of that step against the stable version since the rollout began on error rate,
validation rejections, latency p95 and p99, NaN/inf outputs and the Jensen-Shannon
distance between their predictions (:mod:`readyml.serve.canary`: pass, fail, or
inconclusive on too little data). A limit broken with confidence rolls the candidate back;
an inconclusive step goes on and is judged again at twice the requests (recorded once, as
``extend``), and rolls back if still undecided at ``max_step_requests`` or
``max_step_duration_s``; the last step passed promotes the candidate (``registry.promote``)
and makes it the stable version.

Every decision is written to the registry's audit (alias ``canary``, the reason with the
numbers), and as evidence: ``infra-6`` (the canary ran and decided on data) and ``infra-7``
(a rollback was executed, with its measured seconds). The rollout's state is persisted as
JSON under the workspace (temporary file, then rename), with the stable version's window
as of the last decision, so a restarted server resumes it at the step it was in, measuring
the candidate's window of that step afresh. A candidate that no longer loads or passes infra
validation at the restart is rolled back instead, with the reason: the stable version serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import os
import random
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from readyml.config import RolloutSpec, describe_validation_error
from readyml.errors import AliasError, BadRequest, FlavorError, ReadymlError, ServeError
from readyml.predict import NonFiniteOutput, Predictor
from readyml.registry import CHAMPION, ModelVersion, Registry
from readyml.registry.reports import keep_json_report, key_part, stamp
from readyml.serve._http import Scope
from readyml.serve.canary import ArmStats, Outcome, Verdict, judge, request_cap
from readyml.serve.deployment import Deployment, ModelTable
from readyml.serve.infra_validation import (
    InfraValidationFailed,
    InfraValidator,
    record_failure,
)
from readyml.types import JSON, Evidence

# The alias under which rollout decisions are written to the registry audit.
AUDIT_ALIAS = "canary"
# Who the controller acts as in audit records.
CONTROLLER = "readyml-rollout"
# How long a replaced deployment may finish its queued requests (s).
DRAIN_TIMEOUT_S = 10.0
# Percent buckets a sticky key is hashed into.
STICKY_BUCKETS = 10_000
# Version statuses that never serve (as they can never become ``champion``).
NEVER_SERVED = ("vetoed", "archived")
# The subfolder of the rollout folder holding each active rollout's stable window.
WINDOWS = "windows"

Loader = Callable[[str], Predictor]
MakeDeployment = Callable[[Predictor], Deployment]


class RolloutState(enum.Enum):
    """Where a rollout is: mirroring, taking traffic, or finished one way or the other."""

    SHADOW = "shadow"
    CANARY = "canary"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


_ACTIVE = frozenset({RolloutState.SHADOW, RolloutState.CANARY})
_ILLEGAL: dict[tuple[RolloutState, RolloutState], str] = {
    (RolloutState.SHADOW, RolloutState.SHADOW): "the candidate is already shadowing",
    (RolloutState.CANARY, RolloutState.CANARY): "the canary is already taking traffic",
    (RolloutState.CANARY, RolloutState.SHADOW): (
        "a canary cannot return to shadowing; roll it back and deploy it again"
    ),
}
for _done in (RolloutState.PROMOTED, RolloutState.ROLLED_BACK):
    for _target in RolloutState:
        _ILLEGAL[(_done, _target)] = (
            f"the rollout is finished ({_done.value}); deploy a new candidate to start another"
        )


class IllegalTransition(ServeError):
    """A rollout was asked to move to a state it cannot reach from where it is."""

    status_code = 409


class RolloutConflict(ServeError):
    """A rollout is already running for this model, or none is and one was expected."""

    status_code = 409


class VersionRefused(InfraValidationFailed):
    """A vetoed or archived version was asked to serve; it never does (no replay is run)."""

    status_code = 409


def refuse_never_served(registry: Registry, ref: str) -> ModelVersion:
    """The version ``ref`` names, unless it is vetoed or archived (a 409: it never serves)."""
    version = registry.get(ref)
    if version.status in NEVER_SERVED:
        raise VersionRefused(
            f"version: expected a version of model {version.name!r} that may serve (a "
            f"person may restore one: readyml models restore {version.name}:{version.version}"
            f"), found version {version.version} {version.status}"
        )
    return version


def transition(current: RolloutState, target: RolloutState, model: str) -> RolloutState:
    """Return ``target`` if ``current`` may move there; raise :class:`IllegalTransition`.

    >>> transition(RolloutState.SHADOW, RolloutState.CANARY, "iris").value
    'canary'
    """
    message = _ILLEGAL.get((current, target))
    if message is not None:
        raise IllegalTransition(
            f"rollout of model {model!r}: cannot go from {current.value} to {target.value}: "
            f"{message}"
        )
    return target


@dataclass
class Decision:
    """One decision of a rollout, as persisted and reported."""

    at: str
    action: str
    state: str
    weight: float
    reason: str
    numbers: JSON = field(default_factory=dict)


@dataclass
class RolloutRecord:
    """The persisted part of a rollout (what a restarted server needs to resume it)."""

    model: str
    stable_version: int
    candidate_version: int
    state: str
    step_index: int
    spec: JSON
    started_at: str
    decisions: list[Decision] = field(default_factory=list)

    @classmethod
    def from_dict(cls, document: JSON) -> RolloutRecord:
        """Read a record written by :meth:`to_dict`."""
        decisions = [Decision(**item) for item in document.get("decisions", [])]
        return cls(**{**document, "decisions": decisions})

    def to_dict(self) -> JSON:
        """A JSON-ready dict."""
        return asdict(self)


class Rollout:
    """A rollout in progress: its record, the candidate deployment and the windows' stats."""

    def __init__(
        self, *, record: RolloutRecord, candidate: Deployment, stable: ArmStats | None = None
    ) -> None:
        self.record = record
        self.candidate = candidate
        self.spec = RolloutSpec.model_validate(record.spec)
        # The stable version's window since the rollout began (restored after a restart).
        self.stable_stats = stable if stable is not None else ArmStats()
        self.candidate_stats = ArmStats()
        self.step_started_s = time.monotonic()
        # Candidate requests at which the step is judged (next); doubled while inconclusive.
        self.judge_at_requests = self.spec.min_requests
        # The step's last inconclusive verdict (None until one).
        self.undecided: Verdict | None = None

    @property
    def state(self) -> RolloutState:
        """The rollout's state."""
        return RolloutState(self.record.state)

    @property
    def least_s(self) -> float:
        """The least seconds the current step (or the shadow) runs before it is judged."""
        return (
            self.spec.shadow_s if self.state is RolloutState.SHADOW else self.spec.step_duration_s
        )

    def due(self, elapsed_s: float) -> bool:
        """Whether the step is to be judged now: it ran long enough and the candidate
        answered the requests the next look waits for (or an inconclusive step hit its
        time cap)."""
        if elapsed_s < self.least_s:
            return False
        if self.candidate_stats.requests >= self.judge_at_requests:
            return True
        return self.undecided is not None and self.timed_out(elapsed_s)

    def timed_out(self, elapsed_s: float) -> bool:
        """Whether the step ran past ``max_step_duration_s`` (or its longer least duration)."""
        cap_s = self.spec.max_step_duration_s
        return cap_s is not None and elapsed_s >= max(cap_s, self.least_s)

    @property
    def weight(self) -> float:
        """The candidate's share of the traffic now (percent; 0 while shadowing)."""
        if self.state is RolloutState.CANARY:
            return self.spec.steps[self.record.step_index]
        return 100.0 if self.state is RolloutState.PROMOTED else 0.0

    def new_step(self) -> None:
        """Start measuring a new window for the candidate."""
        self.candidate_stats = ArmStats()
        self.step_started_s = time.monotonic()
        self.judge_at_requests = self.spec.min_requests
        self.undecided = None

    def to_dict(self) -> JSON:
        """The record and the current windows, for ``GET /v2/management/rollout``."""
        return {
            **self.record.to_dict(),
            "weight": self.weight,
            "step_elapsed_s": round(time.monotonic() - self.step_started_s, 3),
            "window": {
                "stable": self.stable_stats.summary(),
                "candidate": self.candidate_stats.summary(),
            },
            "judge_at_requests": self.judge_at_requests,
            "undecided": None if self.undecided is None else self.undecided.reason,
        }


class Route:
    """Where one request goes: the deployment that answers, its side, and a shadow."""

    __slots__ = ("arm", "deployment", "rollout", "shadow")

    def __init__(
        self,
        deployment: Deployment,
        rollout: Rollout | None = None,
        arm: ArmStats | None = None,
        shadow: Deployment | None = None,
    ) -> None:
        self.deployment = deployment
        self.rollout = rollout
        self.arm = arm
        self.shadow = shadow


class RolloutManager:
    """Runs the rollouts of one server: routing, the controller loop, decisions, state.

    Args:
        project: The project name (for evidence).
        registry: Where versions are loaded from and decisions recorded.
        table: The server's model table (the stable versions).
        folder: Where rollout state is persisted (one JSON file per model).
        load: Loads a ``NAME:V`` reference.
        make_deployment: Wraps a predictor in a deployment with the server's batching.
        spec: The project's rollout settings (a deploy call may override them).
        logs: The request-log folder, whose rows infra validation replays.
    """

    def __init__(
        self,
        *,
        project: str,
        registry: Registry,
        table: ModelTable,
        folder: Path,
        load: Loader,
        make_deployment: MakeDeployment,
        spec: RolloutSpec,
        logs: Path | None = None,
    ) -> None:
        self.project = project
        self.registry = registry
        self.table = table
        self.folder = folder
        self.load = load
        self.make_deployment = make_deployment
        self.spec = spec
        self.logs = logs
        self.rollouts: dict[str, Rollout] = {}
        self._starting: set[str] = set()  # deploys still validating their candidate
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._random = random.Random()

    # -- routing (on the event loop, per request) -----------------------------------------

    def route(self, stable: Deployment, scope: Scope) -> Route:
        """Pick the side that answers a request for ``stable``'s model."""
        rollout = self.rollouts.get(stable.name)
        if rollout is None:
            return Route(stable)
        if rollout.state is RolloutState.SHADOW:
            return Route(stable, rollout, rollout.stable_stats, shadow=rollout.candidate)
        if self._bucket(rollout.spec.sticky_header, scope) < rollout.weight:
            return Route(rollout.candidate, rollout, rollout.candidate_stats)
        return Route(stable, rollout, rollout.stable_stats)

    def _bucket(self, header: str | None, scope: Scope) -> float:
        if header is not None:
            wanted = header.lower().encode("latin-1")
            for name, value in scope["headers"]:
                if name == wanted:
                    return (zlib.crc32(value) % STICKY_BUCKETS) * 100.0 / STICKY_BUCKETS
        return self._random.random() * 100.0

    def candidates(self) -> list[Deployment]:
        """The candidate deployments of the running rollouts."""
        return [rollout.candidate for rollout in self.rollouts.values()]

    def candidate_for(self, name: str, version: str) -> Deployment | None:
        """The candidate deployment of ``name`` when it is ``version`` (explicit calls)."""
        rollout = self.rollouts.get(name)
        if rollout is not None and rollout.candidate.version_label == version:
            return rollout.candidate
        return None

    async def mirror(self, route: Route, part: Any, rows: int) -> None:
        """Send a shadowed request to the candidate and record its answer (never returned)."""
        assert route.shadow is not None and route.rollout is not None
        stats = route.rollout.candidate_stats
        started_s = time.monotonic()
        try:
            prediction, offset = await route.shadow.batcher.submit(part, rows=rows)
        except NonFiniteOutput as exc:  # it answered, with NaN or infinity
            stats.observe(200, time.monotonic() - started_s)
            stats.record_nonfinite(rows, exc.rows)
            return
        except ReadymlError as exc:
            stats.observe(exc.status_code, time.monotonic() - started_s)
            return
        except Exception:
            stats.observe(500, time.monotonic() - started_s)
            return
        stats.observe(200, time.monotonic() - started_s)
        stats.record(prediction, offset, rows)

    # -- lifecycle ------------------------------------------------------------------------

    def resume(self) -> list[str]:
        """Reload and validate the candidates of rollouts persisted as active (before serving
        starts); those that fail are rolled back. Returns the models resumed."""
        resumed = []
        for path in sorted(self.folder.glob("*.json")):
            record = RolloutRecord.from_dict(json.loads(path.read_text()))
            if RolloutState(record.state) in _ACTIVE and self._resume(record):
                resumed.append(record.model)
        return resumed

    def _resume(self, record: RolloutRecord) -> bool:
        """Resume one rollout, or record it rolled back when its candidate cannot serve."""
        ref = f"{record.model}:{record.candidate_version}"
        try:
            spec = RolloutSpec.model_validate(record.spec)
        except ValidationError as exc:  # written before a rule that now refuses it
            self._settle(record, f"resume after a restart: {override_error(exc)}")
            return False
        try:
            predictor = self._validate(ref, spec)
        except ReadymlError as exc:
            self._settle(record, f"resume after a restart: {ref} cannot serve: {exc}")
            return False
        self.rollouts[record.model] = Rollout(
            record=record,
            candidate=self.make_deployment(predictor),
            stable=self._read_window(record.model),
        )
        return True

    def _settle(self, record: RolloutRecord, reason: str) -> None:
        """Record a rollout that is not resumed as rolled back (blocking; before serving)."""
        record.state = transition(
            RolloutState(record.state), RolloutState.ROLLED_BACK, record.model
        ).value
        decision = Decision(
            at=_now(), action="rollback", state=record.state, weight=0.0, reason=reason
        )
        try:
            self._audit(record, decision, [])
        except ReadymlError as exc:  # the stable version serves all the same
            print(f"readyml: rollout of {record.model!r}: audit refused: {exc}", file=sys.stderr)
        finally:
            record.decisions.append(decision)
            self._persist(record)
        print(f"readyml: rollout of {record.model!r} rolled back: {reason}", file=sys.stderr)

    def start(self) -> None:
        """Start the controller of every active rollout (called by the lifespan)."""
        for name in self.rollouts:
            self._start(name)

    async def stop(self) -> None:
        """Stop the controllers and drain the candidates (their state stays persisted)."""
        for task in self._tasks.values():
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for rollout in self.rollouts.values():
            await rollout.candidate.batcher.drain(DRAIN_TIMEOUT_S)

    def _start(self, name: str) -> None:
        self._tasks[name] = asyncio.get_running_loop().create_task(self._drive(name))

    def status(self) -> JSON:
        """Active rollouts and the last persisted state of finished ones."""
        result: JSON = {}
        for path in sorted(self.folder.glob("*.json")):
            result[path.stem] = json.loads(path.read_text())
        for name, rollout in self.rollouts.items():
            result[name] = rollout.to_dict()
        return {"rollouts": [result[name] for name in sorted(result)]}

    # -- management calls -------------------------------------------------------------------

    async def deploy(
        self, name: str, version: int, *, mode: str, overrides: JSON | None = None
    ) -> JSON:
        """Validate ``name:version`` and start its rollout (``canary``, ``shadow``) or serve
        it at once (``direct``).

        Raises:
            InfraValidationFailed: The candidate failed infra validation; it never serves.
            RolloutConflict: A rollout of this model is already running.
            BadRequest: Unknown mode, or overrides the rollout spec does not accept.
        """
        if mode not in ("canary", "shadow", "direct"):
            raise BadRequest(f"mode: expected 'canary', 'shadow' or 'direct', found {mode!r}")
        self.check_idle(name)
        try:
            spec = RolloutSpec.model_validate(self.spec.model_dump() | dict(overrides or {}))
        except ValidationError as exc:
            raise BadRequest(override_error(exc)) from None
        if mode == "canary" and spec.steps[0] >= 100.0:
            raise BadRequest(first_step_error(spec.steps))
        stable = self.table.get(name)
        if stable.version == version:
            raise RolloutConflict(
                f"version: expected a version of {name!r} other than the one serving, found "
                f"version {version}, which serves already"
            )
        ref = f"{name}:{version}"
        self._starting.add(name)  # a second deploy while this one validates: 409
        try:
            candidate = await asyncio.to_thread(self._validate, ref, spec)
        finally:
            self._starting.discard(name)
        self._check_unchanged(name, stable)
        if mode == "direct":
            self._replace_stable(self.make_deployment(candidate))
            return {"model": name, "version": version, "state": "serving"}
        state = RolloutState.SHADOW if mode == "shadow" else RolloutState.CANARY
        record = RolloutRecord(
            model=name,
            stable_version=stable.version,
            candidate_version=version,
            state=state.value,
            step_index=0,
            spec=spec.model_dump(mode="json"),
            started_at=_now(),
        )
        rollout = Rollout(record=record, candidate=self.make_deployment(candidate))
        self.rollouts[name] = rollout
        await self._decide(rollout, "start", f"{mode} of version {version} started", {})
        self._start(name)
        return rollout.to_dict()

    def _validate(self, ref: str, spec: RolloutSpec) -> Predictor:
        version = refuse_never_served(self.registry, ref)
        validator = InfraValidator(
            latency_budget_ms=spec.infra_latency_budget_ms, log_rows=spec.infra_log_rows
        )
        report, predictor = validator.run(
            ref, load=self._load_or_refuse, version=version, logs=self.logs
        )
        if predictor is None:
            record_failure(self.registry, self.project, version, report)
            raise InfraValidationFailed(f"{ref}: infra validation failed: {report.reason}")
        return predictor

    def _load_or_refuse(self, ref: str) -> Predictor:
        """``self.load``, whose every failure is the version's: a validation verdict, not a 500
        (a corrupt file may fail inside the flavor's library with its own exception)."""
        try:
            return self.load(ref)
        except ReadymlError:
            raise
        except Exception as exc:
            raise FlavorError(f"{ref}: {type(exc).__name__}: {exc}") from exc

    async def promote(self, name: str, *, reason: str, numbers: JSON | None = None) -> JSON:
        """Make the candidate the stable version and the registry's champion.

        Raises:
            RolloutConflict: No rollout of ``name`` is running.
        """
        rollout = self._active(name)
        target = transition(rollout.state, RolloutState.PROMOTED, name)
        ref = f"{name}:{rollout.record.candidate_version}"
        try:
            await asyncio.to_thread(
                self.registry.promote, ref, who=CONTROLLER, reason=f"rollout: {reason}"
            )
        except AliasError as exc:
            return await self.rollback(name, reason=f"promotion refused: {exc}", on_data=False)
        self._replace_stable(rollout.candidate)
        rollout.record.state = target.value
        # Off the live list first: the status route then shows the persisted record, which
        # changes only once the decision's audit row and evidence are written.
        self._finish(name)
        await self._decide(rollout, "promote", reason, numbers or {}, passed=True)
        return rollout.to_dict()

    async def rollback(
        self, name: str, *, reason: str, numbers: JSON | None = None, on_data: bool = False
    ) -> JSON:
        """Stop sending traffic to the candidate; the stable version answers everything.

        Raises:
            RolloutConflict: No rollout of ``name`` is running.
        """
        started_s = time.monotonic()
        rollout = self._active(name)
        target = transition(rollout.state, RolloutState.ROLLED_BACK, name)
        del self.rollouts[name]  # from here on no request reaches the candidate
        seconds = time.monotonic() - started_s
        rollout.record.state = target.value
        await self._decide(
            rollout,
            "rollback",
            reason,
            {**(numbers or {}), "rollback_s": round(seconds, 6)},
            passed=True if on_data else None,
            evidence=[
                self._evidence(rollout, "infra-7", True, {"seconds": seconds, "reason": reason})
            ],
        )
        self._finish(name, drain=rollout.candidate)
        return rollout.to_dict()

    async def reload_champion(self, name: str) -> JSON:
        """Serve the registry's champion of ``name`` now (after ``readyml rollback``), once it
        passed infra validation as a deploy's candidate does.

        Raises:
            VersionRefused: The champion is vetoed or archived.
            InfraValidationFailed: It failed infra validation; the current version serves on.
        """
        started_s = time.monotonic()
        predictor = await asyncio.to_thread(self._validate, f"{name}@{CHAMPION}", self.spec)
        self._replace_stable(self.make_deployment(predictor))
        return {
            "model": name,
            "version": predictor.version,
            "state": "serving",
            "seconds": time.monotonic() - started_s,
        }

    async def replace(self, name: str, version: int, *, expected: Deployment) -> Deployment:
        """Validate ``name:version`` as a deploy does, then serve it in place of ``expected``.

        For changes the server makes on its own (the alias watcher): nothing is swapped
        while a rollout of ``name`` runs, nor when ``expected`` was replaced while the
        version was being validated.

        Raises:
            InfraValidationFailed: The version failed infra validation; it never serves.
            RolloutConflict: A rollout of ``name`` runs, or ``expected`` no longer serves.
        """
        self._check_unchanged(name, expected)
        predictor = await asyncio.to_thread(self._validate, f"{name}:{version}", self.spec)
        self._check_unchanged(name, expected)
        deployment = self.make_deployment(predictor)
        self._replace_stable(deployment)
        return deployment

    def check_idle(self, name: str) -> None:
        """Raise :class:`RolloutConflict` while a rollout of ``name`` runs or starts: only
        the rollout changes which version of ``name`` serves."""
        if name in self._starting:
            raise RolloutConflict(
                f"model: expected no rollout of {name!r} running, found one starting (its "
                "candidate is being validated)"
            )
        running = self.rollouts.get(name)
        if running is not None:
            raise RolloutConflict(
                f"model: expected no rollout of {name!r} running (promote or roll it back "
                f"first), found version {running.record.candidate_version} in "
                f"{running.record.state}"
            )

    def validated(self, ref: str) -> Predictor:
        """``ref`` loaded and infra-validated with the server's rollout settings (blocking).

        Raises:
            VersionRefused: The version is vetoed or archived.
            InfraValidationFailed: It failed infra validation; it never serves.
        """
        return self._validate(ref, self.spec)

    def _check_unchanged(self, name: str, expected: Deployment) -> None:
        if name in self.rollouts:
            raise RolloutConflict(f"model {name!r}: a rollout is running; it decides the version")
        if name not in self.table or self.table.get(name) is not expected:
            raise RolloutConflict(
                f"model {name!r}: expected version {expected.version} to be serving, found it "
                "replaced meanwhile"
            )

    def _active(self, name: str) -> Rollout:
        rollout = self.rollouts.get(name)
        if rollout is None:
            raise RolloutConflict(f"model: expected a running rollout of {name!r}, found none")
        return rollout

    def _finish(self, name: str, drain: Deployment | None = None) -> None:
        self.rollouts.pop(name, None)
        task = self._tasks.pop(name, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if drain is not None:
            self._later(drain.batcher.drain(DRAIN_TIMEOUT_S))

    def _replace_stable(self, deployment: Deployment) -> None:
        for old in self.table.put(deployment):
            self._later(old.batcher.drain(DRAIN_TIMEOUT_S))

    def _later(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks[f"drain-{id(task)}"] = task
        task.add_done_callback(lambda done: self._tasks.pop(f"drain-{id(done)}", None))

    # -- the controller loop --------------------------------------------------------------

    async def _drive(self, name: str) -> None:
        while name in self.rollouts:
            rollout = self.rollouts[name]
            await asyncio.sleep(rollout.spec.tick_s)
            if self.rollouts.get(name) is not rollout:
                return
            try:
                await self.step(rollout)
            except Exception:  # a bug in one tick must not stop the rollout silently
                print(
                    f"readyml: rollout of {name!r}: tick failed:\n{traceback.format_exc()}",
                    file=sys.stderr,
                )
                await asyncio.sleep(rollout.spec.tick_s)

    async def step(self, rollout: Rollout) -> None:
        """Judge the current step when it is due; advance, promote, roll back, or let an
        inconclusive step gather twice the requests (see :mod:`readyml.serve.canary`)."""
        spec = rollout.spec
        elapsed_s = time.monotonic() - rollout.step_started_s
        if not rollout.due(elapsed_s):
            return
        name = rollout.record.model
        # Judged on snapshots in a thread: the permutation test must not stall requests.
        candidate = rollout.candidate_stats.copy()
        requests = candidate.requests
        verdict = await asyncio.to_thread(judge, rollout.stable_stats.copy(), candidate, spec)
        if self.rollouts.get(name) is not rollout:  # promoted or rolled back meanwhile
            return
        where = (
            "shadow"
            if rollout.state is RolloutState.SHADOW
            else f"step {rollout.record.step_index + 1}/{len(spec.steps)} ({rollout.weight:g}%)"
        )
        if verdict.outcome is Outcome.FAIL:
            await self.rollback(
                name,
                reason=f"{where} failed: {verdict.reason}",
                numbers=verdict.numbers,
                on_data=True,
            )
            return
        if verdict.outcome is Outcome.INCONCLUSIVE:
            cap = request_cap(spec)
            if requests >= cap or rollout.timed_out(elapsed_s):
                # Undecided at the cap: conservatively, the stable version keeps the traffic.
                await self.rollback(
                    name,
                    reason=f"{where} inconclusive after {requests} requests "
                    f"({elapsed_s:.0f} s): {verdict.reason}",
                    numbers=verdict.numbers,
                    on_data=True,
                )
                return
            first = rollout.undecided is None
            rollout.undecided = verdict
            rollout.judge_at_requests = min(2 * requests, cap)
            if first:  # one record per step, not one per look
                until = f"{cap} requests"
                if spec.max_step_duration_s is not None:
                    until += f" or {max(spec.max_step_duration_s, rollout.least_s):g} s"
                await self._decide(
                    rollout,
                    "extend",
                    f"{where} inconclusive at {requests} requests: {verdict.reason}; judged "
                    f"again at {rollout.judge_at_requests} requests, rolled back if still "
                    f"undecided after {until}",
                    verdict.numbers,
                )
            return
        if rollout.state is RolloutState.SHADOW:
            rollout.record.state = transition(rollout.state, RolloutState.CANARY, name).value
            rollout.record.step_index = 0
        elif rollout.record.step_index + 1 < len(spec.steps):
            rollout.record.step_index += 1
        else:
            await self.promote(
                name, reason=f"{where} passed: {verdict.reason}", numbers=verdict.numbers
            )
            return
        rollout.new_step()
        await self._decide(rollout, "advance", f"{where} passed: {verdict.reason}", verdict.numbers)

    # -- records --------------------------------------------------------------------------

    async def _decide(
        self,
        rollout: Rollout,
        action: str,
        reason: str,
        numbers: JSON,
        *,
        passed: bool | None = None,
        evidence: Sequence[Evidence] = (),
    ) -> None:
        """Write a decision to the registry audit and (if given) evidence, then persist it
        with the stable window of an active rollout.

        The record, which the status route shows, is written last: whoever sees a decision
        there finds its audit row and evidence already written.
        """
        decision = Decision(
            at=_now(),
            action=action,
            state=rollout.record.state,
            weight=rollout.weight,
            reason=reason,
            numbers=numbers,
        )
        items = list(evidence)
        if passed is not None:
            details = {"check": "canary", **asdict(decision)}
            items.insert(0, self._evidence(rollout, "infra-6", passed, details))
        window = rollout.stable_stats.copy() if rollout.state in _ACTIVE else None
        try:
            await asyncio.to_thread(self._audit, rollout.record, decision, items)
        finally:  # the decision is kept even when the registry refused the audit
            rollout.record.decisions.append(decision)
            await asyncio.to_thread(self._persist, rollout.record, window)

    def _audit(self, record: RolloutRecord, decision: Decision, items: list[Evidence]) -> None:
        """Write a decision to the registry audit and its evidence (blocking)."""
        self.registry.set_alias(
            record.model,
            AUDIT_ALIAS,
            record.candidate_version,
            who=CONTROLLER,
            reason=f"{decision.action}: {decision.reason}",
        )
        if items:  # the evidence links to the rollout's decisions so far, this one included
            key = self._keep_log(record, decision)
            items = [dataclasses.replace(item, artifact=key) for item in items]
        for item in items:
            self.registry.add_evidence(item)

    def _keep_log(self, record: RolloutRecord, decision: Decision) -> str | None:
        """Store the rollout's decision log, this decision included, and return its key; an
        artifact store that refuses it is logged, as the decision and its evidence stand."""
        log = {**record.to_dict(), "decisions": [*map(asdict, record.decisions), asdict(decision)]}
        what = f"rollout of {record.model}"
        return keep_json_report(self.registry, rollout_log_key(record), log, what=what)

    def _evidence(self, rollout: Rollout, test_id: str, passed: bool, details: JSON) -> Evidence:
        return Evidence(
            test_id=test_id,
            passed=passed,
            automated=True,
            project=self.project,
            details={"stable_version": rollout.record.stable_version, **details},
            model_name=rollout.record.model,
            version=rollout.record.candidate_version,
        )

    def _persist(self, record: RolloutRecord, window: ArmStats | None = None) -> None:
        """Write the stable ``window`` (or remove it when ``None``), then the record."""
        path = self.folder / WINDOWS / f"{record.model}.json"
        if window is None:
            path.unlink(missing_ok=True)
        else:
            _write_json(path, window.to_dict())
        _write_json(self.folder / f"{record.model}.json", record.to_dict(), indent=2)

    def _read_window(self, name: str) -> ArmStats:
        """The stable window persisted with the last decision of ``name``'s rollout (empty
        when there is none or it cannot be read: a step then gathers stable data anew)."""
        path = self.folder / WINDOWS / f"{name}.json"
        try:
            return ArmStats.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            return ArmStats()
        except (OSError, ValueError, TypeError) as exc:  # TypeError: a document of the wrong shape
            print(
                f"readyml: rollout of {name!r}: stable window not restored: {exc}", file=sys.stderr
            )
            return ArmStats()


def _write_json(path: Path, document: JSON, indent: int | None = None) -> None:
    """Write ``document`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".json.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=indent, default=str))
    os.replace(temporary, path)


def first_step_error(steps: Sequence[float]) -> str:
    """Why a canary cannot start at 100 %: nothing would be left to compare the candidate with.

    >>> first_step_error([100.0]).endswith("found [100.0]")
    True
    """
    return (
        "rollout.steps: expected a first canary step under 100 (a canary is judged against "
        "the stable version's traffic, and at 100 % there is none; --mode shadow mirrors "
        f"traffic first), found {list(steps)}"
    )


def override_error(exc: ValidationError) -> str:
    """A deploy's bad rollout override as ``rollout.KEY: expected WHAT, found WHAT``.

    >>> try:
    ...     RolloutSpec.model_validate({"min_requests": 0})
    ... except ValidationError as exc:
    ...     override_error(exc)
    'rollout.min_requests: expected greater than or equal to 1, found 0'
    """
    error = exc.errors()[0]
    if error["type"] == "extra_forbidden":
        known = ", ".join(RolloutSpec.model_fields)
        key = ".".join(str(part) for part in error["loc"])
        return f"rollout.{key}: expected a rollout setting ({known}), found unknown key {key!r}"
    key, _, rest = f"rollout.{describe_validation_error(exc)}".partition(": ")
    if rest.startswith("expected "):
        return f"{key}: {rest}"
    # pydantic's own wording: "input should be WHAT, found VALUE".
    wording, separator, found = rest.rpartition(", found ")
    if not separator:
        return f"{key}: expected {rest}"
    if error["type"] == "too_short":
        wording = f"at least {error.get('ctx', {}).get('min_length')} item(s)"
    return f"{key}: expected {wording.removeprefix('input should be ')}, found {found}"


def rollout_log_key(record: RolloutRecord) -> str:
    """Where a rollout's decision log is kept in the artifact store (its evidence links to it).

    >>> record = RolloutRecord("fraud", 1, 2, "promoted", 0, {}, "2026-12-07T18:05:01.250+00:00")
    >>> rollout_log_key(record)
    'rollouts/fraud/20261207T180501250000Z-v2.json'
    """
    started = datetime.fromisoformat(record.started_at)
    return f"rollouts/{key_part(record.model)}/{stamp(started)}-v{record.candidate_version}.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def rollout_folder(workspace: Path) -> Path:
    """Where a workspace's rollout state is persisted."""
    return workspace / "rollouts"
