"""A registration killed with SIGKILL at any moment leaves no partial version visible."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

import readyml.registry
from readyml.registry import ArtifactStore, MetadataStore, Registry

CHILD = Path(__file__).with_name("_crash_child.py")
SRC = Path(readyml.registry.__file__).resolve().parents[2]
# Files per version, and bytes per file (one is larger).
N_FILES = 24
FILE_BYTES = 16 * 1024
# Seconds to wait for a line from the child before giving up.
LINE_TIMEOUT_S = 60.0
# Delays after the child is ready before the kill, in seconds: varied, fixed for repeatability.
KILL_DELAYS_S = (0.0, 0.03, 0.1, 0.25)


def _spawn(store_url: str, artifacts_url: str, files_dir: Path, mode: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, str(CHILD), store_url, artifacts_url, str(files_dir), mode],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for(process: subprocess.Popen[str], expected: str) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + LINE_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        if ready:
            line = process.stdout.readline()
            if not line:
                pytest.fail(f"child exited (code {process.wait()}) before printing {expected!r}")
            if line.strip() == expected:
                return
    pytest.fail(f"child did not print {expected!r} within {LINE_TIMEOUT_S} s")


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.stdout is not None
    process.stdout.close()
    assert process.returncode == -signal.SIGKILL


def _assert_every_visible_version_is_complete(registry: Registry, dest: Path) -> int:
    versions = registry.list_versions("crashy")
    for version in versions:
        assert len(version.artifacts) == N_FILES, f"partial version {version.version} visible"
        registry.download(version, dest / str(version.version))
    return len(versions)


@pytest.mark.slow
def test_sigkill_during_register_leaves_no_partial_version(store_url: str, tmp_path: Path) -> None:
    files_dir = tmp_path / "files"
    files_dir.mkdir()
    for i in range(N_FILES):
        size = FILE_BYTES * (16 if i == 0 else 1)
        (files_dir / f"part-{i:02d}.bin").write_bytes(os.urandom(size))
    artifacts_url = str(tmp_path / "artifacts")
    store = MetadataStore(store_url).open()
    registry = Registry(store, ArtifactStore(artifacts_url))

    for mode in ("after-upload", "before-commit"):
        child = _spawn(store_url, artifacts_url, files_dir, mode)
        _wait_for(child, "paused")
        _kill(child)
    # The two paused children never committed: nothing is visible, only orphan blobs.
    assert registry.list_models() == [] or registry.list_versions("crashy") == []
    assert registry.artifacts.list_keys("models")

    for delay in KILL_DELAYS_S:
        child = _spawn(store_url, artifacts_url, files_dir, "loop")
        _wait_for(child, "ready")
        time.sleep(delay)
        _kill(child)

    visible = _assert_every_visible_version_is_complete(registry, tmp_path / "check")
    files = {p.name: p for p in sorted(files_dir.iterdir())}
    after = registry.register("crashy", files=files, model_fingerprint="fp")
    assert after.version == visible + 1
    assert [v.version for v in registry.list_versions("crashy")] == list(range(1, visible + 2))

    # Orphans of killed registrations can be collected without harming any version.
    registry.gc(grace=timedelta(0))
    _assert_every_visible_version_is_complete(registry, tmp_path / "check-after-gc")
    store.close()
