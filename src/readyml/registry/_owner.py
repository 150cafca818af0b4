"""Which process owns a run, and whether that process is still alive.

A run records the process that started it: host name, pid and start time. A process killed
with SIGKILL, or a machine that lost power, cannot mark its run failed, so the next process
that starts or lists runs on the same host checks the owner. The pid alone is not enough,
since the kernel hands pids out again: the start time (field 22 of ``/proc/PID/stat``, in
clock ticks since boot) must match too, and a zombie counts as ended. Where ``/proc`` is
missing (macOS), only the pid is checked, with signal 0. Whatever cannot be proven ended
(another user's process hidden by ``hidepid``, a platform without signal 0) is taken to
be alive: a live run must never be marked failed. Runs of other hosts are never judged.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from readyml.registry.records import RunOwner

_PROC = Path("/proc")
# Index of the start time (field 22 of /proc/PID/stat) among the fields after "(comm)",
# which begin at field 3 (the state).
_START_FIELD = 22 - 3
# States of a process that has ended but was not reaped yet (zombie, dead).
_ENDED_STATES = frozenset({"Z", "X"})


def current_owner() -> RunOwner:
    """The owner to record for a run started by this process."""
    return process_owner(os.getpid())


def process_owner(pid: int) -> RunOwner:
    """The owner record of process ``pid`` of this host, read while it runs."""
    stat = _proc_stat(pid)
    return RunOwner(host=this_host(), pid=pid, start_ticks=stat[1] if stat else None)


def this_host() -> str:
    """The host name that owners record."""
    return socket.gethostname()


def owner_alive(owner: RunOwner) -> bool:
    """Whether ``owner``, a process of this host, may still be running.

    ``False`` only when the process is proven gone: no such pid, a zombie, or a pid now
    held by a process that started at another time.
    """
    if owner.start_ticks is not None:
        stat = _proc_stat(owner.pid)
        if stat is not None:
            state, start_ticks = stat
            return start_ticks == owner.start_ticks and state not in _ENDED_STATES
    return _pid_alive(owner.pid)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """The state and start time (clock ticks since boot) of ``pid``, or ``None`` when
    ``/proc`` does not show it (no such process, no ``/proc``, hidden by ``hidepid``)."""
    if pid <= 0:
        return None
    try:
        text = (_PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
        # The command name, in parentheses, may itself hold spaces and parentheses.
        fields = text.rpartition(")")[2].split()
        return fields[0], int(fields[_START_FIELD])
    except (OSError, IndexError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    if os.name != "posix" or pid <= 0:
        return True  # os.kill(pid, 0) would terminate the process on Windows; pid 0 is a group
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # PermissionError: alive, another user's
    return True
