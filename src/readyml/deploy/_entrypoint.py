"""Container entry point written by ``readyml build``: check the model, then serve.

Baked images carry ``SHA256SUMS`` beside the project; every listed file must match before
the server starts (exit 3 names the first that does not), and the server reads that registry
even where the store variables are set. Images that pull the model need
``READYML_STORE_URL`` and ``READYML_ARTIFACTS_URL`` (exit 2 names the missing one).
``READYML_MODEL`` overrides the model reference served (a canary runs the same image).
Standard library only: it runs before anything else is trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

CHECKSUM_FILE = "SHA256SUMS"
STORE_ENV = ("READYML_STORE_URL", "READYML_ARTIFACTS_URL")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(app: Path) -> str | None:
    """The first problem with the baked files, or ``None`` when all match."""
    sums = app / CHECKSUM_FILE
    if not sums.exists():
        return f"{sums}: expected the checksum file of a baked image, found none"
    for line in sums.read_text(encoding="utf-8").splitlines():
        expected, _, name = line.partition("  ")
        path = app / name
        if not path.is_file():
            return f"{name}: expected a file with sha256 {expected}, found none"
        found = _sha256(path)
        if found != expected:
            return f"{name}: expected sha256 {expected}, found {found}"
    return None


def main(argv: list[str]) -> int:
    """Check, then replace this process with ``readyml serve`` (unless ``--verify-only``)."""
    app = Path(os.environ.get("READYML_APP_DIR", "/app"))
    image = json.loads(Path(__file__).with_name("image.json").read_text(encoding="utf-8"))
    if image["baked"]:
        problem = verify(app)
        if problem is not None:
            print(f"readyml: baked model check failed: {problem}", file=sys.stderr)
            return 3
        # The checked registry is the one served: a shared registry's URLs (a Kubernetes
        # Secret's, say) must not redirect the server to a store it has no drivers for.
        for name in STORE_ENV:
            os.environ.pop(name, None)
    else:
        missing = [name for name in STORE_ENV if not os.environ.get(name)]
        if missing:
            print(
                f"readyml: {', '.join(missing)}: expected the shared registry's URL, found "
                "nothing (this image pulls its model at start)",
                file=sys.stderr,
            )
            return 2
    if "--verify-only" in argv:
        print(f"readyml: {image['ref']} ready to serve", file=sys.stderr)
        return 0
    model = os.environ.get("READYML_MODEL") or image["ref"]
    command = ["readyml", "serve", "-p", str(app), "-m", model, *argv]
    os.execvp(command[0], command)
    return 0  # not reached: execvp replaces the process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
