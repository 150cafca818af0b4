"""Alias watching: a running server follows the registry's aliases, without a restart.

Several servers on one registry (a shared PostgreSQL metadata store and S3 artifact store)
converge on the version an alias names. Every ``serving.alias_poll_s`` seconds each server
reads, for every model it serves by alias (``NAME@champion``, the default), the version the
alias points at: one indexed lookup per model, in a worker thread. When the alias has moved,
the new version is loaded, infra-validated and swapped in through the rollout manager
(:meth:`~readyml.serve.rollout.RolloutManager.replace`), the path a direct deploy takes:
in-flight requests finish on the old version, new ones go to the new one, none fails.

The policy, case by case:

* Only a *move* is acted on: the alias is compared with the version the server last
  followed it to, not with the version it serves, so a direct deploy of another version is
  not undone until the alias moves again.
* A model served by version (``NAME:3``, at start or through the repository extension's
  ``load``) is never moved; loading it by alias again makes the server follow it.
* While a rollout of the model runs, the rollout decides its version and the model is
  skipped; a promotion moves the alias to the version already served.
* A version that fails infra validation never serves (evidence ``infra-6``, as for a
  deploy) and is not tried again until the alias moves again.
* A registry or load error is logged and counted; the server keeps serving and tries again
  on the next tick, waiting twice as long after each failed tick (at most
  :data:`MAX_BACKOFF_S`, or the poll interval when that is longer).

Each acted-on move is one JSON line on standard error (``event: alias_reload``) and counts
in ``readyml_alias_reloads_total{model,outcome}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

from readyml.registry import Registry
from readyml.serve.infra_validation import InfraValidationFailed
from readyml.serve.metrics import ServerMetrics
from readyml.serve.rollout import RolloutConflict, RolloutManager
from readyml.types import ModelRef

# Longest wait between ticks after repeated failures (s), unless the poll interval is longer.
MAX_BACKOFF_S = 30.0


class ReloadOutcome(enum.Enum):
    """What one tick did for one followed model."""

    UNCHANGED = "unchanged"  # the alias is where the server last followed it
    SKIPPED = "skipped"  # a rollout of the model runs
    SWAPPED = "swapped"  # the new version was validated and now serves
    REFUSED = "refused"  # the new version failed infra validation; the old one serves
    CONFLICT = "conflict"  # the model was replaced while the version loaded; next tick
    ERROR = "error"  # the registry or the load failed; next tick


# Outcomes that are logged and counted (the others happen on every quiet tick).
_REPORTED = frozenset(
    {ReloadOutcome.SWAPPED, ReloadOutcome.REFUSED, ReloadOutcome.CONFLICT, ReloadOutcome.ERROR}
)


@dataclass
class Followed:
    """A model served by alias: the alias, and the version the server last followed it to."""

    alias: str
    version: int


def backoff_s(poll_s: float, failed_ticks: int) -> float:
    """Seconds to wait before the next tick after ``failed_ticks`` failed ticks in a row.

    >>> [backoff_s(5.0, failed) for failed in range(5)]
    [5.0, 10.0, 20.0, 30.0, 30.0]
    """
    return min(poll_s * 2.0 ** min(failed_ticks, 32), max(poll_s, MAX_BACKOFF_S))


class AliasWatcher:
    """Follows the aliases of the models a server serves by alias.

    Args:
        registry: Where the aliases are read.
        rollouts: The server's rollout manager: its table, its running rollouts, and the
            validate-and-swap path new versions take.
        metrics: Where acted-on moves are counted.
        poll_s: Seconds between ticks.
        stream: Where the JSON lines go (standard error by default).
    """

    def __init__(
        self,
        *,
        registry: Registry,
        rollouts: RolloutManager,
        metrics: ServerMetrics,
        poll_s: float = 5.0,
        stream: TextIO | None = None,
    ) -> None:
        self.registry = registry
        self.rollouts = rollouts
        self.metrics = metrics
        self.poll_s = poll_s
        self.stream = stream
        self.followed: dict[str, Followed] = {}
        self._task: asyncio.Task[None] | None = None

    # -- what is followed -----------------------------------------------------------------

    def follow(self, ref: str, version: int) -> None:
        """Note that ``ref``'s model now serves ``version``, loaded by ``ref``.

        A reference by alias is followed from ``version`` on; any other reference (a version,
        or the newest) stops the model from being followed.
        """
        parsed = ModelRef.parse(ref)
        if parsed.alias is None:
            self.followed.pop(parsed.name, None)
        else:
            self.followed[parsed.name] = Followed(alias=parsed.alias, version=version)

    def forget(self, name: str) -> None:
        """Stop following ``name`` (it was unloaded)."""
        self.followed.pop(name, None)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start ticking (called by the lifespan)."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop ticking; a version still loading is dropped, never swapped in."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failed_ticks = 0
        while True:
            await asyncio.sleep(backoff_s(self.poll_s, failed_ticks))
            try:
                outcomes = await self.poll()
            except Exception:  # a bug in one tick must not stop the watching silently
                print(
                    f"readyml: alias watch: tick failed:\n{traceback.format_exc()}",
                    file=sys.stderr,
                )
                failed_ticks += 1
                continue
            failed = ReloadOutcome.ERROR in outcomes.values()
            failed_ticks = failed_ticks + 1 if failed else 0

    # -- one tick -------------------------------------------------------------------------

    async def poll(self) -> dict[str, ReloadOutcome]:
        """Check every followed alias once; swap in the versions of those that moved."""
        outcomes: dict[str, ReloadOutcome] = {}
        for name in list(self.followed):
            if name in self.rollouts.rollouts:
                outcomes[name] = ReloadOutcome.SKIPPED
                continue
            outcomes[name] = await self._check(name)
        return outcomes

    async def _check(self, name: str) -> ReloadOutcome:
        followed = self.followed.get(name)
        if followed is None:
            return ReloadOutcome.UNCHANGED
        try:
            current = await asyncio.to_thread(
                self.registry.get, ModelRef(name, alias=followed.alias)
            )
        except Exception as exc:  # the store may be unreachable: keep serving, try again
            return self._report(name, followed, ReloadOutcome.ERROR, error=_describe(exc))
        target = current.version
        if self.followed.get(name) is not followed or target == followed.version:
            return ReloadOutcome.UNCHANGED
        table = self.rollouts.table
        if name not in table:
            return ReloadOutcome.UNCHANGED
        serving = table.get(name)
        if serving.version == target:  # e.g. a rollout promoted the version it serves
            followed.version = target
            return ReloadOutcome.UNCHANGED
        started_s = time.monotonic()
        try:
            await self.rollouts.replace(name, target, expected=serving)
        except InfraValidationFailed as exc:
            outcome = self._report(
                name, followed, ReloadOutcome.REFUSED, to_version=target, error=str(exc)
            )
            followed.version = target  # not tried again until the alias moves again
            return outcome
        except RolloutConflict as exc:
            return self._report(
                name, followed, ReloadOutcome.CONFLICT, to_version=target, error=str(exc)
            )
        except Exception as exc:  # a load that failed for the store's sake: try again
            return self._report(
                name, followed, ReloadOutcome.ERROR, to_version=target, error=_describe(exc)
            )
        outcome = self._report(
            name,
            followed,
            ReloadOutcome.SWAPPED,
            to_version=target,
            seconds=time.monotonic() - started_s,
        )
        followed.version = target
        return outcome

    def _report(
        self,
        name: str,
        followed: Followed,
        outcome: ReloadOutcome,
        *,
        to_version: int | None = None,
        seconds: float | None = None,
        error: str | None = None,
    ) -> ReloadOutcome:
        """Count an acted-on move and write its JSON line."""
        assert outcome in _REPORTED
        self.metrics.alias_reloads.labels(name, outcome.value).inc()
        entry: dict[str, Any] = {
            "ts": round(time.time(), 6),
            "event": "alias_reload",
            "model": name,
            "alias": followed.alias,
            "outcome": outcome.value,
            "from_version": followed.version,
        }
        if to_version is not None:
            entry["to_version"] = to_version
        if seconds is not None:
            entry["seconds"] = round(seconds, 4)
        if error is not None:
            entry["error"] = error
        stream = self.stream if self.stream is not None else sys.stderr
        with contextlib.suppress(OSError, ValueError):
            stream.write(orjson.dumps(entry).decode() + "\n")
            stream.flush()
        return outcome


def _describe(exc: BaseException) -> str:
    """One line naming an exception: its class and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
