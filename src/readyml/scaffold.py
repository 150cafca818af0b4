"""``readyml init``: write a commented starter project."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from readyml.config import SPEC_FILE, WORKSPACE_DIR
from readyml.errors import ConfigError

GITIGNORE = f"{WORKSPACE_DIR}/\n__pycache__/\n"


def starter_spec() -> str:
    """The commented ``readyml.yaml`` that ``readyml init`` writes."""
    return resources.files("readyml").joinpath("templates", SPEC_FILE).read_text(encoding="utf-8")


# CI systems ``readyml init --ci`` can write a workflow for.
CI_SYSTEMS = ("github",)


def init_project(directory: Path, *, force: bool = False, ci: str | None = None) -> list[Path]:
    """Create ``directory`` with a starter ``readyml.yaml``, a ``data/`` folder and a .gitignore.

    With ``ci="github"``, also a GitHub Actions workflow (``.github/workflows/readyml.yml``).
    Refuses to overwrite an existing spec unless ``force``; a path that is not a folder, or
    one that cannot be written, is a ConfigError.
    """
    if ci is not None and ci not in CI_SYSTEMS:
        raise ConfigError(f"--ci: expected one of {list(CI_SYSTEMS)}, found {ci!r}")
    if directory.exists() and not directory.is_dir():
        raise ConfigError(
            f"directory '{directory}': expected a folder (new or existing), found a file"
        )
    try:
        return _write_project(directory, force=force, ci=ci)
    except OSError as exc:
        raise ConfigError(
            f"directory '{directory}': cannot create the project there "
            f"({exc.strerror or exc}: '{exc.filename}')"
        ) from exc


def _write_project(directory: Path, *, force: bool, ci: str | None) -> list[Path]:
    spec_path = directory / SPEC_FILE
    if spec_path.exists() and not force:
        raise ConfigError(f"'{spec_path}' already exists; pass --force to overwrite it")
    (directory / "data").mkdir(parents=True, exist_ok=True)
    spec_path.write_text(starter_spec(), encoding="utf-8")
    written = [spec_path]
    gitignore = directory / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(GITIGNORE, encoding="utf-8")
        written.append(gitignore)
    elif _add_ignored(gitignore):
        written.append(gitignore)
    if ci == "github":
        from readyml.deploy.ci import WORKFLOW_PATH, github_workflow

        workflow = directory / WORKFLOW_PATH
        if workflow.exists() and not force:
            raise ConfigError(f"'{workflow}' already exists; pass --force to overwrite it")
        workflow.parent.mkdir(parents=True, exist_ok=True)
        workflow.write_text(github_workflow(), encoding="utf-8")
        written.append(workflow)
    return written


def _add_ignored(gitignore: Path) -> bool:
    """Append the lines of :data:`GITIGNORE` an existing ``.gitignore`` lacks (the workspace
    holds the metadata store and model artifacts, which belong in no commit)."""
    text = gitignore.read_text(encoding="utf-8", errors="replace")
    present = {line.strip() for line in text.splitlines()}
    missing = [line for line in GITIGNORE.splitlines() if line not in present]
    if not missing:
        return False
    joined = "" if not text or text.endswith("\n") else "\n"
    gitignore.write_text(text + joined + "\n".join(missing) + "\n", encoding="utf-8")
    return True
