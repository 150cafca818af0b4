"""Is the model spec reviewed and checked in? The git state behind a run (model-1).

The spec and code fingerprints are tied to the commit that holds them when the project is a
git repository; a spec file that is untracked or has uncommitted changes, or a dirty tree,
is recorded as such. Without git (or outside a repository) the evidence says so.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Seconds a git command may take before the review gives up on it.
GIT_TIMEOUT_S = 10.0


def _git(root: Path, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(
            [git, "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    # Trailing whitespace only: porcelain status lines start with a meaningful space.
    return done.stdout.rstrip() if done.returncode == 0 else None


def review_state(root: Path, files: Sequence[Path], fingerprints: dict[str, Any]) -> dict[str, Any]:
    """Git commit, dirty flags and the fingerprints of the spec and code.

    Args:
        root: The project directory.
        files: The spec and code files whose state matters (readyml.yaml, schema, modules).
        fingerprints: The run's config and code fingerprints.
    """
    base: dict[str, Any] = {
        "config_fingerprint": fingerprints.get("config"),
        "code_fingerprint": fingerprints.get("code"),
    }
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None:
        return {**base, "git": False, "passed": False, "reason": "not a git repository"}
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=normal") or ""
    relative = [
        str(Path(f).resolve().relative_to(Path(top).resolve()))
        for f in files
        if Path(f).exists() and Path(f).resolve().is_relative_to(Path(top).resolve())
    ]
    file_status = (
        _git(Path(top), "status", "--porcelain", "--ignored", "--", *relative) if relative else ""
    )
    untracked_or_changed = sorted(
        {line[3:] for line in (file_status or "").splitlines() if line.strip()}
    )
    passed = commit is not None and not untracked_or_changed
    reason = (
        "spec and code committed"
        if passed
        else "no commit yet"
        if commit is None
        else "not committed: " + ", ".join(untracked_or_changed)
    )
    return {
        **base,
        "git": True,
        "commit": commit,
        "tree_dirty": bool(status.strip()),
        "uncommitted": untracked_or_changed,
        "passed": passed,
        "reason": reason,
    }
