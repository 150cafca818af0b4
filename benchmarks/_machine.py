"""Machine information recorded with every benchmark result."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo when available."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def stat_cpu_seconds(stat: str) -> float:
    """User + system CPU seconds from the text of a ``/proc/PID[/task/TID]/stat`` file."""
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_gib() -> float:
    """Total memory in GiB."""
    pages = os.sysconf("SC_PHYS_PAGES")
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**30, 1)


def git_commit() -> str:
    """The commit being measured (with '+dirty' when the tree has changes)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def machine_info() -> str:
    """One markdown line describing where and when a benchmark ran."""
    # Imported here: importing readyml takes seconds, which the CPU-time helpers above must
    # not cost a benchmark that reads them while it measures.
    from readyml.train.fingerprint import package_versions

    versions = package_versions(["numpy", "pandas", "scikit-learn", "pyarrow"])
    packages = ", ".join(f"{k} {v}" for k, v in versions.items())
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {cpu_model()} · {os.cpu_count()} cores · "
        f"{memory_gib()} GiB · Python {platform.python_version()} · {packages} · "
        f"commit {git_commit()}"
    )
