"""Child process for the SIGKILL test: registers versions until the parent kills it.

Usage: python _crash_child.py STORE_URL ARTIFACTS_URL FILES_DIR MODE

MODE is ``loop`` (register forever, one line per version), ``after-upload`` (stop for
good after half the files are uploaded) or ``before-commit`` (stop for good inside the
database transaction, after every row is inserted and just before COMMIT). Before stopping
it prints ``paused`` so that the parent kills it at exactly that point.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from readyml.registry import ArtifactInfo, ArtifactStore, MetadataStore, Registry

# Seconds a paused child sleeps; the parent kills it long before.
PAUSE_S = 600


def pause() -> None:
    print("paused", flush=True)
    time.sleep(PAUSE_S)


def main(store_url: str, artifacts_url: str, files_dir: str, mode: str) -> None:
    store = MetadataStore(store_url).open()
    artifacts = ArtifactStore(artifacts_url)
    files = {p.name: p for p in sorted(Path(files_dir).iterdir())}

    if mode == "after-upload":
        real_put = artifacts.put_file
        uploaded = 0

        def put_then_pause(key: str, local_path: Path) -> ArtifactInfo:
            nonlocal uploaded
            info = real_put(key, local_path)
            uploaded += 1
            if uploaded == len(files) // 2:
                pause()
            return info

        artifacts.put_file = put_then_pause  # type: ignore[method-assign]
    elif mode == "before-commit":

        @event.listens_for(store.engine, "commit")
        def _pause_before_commit(_connection: Any) -> None:
            pause()

    registry = Registry(store, artifacts)
    print("ready", flush=True)
    while True:
        version = registry.register("crashy", files=files, model_fingerprint="fp")
        print(f"registered {version.version}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
