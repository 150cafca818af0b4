"""Keeping the worker processes of one server in step (``serving.workers`` > 1).

uvicorn's supervisor (:mod:`readyml.serve.supervisor`) runs N independent processes on one
listening socket, and each answers the connections it accepts; a repository call reaches
one of them. So that the others follow, the worker that made a change (a load, an unload,
a rollback's reload of the champion) records it in a desired-state file the workers of
this server share, ``models.json`` in the folder the supervisor created for this run (a
fresh one each run, so nothing of an earlier run is ever applied). Every worker checks the
file's identity every :data:`SYNC_POLL_S` seconds (one ``stat``) and makes the changes it
has not made yet, through the same path as the repository call, each pinned to the version
the first worker loaded: a load of ``NAME@champion`` loads the same version everywhere and
every worker then follows the alias. A worker that starts later (one replaced after a
crash) makes every change recorded so far.

The file holds the latest change of each model's current version, and of each version
pinned beside it, with a sequence number, written under an exclusive ``flock`` (read, add,
write a temporary file, rename), so concurrent calls on two workers are ordered and the last
one wins everywhere. A change of the current version drops the pinned entries it supersedes
(an unload of every version, or the load of a pinned version as current), and a worker
catching up makes the current versions' changes before the pinned ones. Within a worker,
changes are made one at a time under :attr:`WorkerGroup.lock`, after catching up with the
others', so that a change made here is ordered after every change this worker has seen.

Each worker acknowledges what it has made in ``acks/ID.json`` (its pid, the seq made of
each model, the changes that failed), rewritten when that changes. The worker that made a
change answers its caller only once every live worker acknowledges it (:meth:`follow`), so
that after a 200 every connection gets the new state; a worker that fails the change, or
does not follow in time, turns the answer into a 503 naming it (the change stays recorded
and that worker keeps trying); a failure is answered once it has lasted a few polls.

Rollouts stay with one worker: each process would run its own controller, with its own
windows and decisions. A deploy or promote on a server with several workers is refused
(:class:`OneWorkerOnly`, 409).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import os
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TextIO

import orjson

from readyml.errors import ServeError
from readyml.serve.metrics import ServerMetrics

# How often each worker checks for the others' model changes and publishes its metrics (s).
SYNC_POLL_S = 0.5
# The desired state of the models, and the lock its writers take, in the shared folder.
STATE_FILE = "models.json"
LOCK_FILE = "models.lock"
# Where prometheus_client's multiprocess files go in the shared folder.
METRICS_FOLDER = "metrics"
# Where each worker acknowledges the changes it has made, in the shared folder.
ACKS_FOLDER = "acks"
# How long the worker that made a change waits for the others to make it (s): a poll and
# a model load, on a machine that may be busy.
FOLLOW_TIMEOUT_S = 30.0
# How often it reads their acknowledgements meanwhile (s).
FOLLOW_POLL_S = 0.05
# How long a stopping worker tries to share its metrics a last time (s).
FINAL_SHARE_TIMEOUT_S = 2.0
# How long every lagging worker must keep failing before the wait ends (s): a few polls,
# which a passing failure (a store that did not answer once) survives.
FAILURE_GRACE_S = 2.0


class OneWorkerOnly(ServeError):
    """A rollout was asked of a server that runs several worker processes."""

    status_code = 409


class WorkersLagging(ServeError):
    """A change made on one worker was not made by every other in time, or failed there."""

    status_code = 503


@dataclasses.dataclass(frozen=True)
class ModelChange:
    """A change of the models served that every worker makes.

    Attributes:
        name: The model.
        action: ``load`` (``version``, followed by ``ref``) or ``unload``.
        ref: The reference as asked (``NAME@ALIAS`` or ``NAME:V``): an alias is followed.
        version: The version the worker that answered loaded; for an unload, the pinned
            version to stop serving (0: every version).
        pinned: A load of a version served alongside the current one.
        seq: Its place in the order of this server's changes (set when published).
    """

    name: str
    action: str
    ref: str = ""
    version: int = 0
    pinned: bool = False
    seq: int = 0

    @property
    def key(self) -> str:
        """What the change sets: the model's current version (``NAME``), or one pinned
        version (``NAME:V``); the desired state keeps the latest change of each."""
        if self.pinned or (self.action == "unload" and self.version):
            return f"{self.name}:{self.version}"
        return self.name


Apply = Callable[[ModelChange], Awaitable[None]]


def record_change(state: dict[str, Any], change: ModelChange) -> ModelChange:
    """Add ``change`` to ``state`` (in place) with the next seq; return it as recorded.

    The state keeps the latest change of each key; a change of a model's current version
    drops the pinned entries it supersedes (every one on an unload of the model, the same
    version's on a load of it as current).
    """
    seq = int(state["seq"]) + 1
    recorded = dataclasses.replace(change, seq=seq)
    state["seq"] = seq
    models: dict[str, Any] = state["models"]
    if change.key == change.name:
        superseded = (
            [key for key in models if key.startswith(f"{change.name}:")]
            if change.action == "unload"
            else [f"{change.name}:{change.version}"]
        )
        for key in superseded:
            models.pop(key, None)
    models[change.key] = dataclasses.asdict(recorded)
    return recorded


def empty_state() -> dict[str, Any]:
    """The desired state before any change: ``{"seq": 0, "models": {}}``."""
    return {"seq": 0, "models": {}}


class SyncStore(Protocol):
    """Where the workers of one server keep the desired state and their acknowledgements."""

    async def state(self, seen: object) -> tuple[object, dict[str, Any]] | None:
        """A token and the desired state, or ``None`` when nothing was recorded or the
        state is still the one ``seen`` named."""

    async def record(self, change: ModelChange) -> ModelChange:
        """Add ``change`` with the next seq, atomically; return it as recorded."""

    async def acknowledge(self, worker_id: str, ack: dict[str, Any]) -> None:
        """Keep ``ack`` (what the worker has made) as the worker's latest."""

    async def beat(self, worker_id: str) -> None:
        """Say that the worker is alive (where liveness is not seen otherwise)."""

    async def acknowledgements(self) -> dict[str, dict[str, Any]]:
        """The latest acknowledgement of every live worker, by id."""


class FolderStore:
    """A :class:`SyncStore` in a folder the workers of one machine share.

    The desired state is ``models.json``, changed under an exclusive ``flock`` (read, add,
    write a temporary file, rename); each worker's acknowledgement is ``acks/ID.json``, with
    its pid, by which it is known to be alive.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def state(self, seen: object) -> tuple[object, dict[str, Any]] | None:
        path = self.folder / STATE_FILE
        try:
            status = path.stat()
        except FileNotFoundError:
            return None
        token = (status.st_ino, status.st_mtime_ns)  # a rename gives a new inode every write
        if token == seen:
            return None
        return token, _read(path)

    async def record(self, change: ModelChange) -> ModelChange:
        path = self.folder / STATE_FILE
        with (self.folder / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # held for one small read and write
            state = _read(path) if path.exists() else empty_state()
            recorded = record_change(state, change)
            temporary = path.with_suffix(".tmp")
            temporary.write_bytes(orjson.dumps(state))
            os.replace(temporary, path)
        return recorded

    async def acknowledge(self, worker_id: str, ack: dict[str, Any]) -> None:
        folder = self.folder / ACKS_FOLDER
        folder.mkdir(exist_ok=True)
        temporary = folder / f"{worker_id}.tmp"
        temporary.write_bytes(orjson.dumps({**ack, "pid": os.getpid()}))
        os.replace(temporary, folder / f"{worker_id}.json")

    async def beat(self, worker_id: str) -> None:
        """Nothing: a worker is alive while its pid runs."""

    async def acknowledgements(self) -> dict[str, dict[str, Any]]:
        acks: dict[str, dict[str, Any]] = {}
        for path in sorted((self.folder / ACKS_FOLDER).glob("*.json")):
            try:
                ack = json.loads(path.read_bytes())
            except (OSError, ValueError):  # replaced while read: nothing made, as far as known
                acks[path.stem] = {"applied": {}, "failed": {}}
                continue
            if _alive(int(ack["pid"])):  # one that ended is not waited for
                acks[path.stem] = ack
        return acks


class WorkerGroup:
    """One worker's link to the other workers of its server: model changes and metrics.

    Args:
        folder: The folder the supervisor created for this server run (a
            :class:`FolderStore` in it), unless ``store`` is given.
        store: Where the desired state and the acknowledgements are kept.
        workers: How many worker processes the server runs.
        metrics: This worker's metrics, published every tick for the others' scrapes.
        poll_s: Seconds between checks of the desired-state file.
        stream: Where failures are written as JSON lines (standard error by default).
        worker_id: This worker's name among the acknowledgements (its pid by default).
        noun: What one of the processes is called in messages (``replica`` on Ray).
        one: The flag that restarts the server with one of them.
    """

    def __init__(
        self,
        *,
        folder: Path | None = None,
        store: SyncStore | None = None,
        workers: int,
        metrics: ServerMetrics | None = None,
        poll_s: float = SYNC_POLL_S,
        stream: TextIO | None = None,
        worker_id: str | None = None,
        noun: str = "worker process",
        one: str = "--workers 1",
    ) -> None:
        if store is None:
            if folder is None:
                raise ValueError("WorkerGroup: expected a folder or a store, found neither")
            store = FolderStore(folder)
        self.store = store
        self.noun = noun
        self.one = one
        self.workers = workers
        self.metrics = metrics
        self.poll_s = poll_s
        self.stream = stream
        self.worker_id = worker_id if worker_id is not None else str(os.getpid())
        # Held while this worker changes its models (a call, or catching up).
        self.lock = asyncio.Lock()
        # The seq of the last change made here, by key (see ModelChange.key).
        self.applied: dict[str, int] = {}
        # The last change of each key that failed here: (seq, error).
        self.failures: dict[str, tuple[int, str]] = {}
        self._acknowledged: dict[str, Any] | None = None
        self._apply: Apply | None = None
        self._seen: object = None  # the store's token of the state last caught up with
        self._failed: set[tuple[str, int]] = set()  # changes whose failure was reported
        self._task: asyncio.Task[None] | None = None
        self._tick_failure: str | None = None  # the failure last reported, while it lasts

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, apply: Apply) -> None:
        """Start ticking (called by the lifespan); ``apply`` makes another worker's change."""
        self._apply = apply
        await self._acknowledge()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop ticking; a change being made is dropped."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def share_last(self) -> None:
        """Share the metrics a last time (after the drain), so that the requests answered
        since the last tick stay counted; a failure is reported and stopping goes on."""
        if self.metrics is None:
            return
        try:
            async with asyncio.timeout(FINAL_SHARE_TIMEOUT_S):
                await self.metrics.share()
        except Exception as exc:
            print(f"readyml: workers: last metrics not shared ({exc!r})", file=sys.stderr)

    async def _run(self) -> None:
        while True:
            try:
                # Before catching up, which may load a model for a while: still alive.
                await self.store.beat(self.worker_id)
                async with self.lock:
                    await self.catch_up()
                if self.metrics is not None:
                    await self.metrics.share()
            except Exception as exc:  # a failing tick must not stop the next ones silently
                failure = f"{type(exc).__name__}: {exc}"
                if failure != self._tick_failure:  # once, not every poll, while it lasts
                    self._tick_failure = failure
                    print(
                        f"readyml: workers: tick failed:\n{traceback.format_exc()}",
                        file=sys.stderr,
                    )
            else:
                self._tick_failure = None
            await asyncio.sleep(self.poll_s)

    # -- changes --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def changing(self) -> AsyncIterator[None]:
        """Hold :attr:`lock`, caught up with the other workers' changes, to make one here."""
        async with self.lock:
            await self.catch_up()
            yield

    async def catch_up(self) -> None:
        """Make the changes other workers recorded and this one has not made (hold the lock).

        A change that fails is reported once and tried again on the next check.
        """
        if self._apply is None:
            return
        found = await self.store.state(self._seen)
        if found is None:
            return
        seen, state = found
        pending = [
            change
            for change in (ModelChange(**entry) for entry in state["models"].values())
            if change.seq > self.applied.get(change.key, 0)
        ]
        failed = False
        # Current versions first: a pinned version is served beside one.
        for change in sorted(pending, key=lambda change: (change.key != change.name, change.seq)):
            try:
                await self._apply(change)
            except Exception as exc:  # e.g. the store is unreachable: keep serving, retry
                failed = True
                self.failures[change.key] = (change.seq, f"{type(exc).__name__}: {exc}")
                self._report(change, exc)
                continue
            self.applied[change.key] = change.seq
            self.failures.pop(change.key, None)
        if not failed:
            self._seen = seen
        await self._made()

    async def publish(self, change: ModelChange) -> ModelChange:
        """Record ``change``, made here, for the other workers (hold the lock)."""
        recorded = await self.store.record(change)
        self.applied[change.key] = recorded.seq
        self.failures.pop(change.key, None)
        await self._made()
        return recorded

    async def _made(self) -> None:
        """After changes: this worker's metrics show what it serves now, then it acknowledges
        them (so that once every worker has, a scrape anywhere shows the change)."""
        if self.metrics is not None:
            await self.metrics.share()
        await self._acknowledge()

    async def follow(self, change: ModelChange, timeout_s: float = FOLLOW_TIMEOUT_S) -> None:
        """Wait until every other live worker has made ``change`` (published here).

        Raises:
            WorkersLagging: A worker failed the change, or did not make it within
                ``timeout_s``; it keeps trying.
        """
        started = time.monotonic()
        failing_since: float | None = None
        while True:
            lagging, total = await self._lagging(change)
            if not lagging:
                return
            now = time.monotonic()
            if all(why.startswith("failed") for why in lagging.values()):
                # A failure is tried again at each poll: one that lasts is answered.
                failing_since = failing_since if failing_since is not None else now
                if now - failing_since >= FAILURE_GRACE_S:
                    break
            else:
                failing_since = None
            if now - started >= timeout_s:
                break
            await asyncio.sleep(FOLLOW_POLL_S)
        if change.action == "unload":
            what = f"stop serving {change.name!r}"
            what += f" version {change.version}" if change.version else ""
        else:
            what = f"serve {change.name!r} version {change.version}"
            what += " pinned" if change.pinned else ""
        found = "; ".join(f"{worker}: {why}" for worker, why in sorted(lagging.items()))
        raise WorkersLagging(
            f"workers: expected all {total} to {what} within {timeout_s:g} s, found "
            f"{total - len(lagging)} that do ({found}); the change stays recorded "
            "and the others keep trying"
        )

    async def _lagging(self, change: ModelChange) -> tuple[dict[str, str], int]:
        """The workers that have not made ``change`` (by id), each with why, and how many
        there are (the live ones, at least :attr:`workers`)."""
        lagging: dict[str, str] = {}
        label = self.label
        acks = await self.store.acknowledgements()
        acks.pop(self.worker_id, None)
        for worker, ack in acks.items():
            if int(ack["applied"].get(change.key, 0)) >= change.seq:
                continue
            failure = ack["failed"].get(change.key)
            if failure is not None and int(failure["seq"]) >= change.seq:
                lagging[f"{label} {worker}"] = f"failed ({failure['error']})"
            else:
                lagging[f"{label} {worker}"] = "not made yet"
        live = len(acks) + 1  # and this one
        for missing in range(self.workers - live):
            lagging[f"{label} #{live + missing + 1}"] = "not started yet"
        return lagging, max(live, self.workers)

    async def _acknowledge(self) -> None:
        """Keep what this worker has made for the others' :meth:`follow` (when it changed)."""
        ack = {
            "applied": dict(self.applied),
            "failed": {
                key: {"seq": seq, "error": error} for key, (seq, error) in self.failures.items()
            },
        }
        if ack == self._acknowledged:
            return
        await self.store.acknowledge(self.worker_id, ack)
        self._acknowledged = ack

    @property
    def label(self) -> str:
        """One of the processes in a short name: ``worker``, ``replica``."""
        return self.noun.split()[0]

    def refuse_rollout(self, action: str) -> OneWorkerOnly:
        """The 409 of a rollout call (deploy, promote) on this server."""
        return OneWorkerOnly(
            f"{action}: expected a server with one {self.noun}, found {self.workers} (each "
            f"would run its own rollout); restart it with {self.one} to roll out, or load a "
            f"version on every {self.noun} with POST /v2/repository/models/{{name}}/load"
        )

    def _report(self, change: ModelChange, exc: BaseException) -> None:
        if (change.name, change.seq) in self._failed:
            return
        self._failed.add((change.name, change.seq))
        entry = {
            "ts": round(time.time(), 6),
            "event": "worker_sync",
            "pid": os.getpid(),
            "model": change.name,
            "action": change.action,
            "version": change.version,
            "outcome": "error",
            "error": f"{type(exc).__name__}: {exc}",
        }
        stream = self.stream if self.stream is not None else sys.stderr
        with contextlib.suppress(OSError, ValueError):
            stream.write(orjson.dumps(entry).decode() + "\n")
            stream.flush()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _read(path: Path) -> dict[str, Any]:
    """The desired state: ``{"seq": last seq, "models": {name: change as a dict}}``."""
    state: dict[str, Any] = json.loads(path.read_bytes())
    return state
